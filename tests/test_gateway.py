"""The gateway: its HTTP API in-process, and the service as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from openclaw.app import load_settings, open_runtime
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.gateway.app import Gateway, create_app
from openclaw.gateway.metrics import METRICS_SNAPSHOT
from tests.fake_llm import FakeLlm, Step, chunk, completion, serve
from tests.sessions_support import TcpProxy
from tests.waiting import wait_for, wait_for_http

TOKEN = "hook-secret-token"


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        yield app


@pytest.fixture
def configured(
    isolated_environment: Path, tmp_path: Path, fake: FakeLlm, monkeypatch: pytest.MonkeyPatch
) -> Path:
    (isolated_environment / "openclaw-manual.json").write_text(
        json.dumps(
            {
                "models": {
                    "providers": {"fake": {"baseUrl": fake.base_url, "models": ["m1"]}},
                    "fallbacks": ["fake/m1"],
                }
            }
        )
    )
    gateway_config = tmp_path / "gateway.json"
    gateway_config.write_text(
        json.dumps(
            {
                "agent": {"name": "main", "sandbox": {"max_concurrent": 2}},
                "webhook": {"token": TOKEN},
                "llm_log": {"capacity": 2},
                "metrics": {"snapshot_interval_secs": 0.2},
            }
        )
    )
    monkeypatch.setenv("GATEWAY_CONFIG", str(gateway_config))
    monkeypatch.setenv("OPENCLAW_SESSIONS_BACKEND", "postgres")
    return gateway_config


@pytest.fixture
async def api(
    configured: Path, db_url: str, isolated_environment: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    runtime = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    gateway = Gateway(load_settings().gateway, runtime, "testhost")
    transport = httpx.ASGITransport(app=create_app(gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client, gateway
    await runtime.close()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_open_endpoints(api: tuple[httpx.AsyncClient, Gateway]) -> None:
    client, _ = api
    assert (await client.get("/ping")).text == "pong"
    lite = (await client.get("/health/lite")).json()
    assert set(lite) == {
        "status",
        "version",
        "agent",
        "pid",
        "uptime",
        "uptime_seconds",
        "active_tasks",
        "provider_count",
        "llm_calls",
        "llm_errors",
    }
    health = (await client.get("/health")).json()
    assert health["fallback_chain"] == ["fake/m1"] and health["sessions"]["total"] == 0
    assert health["hostname"] == "testhost" and "webhook_requests" in health["metrics"]
    assert set((await client.get("/version")).json()) == {"version", "agent", "built", "boot_time"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["failed"] == []
    metrics = (await client.get("/metrics")).text
    assert 'openclaw_gateway_requests_total{channel="telegram"} 0.0' in metrics
    assert 'openclaw_gateway_info{version="' in metrics
    assert (await client.get("/metrics/json")).json()["completed_requests"] == 0
    assert (await client.get("/metrics/summary")).text.startswith("reqs=0 errs=0 err%=0.0 avg_lat=0ms")


@pytest.mark.parametrize("path", ["/logs", "/status", "/logs/00000000-0000-0000-0000-000000000000"])
async def test_protected_endpoints_need_the_token(api: tuple[httpx.AsyncClient, Gateway], path: str) -> None:
    client, _ = api
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get(path, headers={"Authorization": TOKEN})).status_code == 401  # no scheme
    assert (await client.get(path, headers=AUTH)).status_code in (200, 404)


async def test_webhook_contract_and_counters(api: tuple[httpx.AsyncClient, Gateway], fake: FakeLlm) -> None:
    client, gateway = api
    fake.then(Step(body=completion("Hello from the webhook")))
    reply = await client.post(
        "/webhook", json={"message": "hi", "session_key": "webhook:main:t1"}, headers=AUTH
    )
    body = reply.json()
    assert reply.status_code == 200 and body["reply"] == "Hello from the webhook"
    assert body["session_key"] == "webhook:main:t1" and body["model"] == "fake/m1" and body["rounds"] == 1
    assert set(body) == {"request_id", "reply", "session_key", "model", "tool_calls", "rounds", "elapsed_ms"}
    counters = gateway.counters
    assert (counters.webhook_requests, counters.agent_turns, counters.completed_requests) == (1, 1, 1)
    status = (await client.get("/status", headers=AUTH)).json()
    assert status["sessions"]["total"] == 1 and status["channels"]["webhook"] is True
    assert "exec" in status["tools"]
    cases = [
        (
            {"content": b"{not json", "headers": {**AUTH, "content-type": "application/json"}},
            400,
            "INVALID_JSON",
        ),
        ({"json": {"text": "no message"}, "headers": AUTH}, 400, "MISSING_MESSAGE"),
        ({"json": {"message": "   "}, "headers": AUTH}, 400, "MISSING_MESSAGE"),
        ({"json": {"message": "hi", "session_key": 5}, "headers": AUTH}, 400, "INVALID_SESSION_KEY"),
        ({"json": {"message": "hi"}}, 401, "INVALID_TOKEN"),
        ({"content": b"x" * 1_000_001, "headers": AUTH}, 413, "PAYLOAD_TOO_LARGE"),
    ]
    for kwargs, code, error_code in cases:
        response = await client.post("/webhook", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == code and response.json()["error_code"] == error_code
    fake.then(Step(400, {"error": "bad"}))
    failed = await client.post("/webhook", json={"message": "hi"}, headers=AUTH)
    assert failed.status_code == 500 and failed.json()["error_code"] == "AGENT_TURN_FAILED"


async def test_webhook_without_token_configured(
    configured: Path, db_url: str, isolated_environment: Path
) -> None:
    configured.write_text(json.dumps({"agent": {"name": "main"}}))  # noqa: ASYNC240 - test set-up
    runtime = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    app = create_app(Gateway(load_settings().gateway, runtime, "h"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client:
        response = await client.post("/webhook", json={"message": "hi"}, headers=AUTH)
        assert response.status_code == 503 and response.json()["error_code"] == "WEBHOOK_NOT_CONFIGURED"
        assert (await client.get("/logs", headers=AUTH)).status_code == 503
    await runtime.close()


async def test_logs_fall_back_to_postgres(api: tuple[httpx.AsyncClient, Gateway], fake: FakeLlm) -> None:
    client, gateway = api
    for i in range(3):
        fake.then(Step(body=completion(f"answer {i}")))
        assert (await client.post("/webhook", json={"message": f"q{i}"}, headers=AUTH)).status_code == 200
    listed = (await client.get("/logs?limit=10", headers=AUTH)).json()
    assert listed["total_recorded"] == 3 and listed["buffered"] == 2 and listed["showing"] == 2
    assert listed["entries"][0]["response_content"] == "answer 2"  # newest first
    assert await gateway.runtime.flusher.drain(timeout_s=30)
    oldest = [c for c in gateway.runtime.llm_log.recent()]  # the first call left the ring buffer
    async with gateway.runtime.database.connection() as conn:
        row = await (
            await conn.execute("SELECT id FROM llm_calls WHERE response_content = 'answer 0'")
        ).fetchone()
    assert row is not None and all(c.id != row[0] for c in oldest)
    found = await client.get(f"/logs/{row[0]}", headers=AUTH)
    assert found.status_code == 200 and found.json()["entry"]["response_content"] == "answer 0"
    missing = await client.get("/logs/00000000-0000-0000-0000-000000000000", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["found"] is False
    assert (await client.get("/logs/not-a-uuid", headers=AUTH)).status_code == 404


def free_socket() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(configured: Path, home: Path, database_url: str) -> tuple[subprocess.Popen[str], str]:
    """A real `openclaw gateway` process, once it answers; and its base URL."""
    port = free_socket()
    env = {
        **os.environ,
        "OPENCLAW_HOME": str(home),
        "DATABASE_URL": database_url,
        "HTTP_PORT": str(port),
        "GATEWAY_CONFIG": str(configured),
        "OPENCLAW_SESSIONS_BACKEND": "postgres",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "openclaw", "gateway"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/ping", lambda r: r.text == "pong", process=proc, what="the gateway to start")
    except AssertionError as failure:
        if proc.poll() is not None:
            raise  # it exited: the failure says what it wrote
        proc.kill()
        raise AssertionError(
            f"{failure}; the gateway said: {proc.communicate(timeout=30)[1][-2000:]}"
        ) from None
    return proc, base


def snapshots_in_postgres(db_url: str) -> list[tuple[int, int]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT webhook_requests, completed_requests FROM metrics_snapshots").fetchall()
    return [(r[0], r[1]) for r in rows]


def snapshots_in_spool(home: Path) -> int:
    """Metrics snapshots waiting in the outbox's spools (read beside the running gateway)."""
    count = 0
    for path in (home / "outbox").glob("*.db"):
        spool = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        with contextlib.closing(spool), contextlib.suppress(sqlite3.OperationalError):  # one being made
            query = "SELECT count(*) FROM entries WHERE kind = ?"
            count += spool.execute(query, (METRICS_SNAPSHOT,)).fetchone()[0]
    return count


