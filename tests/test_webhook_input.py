"""Hostile webhook input (issue 11 §8): every malformed body is a 400 with an error_code and
writes nothing; a turn refuses what it cannot store before its first write, whoever calls
it; a client that sends its body slowly, or leaves half-way, holds nothing and logs no
traceback."""

from __future__ import annotations

import json
import logging
import select
import signal
import socket
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from openclaw.agent.loop import InvalidMessageError
from openclaw.gateway.app import Gateway, create_app
from openclaw.sessions.keys import InvalidSessionKeyError
from tests.fake_llm import FakeLlm, Step, completion
from tests.test_gateway import AUTH, TOKEN, api, configured, fake, start_gateway  # noqa: F401

# A socket read waits at most this long for the server: far longer than any deadline the
# tests configure, so a wait that runs out means the server never answered.
SOCKET_WAIT_S = 30.0
BODY_TIMEOUT_S = 0.5  # webhook.body_timeout_s of the real gateway below


def _written(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("sessions", "messages", "llm_calls")
        }


NOTHING = {"sessions": 0, "messages": 0, "llm_calls": 0}

MALFORMED = [
    pytest.param(b"{not json", "INVALID_JSON", id="not JSON"),
    pytest.param(b'{"message": "caf\xe9"}', "INVALID_JSON", id="not UTF-8"),
    pytest.param(
        b'{"message": "hi", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "INVALID_JSON",
        id="nested 100k deep",
    ),
    pytest.param(b'{"message": "hi", "n": ' + b"7" * 5000 + b"}", "INVALID_JSON", id="a 5,000-digit integer"),
    pytest.param(b'{"text": "hi"}', "MISSING_MESSAGE", id="no message"),
    pytest.param(b'["hi"]', "MISSING_MESSAGE", id="an array"),
    pytest.param(b'{"message": "hi \\ud800 there"}', "INVALID_MESSAGE", id="a lone surrogate in the message"),
    pytest.param(
        b'{"message": "hi", "session_key": "webhook:\\udfff"}',
        "INVALID_SESSION_KEY",
        id="a lone surrogate in the key",
    ),
    pytest.param(
        b'{"message": "hi", "session_key": "webhook:a\\u0000b"}', "INVALID_SESSION_KEY", id="a NUL in the key"
    ),
    pytest.param(
        b'{"message": "hi", "session_key": "webhook:' + b"k" * 100_000 + b'"}',
        "INVALID_SESSION_KEY",
        id="a 100 KB key",
    ),
    pytest.param(
        b'{"message": "hi", "session_key": ["webhook:a"]}', "INVALID_SESSION_KEY", id="a key that is not text"
    ),
]


@pytest.mark.parametrize(("body", "code"), MALFORMED)
async def test_a_malformed_body_is_a_400_and_writes_nothing(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
    fake: FakeLlm,  # noqa: F811
    db_url: str,
    body: bytes,
    code: str,
) -> None:
    client, gateway = api
    reply = await client.post("/webhook", content=body, headers={**AUTH, "content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    answer = reply.json()
    assert answer["error_code"] == code and answer["error"] and "\n" not in answer["error"]
    assert not fake.requests and gateway.counters.webhook_requests == 0
    assert await gateway.runtime.flusher.drain(timeout_s=30)
    assert _written(db_url) == NOTHING


async def test_a_nul_in_the_message_is_kept_as_a_replacement_character(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
    fake: FakeLlm,  # noqa: F811
    db_url: str,
) -> None:
    """Not malformed: the stores keep a NUL as U+FFFD, as they do for chat text."""
    client, _ = api
    fake.then(Step(body=completion("ok")))
    body = b'{"message": "a\\u0000b", "session_key": "webhook:nul"}'
    reply = await client.post("/webhook", content=body, headers=AUTH)
    assert reply.status_code == 200, reply.text
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT content FROM messages WHERE role = 'user'").fetchall()
    assert stored == [("a\ufffdb",)]


@pytest.mark.parametrize(
    ("key", "text", "error"),
    [
        ("webhook:main:ok", "hi \ud800", InvalidMessageError),
        ("webhook:main:" + "k" * 100_000, "hi", InvalidSessionKeyError),
        ("tg:main:1:\x00", "hi", InvalidSessionKeyError),
        ("agent:main:cli:\udcff", "hi", InvalidSessionKeyError),
    ],
    ids=["surrogate in the text", "100 KB key", "NUL in the key", "surrogate in the key"],
)
async def test_a_turn_refuses_what_it_cannot_store_before_writing(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
    fake: FakeLlm,  # noqa: F811
    db_url: str,
    key: str,
    text: str,
    error: type[Exception],
) -> None:
    """Every entry point (a channel, the CLI, cron, the webhook) goes through Agent.turn: it
    checks its input before it creates the session, so no empty session is left behind."""
    _, gateway = api
    with pytest.raises(error) as raised:
        await gateway.runtime.agent.turn(key, text)
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 200
    assert not fake.requests
    assert await gateway.runtime.flusher.drain(timeout_s=30)
    assert _written(db_url) == NOTHING


async def test_a_client_that_leaves_mid_body_is_not_an_error(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    db_url: str,
) -> None:
    """The ASGI exchange of a client that sends half its body and disconnects."""
    _, gateway = api
    app = create_app(gateway)
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"message": "half', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhook",
        "raw_path": b"/webhook",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode()), (b"content-length", b"100")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 3100),
    }
    with caplog.at_level(logging.DEBUG):
        await app(scope, receive, send)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in caplog.records)
    assert gateway.counters.webhook_requests == 0 and _written(db_url) == NOTHING


