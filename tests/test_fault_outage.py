"""The fault test of issue 11, end to end: two real gateways on one PostgreSQL server take
webhook traffic while the server crashes (`pg_ctl stop -m immediate`), a poison message
arrives, one gateway's outbox disk fills up, and the other gateway is killed with SIGKILL
and restarted; then the server and the disk come back.

What it proves, once both outboxes are empty:
- every acknowledged (200) message is in Postgres exactly once, and nothing is there twice;
- the poison message (refused by a CHECK constraint, SQLSTATE 23514) is not in Postgres but
  in the killed gateway's outbox `dead`, with its reason, and it held nothing else up;
- an answer that is not a 200 is a 4xx/5xx with a JSON `error_code` (or a refused
  connection while that gateway is dead), never a hang;
- both gateways stop on SIGTERM with exit 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.disks import fill, tmpfs
from tests.fake_llm import FakeLlm, serve
from tests.private_cluster import PrivateCluster, private_cluster  # noqa: F401  (a fixture)
from tests.test_gateway import free_socket
from tests.test_gateway_outage import Answers
from tests.waiting import wait_for, wait_for_http

TOKEN = "fault-test-token"
SESSIONS = 5  # odd: each session's messages alternate between the two gateways
PHASE_TURNS = 5  # acknowledged turns per gateway that each phase waits for
REQUEST_TIMEOUT_S = 60.0  # an answer slower than this is a hang
DRAIN_S = 120.0
POISON = "poison pill"
KILL_MAY_LOSE_CALLS = 3


@dataclass
class Gateway:
    """A real `openclaw gateway` process with its own home and port; restartable."""

    name: str
    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_socket)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    runs: int = 0
    down: bool = True  # a refused connection is expected: killed, or not started yet

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.runs += 1
        self.log = self.home.parent / f"gateway-{self.name}-{self.runs}.log"
        with self.log.open("wb") as out:  # a file: a pipe nobody reads would fill and block it
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "openclaw", "gateway"],
                env={**self.env, "HTTP_PORT": str(self.port)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_http(
            f"{self.base}/ping",
            lambda r: r.text == "pong",
            process=self.proc,
            what=f"gateway {self.name} to start",
        )
        self.down = False

    def outbox(self) -> dict[str, Any]:
        """The outbox figures of /health."""
        figures: dict[str, Any] = httpx.get(f"{self.base}/health", timeout=30).json()["outbox"]
        return figures

    def kill(self) -> None:
        assert self.proc is not None
        self.down = True
        self.proc.kill()
        self.proc.wait(timeout=30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.down = True
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=90)

    def said(self) -> str:
        """What its last run wrote, the end of it."""
        return "" if self.log is None else self.log.read_text(errors="replace")[-3000:]

    def tracebacks(self) -> list[str]:
        """The logs of its runs that hold a traceback."""
        logs = sorted(self.home.parent.glob(f"gateway-{self.name}-*.log"))
        return [log.name for log in logs if "Traceback" in log.read_text(errors="replace")]


@dataclass
class Traffic:
    """Webhook turns from a thread, alternating between the gateways over a few sessions;
    what was sent, what was acknowledged, and any answer that breaks the contract."""

    gateways: list[Gateway]
    sent: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    acked_by: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # "A 503 OUTBOX_FULL", ...
    problems: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=REQUEST_TIMEOUT_S) as client:
            n = 0
            while not self.stop.is_set():
                self.turn(client, self.gateways[n % len(self.gateways)], n)
                n += 1

    def turn(self, client: httpx.Client, gateway: Gateway, n: int) -> None:
        text, key = f"m-{n}", f"webhook:main:fault-{n % SESSIONS}"
        down = gateway.down
        self.sent.append(text)
        try:
            reply = client.post(f"{gateway.base}/webhook", json={"message": text, "session_key": key})
        except httpx.TimeoutException:
            self.problems.append(f"{text} to {gateway.name}: no answer within {REQUEST_TIMEOUT_S:g} s")
            return
        except httpx.TransportError as exc:
            if not (down or gateway.down):
                self.problems.append(f"{text} to {gateway.name}, which is up: {exc!r}")
            return
        if reply.status_code == 200:
            self.acknowledged.append(text)
            self.acked_by[gateway.name] += 1
            return
        try:
            code = reply.json()["error_code"]
        except (ValueError, KeyError, TypeError):
            code = None
        if not 400 <= reply.status_code < 600 or code is None:
            self.problems.append(f"{text} to {gateway.name}: {reply.status_code} {reply.text[:200]!r}")
        self.refusals[f"{gateway.name} {reply.status_code} {code}"] += 1

    def wait_for_turns(self, gateway: Gateway, turns: int = PHASE_TURNS) -> None:
        """Until `turns` more turns were acknowledged by this gateway."""
        goal = self.acked_by[gateway.name] + turns
        wait_for(
            lambda: self.acked_by[gateway.name] >= goal or self.problems,
            60,
            what=f"{turns} more turns acknowledged by gateway {gateway.name}",
        )
        assert not self.problems, self.problems


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as fake:
        fake.script = Answers(fake)
        yield fake


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A's and B's homes; B's outbox directory is a real 4 MB file system (tmpfs) to fill."""
    home_a, home_b = tmp_path / "a" / "home", tmp_path / "b" / "home"
    home_a.mkdir(parents=True)
    with tmpfs(home_b / "outbox", "4m"):
        yield home_a, home_b