@pytest.fixture
def proxy(db_url: str) -> Iterator[tuple[TcpProxy, asyncio.AbstractEventLoop]]:
    """A TcpProxy in front of the test server, running in its own thread's loop."""
    params = conninfo_to_dict(db_url)
    host = str(params.get("host") or "127.0.0.1")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    tcp = TcpProxy(host, int(params.get("port") or 5432))
    asyncio.run_coroutine_threadsafe(tcp.start(), loop).result(10)
    yield tcp, loop
    asyncio.run_coroutine_threadsafe(tcp.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.mark.slow
def test_gateway_process_serves_and_stops_cleanly(
    configured: Path, db_url: str, isolated_environment: Path, fake: FakeLlm
) -> None:
    proc, base = start_gateway(configured, isolated_environment, db_url)
    try:
        fake.then(Step(body=completion("served")))
        reply = httpx.post(f"{base}/webhook", json={"message": "hi"}, headers=AUTH, timeout=30)
        assert reply.json()["reply"] == "served"
        # The periodic snapshots reach Postgres while the gateway runs.
        wait_for(lambda: (1, 1) in snapshots_in_postgres(db_url), what="a snapshot of the webhook request")
    finally:
        stopping = datetime.now(UTC)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    with psycopg.connect(db_url) as conn:
        snapshots = conn.execute(
            "SELECT webhook_requests, completed_requests, snapshot_at >= %s"
            " FROM metrics_snapshots ORDER BY snapshot_at",
            (stopping,),
        ).fetchall()
        deployment = conn.execute("SELECT component, status, pid FROM deployments").fetchall()
        calls = conn.execute("SELECT count(*) FROM llm_calls").fetchone()
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()
    assert snapshots and snapshots[-1] == (1, 1, True)  # the last snapshot, taken at shutdown
    assert deployment == [("gateway", "stopped", proc.pid)]
    assert calls == (1,) and messages == (2,)


@pytest.mark.slow
def test_gateway_process_serves_telegram(
    configured: Path, db_url: str, isolated_environment: Path, fake: FakeLlm
) -> None:
    from tests.fake_telegram import FakeBotApi

    with serve(FakeBotApi()) as api:  # type: ignore[arg-type]
        config = json.loads(configured.read_text())
        config["telegram"] = {"bot_token": "123:fake", "allowed_user_ids": [42], "api_base": api.base_url}
        configured.write_text(json.dumps(config))
        proc, base = start_gateway(configured, isolated_environment, db_url)
        try:
            fake.then(Step(sse=[chunk("Hello from "), chunk("the gateway"), chunk(finish="stop"), "[DONE]"]))
            api.user_says(42, 500, "hi")
            wait_for(lambda: api.texts(500) == ["Hello from the gateway"], process=proc)
            # The turn is counted once its answer is on screen: wait for that too.
            metrics = wait_for_http(f"{base}/metrics/json", lambda r: r.json()["completed_requests"] == 1)
            assert metrics.json()["telegram_requests"] == 1
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err


@pytest.mark.slow
def test_kill_9_while_postgres_is_down_then_restart_ships_everything(
    configured: Path,
    db_url: str,
    isolated_environment: Path,
    fake: FakeLlm,
    proxy: tuple[TcpProxy, asyncio.AbstractEventLoop],
) -> None:
    """Webhook turns while Postgres is unreachable are spooled; the gateway is killed with
    SIGKILL; a restart with Postgres back ships every call, message and snapshot, once."""
    tcp, loop = proxy
    through_proxy = make_conninfo(db_url, host="127.0.0.1", port=str(tcp.port))
    loop.call_soon_threadsafe(tcp.cut)  # the gateway's database is down from the start
    down, base = start_gateway(configured, isolated_environment, through_proxy)
    try:
        for i in range(3):
            fake.then(Step(body=completion(f"answer {i}")))
            reply = httpx.post(
                f"{base}/webhook",
                json={"message": f"q{i}", "session_key": "webhook:main:k9"},
                headers=AUTH,
                timeout=60,
            )
            assert reply.status_code == 200, reply.text
        assert httpx.get(f"{base}/ready", timeout=30).status_code == 503  # Postgres is down
        wait_for(lambda: snapshots_in_spool(isolated_environment), what="a snapshot in the outbox")
    finally:
        down.kill()  # SIGKILL: no shutdown, no final flush
        down.communicate(timeout=30)
    loop.call_soon_threadsafe(tcp.restore)
    up, base = start_gateway(configured, isolated_environment, through_proxy)
    try:

        def shipped() -> tuple[object, object]:
            with psycopg.connect(db_url) as conn:
                calls = conn.execute("SELECT count(*), count(DISTINCT id) FROM llm_calls").fetchone()
                messages = conn.execute("SELECT count(*), count(DISTINCT uid) FROM messages").fetchone()
            return calls, messages

        wait_for(lambda: shipped() == ((3, 3), (6, 6)), process=up, what="3 calls and 6 messages, once each")
    finally:
        up.send_signal(signal.SIGTERM)
        _, err = up.communicate(timeout=60)
    assert up.returncode == 0, err
    with psycopg.connect(db_url) as conn:
        boots = conn.execute("SELECT count(DISTINCT boot_id) FROM metrics_snapshots").fetchone()
        stored = conn.execute(
            "SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id"
            " WHERE s.session_key = 'webhook:main:k9' ORDER BY m.id"
        ).fetchall()
    assert boots == (2,)  # the killed process's snapshots arrived too
    assert [r[0] for r in stored] == ["q0", "answer 0", "q1", "answer 1", "q2", "answer 2"]


async def test_without_models_the_gateway_serves_and_says_why(
    configured: Path, db_url: str, isolated_environment: Path
) -> None:
    (isolated_environment / "openclaw-manual.json").unlink()
    runtime = await open_runtime(
        DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment, require_models=False
    )
    app = create_app(Gateway(load_settings().gateway, runtime, "h"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client:
        assert (await client.get("/health")).status_code == 200
        ready = (await client.get("/ready")).json()
        assert "providers" in ready["failed"]
        reply = await client.post("/webhook", json={"message": "hi"}, headers=AUTH)
        assert reply.status_code == 500 and reply.json()["error_code"] == "PROVIDER_INIT_FAILED"
        assert "model config not found" in reply.json()["error"]
    await runtime.close()


async def test_the_outbox_shows_in_health_ready_and_metrics(
    api: tuple[httpx.AsyncClient, Gateway], fake: FakeLlm, db_url: str
) -> None:
    """Issue 11: the bound, pending, dead, refused and the oldest entry's age are /metrics
    series; a kind the outbox cannot ship, or a spool disk that cannot be written, makes
    /health degraded and is named by /ready (which still serves)."""
    client, gateway = api
    runtime = gateway.runtime
    assert runtime.spool.append("kind.from.a.newer.openclaw", {"x": 1})
    await runtime.flusher.drain(timeout_s=10)
    health = (await client.get("/health")).json()
    assert health["status"] == "degraded"
    assert health["problems"] == ["outbox_halted:kind.from.a.newer.openclaw"]
    outbox = health["outbox"]
    assert outbox["pending"] == 1 and outbox["writable"] is True and outbox["max_entries"] == 1_000_000
    assert outbox["oldest_age_seconds"] is not None
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["degraded"] == health["problems"]
    metrics = (await client.get("/metrics")).text
    for series in (
        "openclaw_outbox_pending 1.0",
        "openclaw_outbox_dead 0.0",
        "openclaw_outbox_halted_kinds 1.0",
        "openclaw_outbox_writable 1.0",
        "openclaw_outbox_refused_total 0.0",
        "openclaw_outbox_max_entries 1e+06",
    ):
        assert series in metrics, series
    assert "openclaw_outbox_oldest_entry_age_seconds" in metrics

    # A row Postgres refuses for what it holds: an error for that turn (4xx), not an outage.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE messages ADD CONSTRAINT no_poison CHECK (content NOT LIKE 'poison%')")
    reply = await client.post(
        "/webhook", json={"message": "poison pill", "session_key": "webhook:main:p"}, headers=AUTH
    )
    assert reply.status_code == 422 and reply.json()["error_code"] == "MESSAGE_NOT_STORED"
    assert runtime.spool.pending() == 1  # nothing spooled for it