# ---- a real gateway, real sockets -----------------------------------------------------------


@pytest.fixture
def slow_configured(configured: Path) -> Path:  # noqa: F811
    config = json.loads(configured.read_text())
    config["webhook"]["body_timeout_s"] = BODY_TIMEOUT_S
    configured.write_text(json.dumps(config))
    return configured


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=SOCKET_WAIT_S)
    return sock


def _start_post(sock: socket.socket, content_length: int, first_bytes: bytes) -> None:
    head = (
        "POST /webhook HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    )
    sock.sendall(head.encode() + first_bytes)


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; fails when it keeps the
    connection open longer than SOCKET_WAIT_S."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:  # closed with bytes of ours unread: released all the same
            return received
        except TimeoutError:
            raise AssertionError(
                f"the gateway kept the connection open for {SOCKET_WAIT_S:g} s; it sent {received[:300]!r}"
            ) from None
        if not data:
            return received
        received += data


def _assert_timed_out(response: bytes) -> None:
    status, _, rest = response.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", response[:300]
    assert b'"error_code":"BODY_TIMEOUT"' in rest and b"connection: close" in rest.lower()


@contextmanager
def running_gateway(config_path: Path, db_url: str, home: Path) -> Iterator[tuple[str, list[str]]]:
    """A real `openclaw gateway`: its base URL, and a list that holds its stderr once it has
    stopped on SIGTERM (with exit code 0) at the end of the block."""
    proc, base = start_gateway(config_path, home, db_url)
    stderr: list[str] = []
    try:
        yield base, stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        stderr.append(err)
    assert proc.returncode == 0, err


@pytest.mark.slow
def test_slow_and_short_bodies_get_408_and_release_their_connections(
    slow_configured: Path,
    isolated_environment: Path,
    fake: FakeLlm,  # noqa: F811
    db_url: str,
) -> None:
    with running_gateway(slow_configured, db_url, isolated_environment) as (base, _):
        # Twenty clients that announce 200 bytes and send 11: each gets its 408 and a closed connection.
        short = [_connect(base) for _ in range(20)]
        for sock in short:
            _start_post(sock, 200, b'{"message":')
        assert httpx.get(f"{base}/ping", timeout=SOCKET_WAIT_S).text == "pong"  # meanwhile, it serves
        for sock in short:
            with sock:
                _assert_timed_out(_read_until_closed(sock))

        # One that keeps sending, a byte at a time, until the gateway answers: the deadline
        # is for the whole body, not for each piece of it.
        with _connect(base) as dripping:
            _start_post(dripping, 1_000_000, b'{"message": "')
            sent = 0
            while not select.select([dripping], [], [], 0.05)[0]:
                dripping.sendall(b"a")
                sent += 1
                assert sent < SOCKET_WAIT_S / 0.05, "the gateway never answered a body sent a byte at a time"
            _assert_timed_out(_read_until_closed(dripping))

        # The gateway still serves whole requests, and the cut ones wrote nothing.
        fake.then(Step(body=completion("still here")))
        reply = httpx.post(
            f"{base}/webhook",
            json={"message": "hi", "session_key": "webhook:main:after"},
            headers=AUTH,
            timeout=SOCKET_WAIT_S,
        )
        assert reply.status_code == 200 and reply.json()["reply"] == "still here"
    with psycopg.connect(db_url) as conn:
        keys = conn.execute("SELECT session_key FROM sessions").fetchall()
    assert keys == [("webhook:main:after",)]


@pytest.mark.slow
def test_an_idle_or_departed_client_holds_nothing_and_logs_nothing(
    slow_configured: Path, isolated_environment: Path, db_url: str
) -> None:
    with running_gateway(slow_configured, db_url, isolated_environment) as (base, stderr):
        # A client that leaves half-way through its body.
        with _connect(base) as leaving:
            _start_post(leaving, 200, b'{"message": "hal')
        # A kept-alive connection left idle after its answer is closed by the gateway.
        with _connect(base) as idle:
            idle.sendall(b"GET /ping HTTP/1.1\r\nHost: gateway\r\n\r\n")
            response = _read_until_closed(idle)
        assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"pong")
        assert httpx.get(f"{base}/ping", timeout=SOCKET_WAIT_S).text == "pong"
    # uvicorn lets the departed client's request finish before it stops.
    assert "Traceback" not in stderr[0] and "Exception in ASGI application" not in stderr[0], stderr[0]