def migrated_database_with_a_poison(cluster: PrivateCluster) -> str:
    """A migrated database whose `messages` refuses any text that starts with "poison"."""
    url = cluster.migrated_database("openclaw")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE messages ADD CONSTRAINT no_poison CHECK (content NOT LIKE 'poison%')")
    return url


def gateway_env(home: Path, url: str, config: Path, llm: FakeLlm) -> dict[str, str]:
    (home / "openclaw-manual.json").write_text(
        json.dumps(
            {
                "models": {
                    "providers": {"fake": {"baseUrl": llm.base_url, "models": ["m1"]}},
                    "fallbacks": ["fake/m1"],
                }
            }
        )
    )
    return {
        **os.environ,
        "OPENCLAW_HOME": str(home),
        "DATABASE_URL": url,
        "GATEWAY_CONFIG": str(config),
        "OPENCLAW_SESSIONS_BACKEND": "postgres",
    }


def outbox_cli(gateway: Gateway, *args: str) -> dict[str, Any]:
    """`openclaw outbox ... --json` for a gateway's home."""
    done = subprocess.run(
        [sys.executable, "-m", "openclaw", "outbox", *args, "--json"],
        env=gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def user_texts(url: str) -> Counter[str]:
    """How many times each user message of the traffic's sessions is in Postgres."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT m.content, count(*) FROM messages m JOIN sessions s ON s.id = m.session_id"
            " WHERE s.session_key LIKE 'webhook:main:fault-%' AND m.role = 'user' GROUP BY m.content"
        ).fetchall()
    return Counter({content: n for content, n in rows})


def drained(gateway: Gateway, dead: int) -> bool:
    """Nothing waits in the gateway's outbox, on disk or in memory, `dead` entries were set
    aside, and its disk can be written."""
    o = gateway.outbox()
    return (o["pending"], o["held_in_memory"], o["dead"], o["writable"]) == (0, 0, dead, True)


@pytest.mark.slow
def test_outage_kill_poison_and_full_disk_lose_and_duplicate_nothing(
    private_cluster: PrivateCluster,  # noqa: F811
    homes: tuple[Path, Path],
    llm: FakeLlm,
    tmp_path: Path,
) -> None:
    url = migrated_database_with_a_poison(private_cluster)
    config = tmp_path / "gateway.json"
    config.write_text(
        json.dumps(
            {
                "agent": {"name": "main", "sandbox": {"max_concurrent": 4}},
                "webhook": {"token": TOKEN},
                "metrics": {"snapshot_interval_secs": 1},
            }
        )
    )
    a, b = (
        Gateway(n, home, gateway_env(home, url, config, llm)) for n, home in zip("AB", homes, strict=True)
    )
    traffic = Traffic([a, b])
    sender = threading.Thread(target=traffic.run, name="webhook-traffic", daemon=True)
    try:
        a.start()
        b.start()
        sender.start()
        for gateway in (a, b):
            traffic.wait_for_turns(gateway)

        private_cluster.stop("immediate")  # a crash, as far as the gateways can tell
        for gateway in (a, b):
            traffic.wait_for_turns(gateway)  # acknowledged: spooled
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            poison = client.post(
                f"{a.base}/webhook",
                json={"message": POISON, "session_key": "webhook:main:fault-0"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        assert poison.status_code == 200, poison.text  # spooled: Postgres cannot refuse it yet

        filler = fill(homes[1] / "outbox")
        wait_for(lambda: b.outbox()["held_in_memory"] > 0, 60, what="B to hold entries in memory")
        for gateway in (a, b):
            traffic.wait_for_turns(gateway)

        a.kill()  # SIGKILL: no shutdown, no final flush
        traffic.wait_for_turns(b)
        a.start()  # the same home, the same port; Postgres is still down
        traffic.wait_for_turns(a)

        shipped_by_b = b.outbox()["shipped"]
        private_cluster.start()
        wait_for(
            lambda: b.outbox()["shipped"] > shipped_by_b, 60, what="B to ship again, its disk still full"
        )
        filler.unlink()
        for gateway in (a, b):
            traffic.wait_for_turns(gateway)
        traffic.stop.set()
        sender.join(REQUEST_TIMEOUT_S + 10)
        assert not sender.is_alive(), "the traffic thread hangs"
        assert not traffic.problems, traffic.problems

        wait_for(lambda: drained(a, dead=1), DRAIN_S, what="A's outbox to empty, but for the poison")
        wait_for(lambda: drained(b, dead=0), DRAIN_S, what="B's outbox to empty")
        assert [g.outbox()["refused"] for g in (a, b)] == [0, 0]  # no entry was turned away
        codes = {gateway.name: gateway.terminate() for gateway in (a, b)}
    except Exception as failure:
        raise AssertionError(f"{failure!r}\n--- A said:\n{a.said()}\n--- B said:\n{b.said()}") from None
    finally:
        traffic.stop.set()
        for gateway in (a, b):
            if gateway.proc is not None and gateway.proc.poll() is None:
                gateway.proc.kill()
                gateway.proc.wait(timeout=30)
    assert codes == {"A": 0, "B": 0}, f"A said:\n{a.said()}\nB said:\n{b.said()}"
    assert a.tracebacks() + b.tracebacks() == []

    stored = user_texts(url)
    assert [text for text, n in stored.items() if n > 1] == []  # nothing twice
    assert [text for text in traffic.acknowledged if text not in stored] == []  # nothing lost
    assert set(stored) <= set(traffic.sent)
    assert POISON not in stored
    with psycopg.connect(url) as conn:
        messages = conn.execute("SELECT count(*), count(DISTINCT uid) FROM messages").fetchone()
        calls = conn.execute("SELECT count(*), count(DISTINCT id) FROM llm_calls").fetchone()
        snapshots = conn.execute("SELECT count(*), count(DISTINCT uid) FROM metrics_snapshots").fetchone()
    assert messages is not None and messages[0] == messages[1]
    assert snapshots is not None and snapshots[0] == snapshots[1]
    # One LLM call per request the fake LLM answered, once each; the kill -9 may lose the
    # call of the turn it cut short and the newest ones handed to the spool (README).
    assert calls is not None and calls[0] == calls[1]
    assert len(llm.requests) - KILL_MAY_LOSE_CALLS <= calls[0] <= len(llm.requests)

    status = outbox_cli(a, "status")
    assert (status["pending"], status["dead"]) == (0, 1), status
    dead = outbox_cli(a, "dead")["entries"]
    assert len(dead) == 1 and "23514" in dead[0]["error"], dead
    assert POISON in json.dumps(dead[0]["payload"]), dead
