"""The durable outbox: what was acknowledged survives kill -9 and outages, and reaches
Postgres exactly once."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from openclaw.app import OUTBOX_HANDLERS as RUNTIME_HANDLERS
from openclaw.chat import Message, Role
from openclaw.db import Database
from openclaw.db.records import to_payload
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.gateway.metrics import METRICS_SNAPSHOT, MetricsSnapshot
from openclaw.llm.records import LLM_CALL, LlmCall
from openclaw.outbox import Flusher, Spool
from openclaw.sessions.mirror import OUTBOX_HANDLERS as SESSION_HANDLERS
from openclaw.sessions.mirror import DualSessionStore
from openclaw.sessions.postgres_store import PostgresSessionStore
from openclaw.sessions.resilient import ResilientSessionStore
from openclaw.sessions.sqlite_store import SqliteSessionStore
from tests.sessions_support import TcpProxy, at
from tests.waiting import until, wait_for_line

HANDLERS = {**RUNTIME_HANDLERS, **SESSION_HANDLERS}


@pytest.fixture
def spool(isolated_environment: Path) -> Spool:
    return Spool(isolated_environment / "outbox" / "spool.db")


async def llm_call_count(database: Database) -> int:
    async with database.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM llm_calls")).fetchone()
    return row[0] if row else 0


def test_acknowledged_entries_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    writer = textwrap.dedent(f"""
        import sys, time
        from openclaw.outbox import Spool
        spool = Spool({str(path)!r})
        i = 0
        while True:
            spool.append("llm_call", {{"n": i, "text": "ünïcode " * 20}})
            print(i, flush=True)  # acknowledged
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    try:
        acknowledged = int(wait_for_line(proc, lambda line: int(line) >= 300)[-1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    entries = Spool(path).peek(100_000)
    numbers = [e.payload["n"] for e in entries]
    assert numbers[: acknowledged + 1] == list(range(acknowledged + 1))  # every one, in order


async def test_flush_ships_once_even_when_replayed(spool: Spool, database: Database) -> None:
    calls = [LlmCall(model="m", session_key=f"s{i}") for i in range(50)]
    assert spool.append_many([(LLM_CALL, to_payload(c)) for c in calls])
    flusher = Flusher(spool, database, HANDLERS, batch_size=20)
    # A crash after Postgres committed and before the spool forgot: ship without removing.
    await flusher._ship(spool.peek(20))
    assert await llm_call_count(database) == 20
    assert await flusher.drain(timeout_s=30)
    assert await llm_call_count(database) == 50 and spool.pending() == 0
    async with database.connection() as conn:
        row = await (
            await conn.execute("SELECT session_key FROM llm_calls WHERE id = %s", (calls[7].id,))
        ).fetchone()
    assert row == ("s7",)


async def test_a_refused_entry_is_moved_aside_and_the_rest_ship(spool: Spool, database: Database) -> None:
    good = [LlmCall(model="m") for _ in range(5)]
    bad = LlmCall(model="m", provider_attempt=0)  # violates a CHECK: Postgres will never take it
    spool.append_many(
        [
            (LLM_CALL, to_payload(good[0])),
            (LLM_CALL, to_payload(bad)),
            *[(LLM_CALL, to_payload(c)) for c in good[1:]],
            ("no_such_kind", {"x": 1}),
        ]
    )
    flusher = Flusher(spool, database, HANDLERS)
    assert await flusher.drain(timeout_s=30)
    assert await llm_call_count(database) == 5
    assert spool.dead() == 1 and flusher.buried == 1  # the row Postgres refused, with its reason
    assert "23514" in spool.dead_entries()[0].error
    # A kind this openclaw has no handler for is kept, not thrown away, and named.
    assert spool.pending() == 1 and "no_such_kind" in flusher.halted


async def test_only_one_process_flushes_at_a_time(spool: Spool, database: Database) -> None:
    spool.append(LLM_CALL, to_payload(LlmCall(model="m")))
    lock = os.open(f"{spool.path}.flush.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as another process's flusher would hold it
    try:
        assert await Flusher(spool, database, HANDLERS).flush_once() == 0
    finally:
        os.close(lock)
    assert await Flusher(spool, database, HANDLERS).flush_once() == 1


def test_a_full_spool_refuses_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_entries=3)
    assert spool.append_many([("k", {}), ("k", {})])
    assert not spool.append_many([("k", {}), ("k", {})])
    assert spool.append("k", {}) and not spool.append("k", {})
    assert spool.pending() == 3 and spool.refused == 3


async def test_dual_mode_converges_after_postgres_was_down(db_url: str, isolated_environment: Path) -> None:
    params = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    await proxy.start()
    proxied = make_conninfo(db_url, host="127.0.0.1", port=proxy.port)
    database = await Database.open(DatabaseTarget(TargetSource.OPTION, url=proxied), wait=False)
    spool = Spool(isolated_environment / "outbox" / "spool.db")
    store = DualSessionStore(
        SqliteSessionStore(isolated_environment / "agents" / "main" / "sessions.db", "main"), spool
    )
    flusher = Flusher(spool, database, HANDLERS, interval_s=0.05, max_backoff_s=0.2, connect_timeout_s=1)
    stop = asyncio.Event()
    running = asyncio.create_task(flusher.run(stop))
    try:
        await store.create_session("tg:main:1:2", "main", "kimi-k2")
        await store.append_message(
            "tg:main:1:2", Message(Role.USER, content="before the outage", timestamp=at(0))
        )
        await until(lambda: spool.pending() == 0, what="the first message to be shipped")
        proxy.cut()  # Postgres unreachable: the chat goes on, the mirror waits
        for i in range(20):
            await store.append_message(
                "tg:main:1:2", Message(Role.USER, content=f"during {i}", timestamp=at(i + 1))
            )
        await store.add_tokens("tg:main:1:2", 500)
        await until(lambda: flusher.last_error is not None, what="the flusher to find Postgres unreachable")
        assert spool.pending() == 21
        proxy.restore()
        await until(lambda: spool.pending() == 0, what="the spool to drain once Postgres is back")
        assert spool.dead() == 0
    finally:
        stop.set()
        await running
        await proxy.stop()
        await database.close()
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id ORDER BY m.id"
        ).fetchall()
        tokens = conn.execute("SELECT total_tokens FROM sessions").fetchall()
    assert [r[0] for r in rows] == ["before the outage", *[f"during {i}" for i in range(20)]]
    assert tokens == [(500,)]
    mirror_db = await Database.open(DatabaseTarget(TargetSource.OPTION, url=db_url))
    try:
        mirror = PostgresSessionStore(mirror_db, "main")
        assert await mirror.load_messages("tg:main:1:2") == await store.load_messages("tg:main:1:2")
    finally:
        await mirror_db.close()
        await store.close()
        spool.close()


async def test_postgres_sessions_ride_out_an_outage(db_url: str, isolated_environment: Path) -> None:
    """DESIGN.md §5: in postgres mode with Postgres down, writes go to the outbox, the history
    comes from memory, and everything lands once when Postgres is back."""
    params = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    await proxy.start()
    proxied = make_conninfo(db_url, host="127.0.0.1", port=proxy.port)
    database = await Database.open(
        DatabaseTarget(TargetSource.OPTION, url=proxied), wait=False, pool_wait_s=1
    )
    spool = Spool(isolated_environment / "outbox" / "spool.db")
    store = ResilientSessionStore(PostgresSessionStore(database, "main"), spool)
    key = "tg:main:7:7"
    try:
        await store.create_session(key, "main", "kimi-k2")
        await store.append_message(key, Message(Role.USER, content="before", timestamp=at(0)))
        await store.add_tokens(key, 10)
        proxy.cut()
        await store.append_messages(
            key, [Message(Role.ASSISTANT, content=f"during {i}", timestamp=at(i + 1)) for i in range(3)]
        )
        await store.add_tokens(key, 32)
        await store.create_session("tg:main:8:8", "main", "kimi-k2")  # a new chat during the outage
        await store.append_message("tg:main:8:8", Message(Role.USER, content="new chat", timestamp=at(9)))
        history = await store.load_llm_messages(key)
        assert [m.content for m in history] == ["before", "during 0", "during 1", "during 2"]
        assert spool.pending() == 4  # the appends, the tokens, the new session
        proxy.restore()
        flusher = Flusher(spool, database, HANDLERS, connect_timeout_s=2)
        await until(lambda: flusher.drain(timeout_s=5), what="the spool to drain once Postgres is back")
        assert spool.pending() == 0 and spool.dead() == 0
        assert [m.content for m in await store.load_messages(key)] == [
            "before",
            "during 0",
            "during 1",
            "during 2",
        ]
        info = await store.get_session(key)
        assert info is not None and info.total_tokens == 42 and info.model == "kimi-k2"
        assert [m.content for m in await store.load_messages("tg:main:8:8")] == ["new chat"]
    finally:
        await proxy.stop()
        await database.close()
        spool.close()


async def test_a_handler_bug_halts_its_kind_and_keeps_the_rows(spool: Spool, database: Database) -> None:
    """DESIGN.md §5: an exception that is not a database error is our bug: that kind stops,
    its rows are kept (not buried), a person is told, and the other kinds flow."""
    good = to_payload(LlmCall(model="m"))
    odd = dict(good, id="6f70656e-0000-4000-8000-000000000001", new_field=1)
    del odd["host"]  # an entry from some other version: the handler cannot build a row from it
    snapshot = to_payload(MetricsSnapshot(host="h", boot_id=uuid.uuid4()))
    spool.append_many([(LLM_CALL, good), (LLM_CALL, odd), (METRICS_SNAPSHOT, snapshot)])
    flusher = Flusher(spool, database, HANDLERS)
    assert await flusher.drain(timeout_s=30)
    assert list(flusher.halted) == [LLM_CALL] and "TypeError" in flusher.halted[LLM_CALL]
    assert spool.pending() == 2 and spool.dead() == 0 and flusher.buried == 0
    assert await llm_call_count(database) == 0
    async with database.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM metrics_snapshots")).fetchone()
    assert row == (1,)

    async def fixed(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:  # the next release
        rows = [{"host": None, **{k: v for k, v in p.items() if k != "new_field"}} for p in payloads]
        await HANDLERS[LLM_CALL](conn, rows)

    assert await Flusher(spool, database, {**HANDLERS, LLM_CALL: fixed}).drain(timeout_s=30)
    assert spool.pending() == 0 and await llm_call_count(database) == 2


async def test_entries_wait_for_a_database_without_the_schema(empty_db_url: str, tmp_path: Path) -> None:
    from openclaw.db import migrate

    spool = Spool(tmp_path / "spool.db")
    spool.append(LLM_CALL, to_payload(LlmCall(model="m")))
    async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=empty_db_url)) as db:
        flusher = Flusher(spool, db, HANDLERS)
        assert not await flusher.drain(timeout_s=5)  # not migrated: nothing is buried
        assert spool.pending() == 1 and spool.dead() == 0
        async with await psycopg.AsyncConnection.connect(empty_db_url, autocommit=True) as conn:
            await migrate(conn)
        assert await flusher.drain(timeout_s=30) and spool.pending() == 0


@pytest.mark.parametrize(
    "poison_ddl",
    [
        pytest.param(
            "ALTER TABLE messages ADD CONSTRAINT no_poison CHECK (content NOT LIKE 'poison%')", id="23514"
        ),
        # a btree entry over 2.7 KB: SQLSTATE 54000, which psycopg calls an OperationalError
        pytest.param("CREATE INDEX poison_index ON messages (content)", id="54000"),
    ],
)
async def test_a_row_postgres_refuses_is_an_error_for_that_turn_not_an_outage(
    db_url: str, isolated_environment: Path, poison_ddl: str
) -> None:
    """Finding 5 (and 1): in postgres mode a data error was taken for an outage: the write
    went to the outbox, which could never ship it, and the session's later writes queued
    behind it for good. Now it is an error for that turn, and the next turn goes on."""
    from openclaw.errors import DatabaseError

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(poison_ddl)
    poison = "poison " + " ".join(str(uuid.uuid4()) for _ in range(200))  # ~7 KB, incompressible
    spool = Spool(isolated_environment / "outbox" / "spool.db")
    async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=db_url)) as database:
        store = ResilientSessionStore(PostgresSessionStore(database, "main"), spool)
        key = "agent:main:webhook:poison"
        with pytest.raises(DatabaseError, match="Postgres refused to store this message"):
            await store.append_message(key, Message(Role.USER, content=poison))
        assert spool.pending() == 0  # nothing spooled behind which the session would wait
        await store.append_message(key, Message(Role.USER, content="fine"))
        assert [m.content for m in await store.load_messages(key)] == ["fine"]
    spool.close()
