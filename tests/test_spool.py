"""The spool under pressure (issue 11): a backlog of any size costs an append nothing more,
no SQLite I/O runs on the caller's thread, a full or read-only disk is a state the spool
rides out, and failures are sorted by SQLSTATE."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from openclaw.app import OUTBOX_HANDLERS as RUNTIME_HANDLERS
from openclaw.db import Database
from openclaw.db.records import to_payload
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.gateway.metrics import METRICS_SNAPSHOT, MetricsSnapshot
from openclaw.llm.records import LLM_CALL, LlmCall
from openclaw.outbox import Flusher, Spool
from openclaw.outbox.classify import Verdict, classify
from tests.disks import fill, tmpfs
from tests.waiting import until, wait_for


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MB file system that fills up: a full disk without filling the machine's."""
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def llm_calls(n: int) -> list[tuple[str, dict[str, object]]]:
    return [(LLM_CALL, to_payload(LlmCall(model="m", session_key=f"s{i}"))) for i in range(n)]


async def count(database: Database, table: str) -> int:
    async with database.connection() as conn:
        cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        row = await cur.fetchone()
    return row[0] if row else 0


def test_appends_and_counts_never_scan_the_backlog(tmp_path: Path) -> None:
    """Finding 2: `SELECT min(seq), max(seq)` and `count(*)` scan every entry, so an
    append cost 640 ms at 200k entries. Every statement an append or a count runs must be
    answered from an index or a counter, whatever the backlog."""
    spool = Spool(tmp_path / "spool.db")
    spool.append_many(llm_calls(50))
    statements: list[str] = []
    assert spool._conn is not None
    spool._conn.set_trace_callback(statements.append)
    try:
        assert spool.append("session.messages", {"key": "k", "messages": []})
        assert spool.pending() == 51 and spool.dead() == 0 and spool.stats().pending == 51
        assert spool.has_pending("k") and not spool.has_pending("other")
    finally:
        spool._conn.set_trace_callback(None)
    assert statements
    plans = sqlite3.connect(spool.path)
    try:
        for statement in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
                continue
            plan = " ".join(row[3] for row in plans.execute("EXPLAIN QUERY PLAN " + statement))
            assert "SCAN entries" not in plan and "SCAN dead" not in plan, (statement, plan)
    finally:
        plans.close()
        spool.close()


async def test_no_sqlite_io_on_the_event_loop(tmp_path: Path) -> None:
    """Finding 2: the spool ran SQLite on the event loop (with busy_timeout=5000). Now every
    statement runs on the spool's writer thread (or a thread the caller chose for reads)."""
    spool = Spool(tmp_path / "spool.db")
    threads: set[str] = set()
    assert spool._conn is not None
    spool._conn.set_trace_callback(lambda _: threads.add(threading.current_thread().name))
    try:
        assert spool.submit(LLM_CALL, to_payload(LlmCall(model="m")))
        assert await spool.put(METRICS_SNAPSHOT, to_payload(MetricsSnapshot(host="h", boot_id=uuid.uuid4())))
        assert spool.stats().pending == 2  # stats() reads memory: no I/O at all
    finally:
        spool._conn.set_trace_callback(None)
        spool.close()
    assert threads == {"openclaw-spool"}


async def test_a_bad_row_among_many_is_set_aside_and_the_rest_ship_in_one_go(
    tmp_path: Path, database: Database
) -> None:
    """Finding 5: one refused row used to send the whole batch one entry at a time (a
    connection each). The batch is halved in savepoints until the bad rows are found."""
    spool = Spool(tmp_path / "spool.db")
    items = llm_calls(1000)
    for i in (17, 500, 998):  # violate a CHECK (class 23) and a range (class 22)
        items[i] = (LLM_CALL, {**items[i][1], "provider_attempt": 0 if i != 500 else 40000})
    spool.append_many(items)
    flusher = Flusher(spool, database, RUNTIME_HANDLERS)
    assert await flusher.drain(timeout_s=60)
    assert await count(database, "llm_calls") == 997
    assert spool.pending() == 0 and spool.dead() == 3
    reasons = [d.error for d in spool.dead_entries()]
    assert all("[23514]" in r or "[22003]" in r for r in reasons), reasons
    # A person puts them back once Postgres would take them; they ship.
    assert spool.requeue(kind=LLM_CALL) == 3 and spool.dead() == 0 and spool.pending() == 3
    assert spool.drop() == 0
    spool.close()


async def test_a_read_only_standby_is_waited_for_not_buried(
    tmp_path: Path, database: Database, db_url: str, pg_server_url: str
) -> None:
    """Finding 5: after a failover to a read-only standby (SQLSTATE 25006, which psycopg
    calls an InternalError), every row was buried. It is an outage: wait for a primary."""
    name = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    admin = psycopg.connect(pg_server_url, autocommit=True)
    ident = sql.Identifier(str(name))
    admin.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(ident))
    try:
        async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=db_url)) as standby:
            spool = Spool(tmp_path / "spool.db")
            spool.append_many(llm_calls(3))
            flusher = Flusher(spool, standby, RUNTIME_HANDLERS)
            assert not await flusher.drain(timeout_s=10)
            assert flusher.last_error is not None and "25006" in flusher.last_error
            assert spool.pending() == 3 and spool.dead() == 0
    finally:
        admin.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(ident))
        admin.close()
    assert await Flusher(spool, database, RUNTIME_HANDLERS).drain(timeout_s=30)
    assert spool.pending() == 0 and await count(database, "llm_calls") == 3
    spool.close()


def test_failures_are_classified_by_sqlstate() -> None:
    assert classify(psycopg.errors.ReadOnlySqlTransaction()) is Verdict.RETRY
    assert classify(psycopg.errors.SerializationFailure()) is Verdict.RETRY
    assert classify(psycopg.errors.AdminShutdown()) is Verdict.RETRY
    assert classify(psycopg.OperationalError("server closed the connection")) is Verdict.RETRY
    assert classify(psycopg.errors.ProgramLimitExceeded()) is Verdict.BAD_ROW  # 54000, an OperationalError
    assert classify(psycopg.errors.CheckViolation()) is Verdict.BAD_ROW
    assert classify(psycopg.errors.InvalidTextRepresentation()) is Verdict.BAD_ROW
    assert classify(psycopg.errors.SyntaxError()) is Verdict.BUG
    assert classify(KeyError("host")) is Verdict.BUG


def test_a_spool_that_cannot_be_opened_is_a_state_not_a_crash(small_disk: Path) -> None:
    """Finding 3, at start: `database or disk is full` / `unable to open database file`
    killed the gateway. The spool opens, says why it cannot write, and holds entries."""
    fill(small_disk)
    spool = Spool(small_disk / "outbox" / "spool.db", memory_entries=5)
    try:
        stats = spool.stats()
        assert stats.unwritable is not None and "cannot be written" in stats.unwritable
        assert spool.append_many(llm_calls(3))  # held in memory
        assert not spool.append_many(llm_calls(3))  # beyond the memory bound: refused, counted
        stats = spool.stats()
        assert (stats.held_in_memory, stats.refused, spool.pending()) == (3, 3, 3)
    finally:
        spool.close()


async def test_a_full_disk_at_run_time_loses_nothing_and_recovers(
    small_disk: Path, database: Database
) -> None:
    """Finding 3, at run time: the batch was committed to Postgres, then its removal failed
    for lack of space, so it was sent again forever and nothing newer ever shipped."""
    spool = Spool(small_disk / "spool.db")
    spool.append_many(llm_calls(20))  # on disk
    filler = fill(small_disk)
    held = [(LLM_CALL, to_payload(LlmCall(model="held", session_key="h"))) for _ in range(5)]
    assert spool.append_many(held)  # the disk refuses: held in memory
    assert spool.stats().held_in_memory == 5 and spool.stats().unwritable is not None
    shipped: list[int] = []

    async def counting(conn: psycopg.AsyncConnection, payloads: list[dict[str, object]]) -> None:
        shipped.append(len(payloads))
        await RUNTIME_HANDLERS[LLM_CALL](conn, payloads)

    flusher = Flusher(spool, database, {LLM_CALL: counting})
    assert await flusher.drain(timeout_s=30)
    assert await count(database, "llm_calls") == 25 and sum(shipped) == 25
    assert spool.stats().held_in_memory == 0
    assert await flusher.drain(timeout_s=30)  # shipped, not removable yet: not shipped again
    assert sum(shipped) == 25
    filler.unlink()  # space again
    spool.append_many(llm_calls(2))
    assert await flusher.drain(timeout_s=30)
    await until(lambda: spool.pending() == 0, what="the shipped entries to be removed")
    assert await count(database, "llm_calls") == 27 and sum(shipped) == 27 and spool.dead() == 0
    spool.close()


def test_a_read_only_disk_holds_entries_until_it_is_writable(small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        spool = Spool(small_disk / "spool.db")  # `unable to open database file` at start
        assert spool.append_many(llm_calls(3))
        assert spool.stats().held_in_memory == 3 and spool.stats().unwritable is not None
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert spool.append_many(llm_calls(1))
    wait_for(lambda: spool.stats().held_in_memory == 0, what="the held entries to reach the disk")
    assert spool.stats().unwritable is None and spool.pending() == 4
    assert [e.in_memory for e in spool.peek(10)] == [False] * 4  # all, in order
    spool.close()


async def test_a_row_refused_while_held_in_memory_is_set_aside_not_lost(
    small_disk: Path, database: Database
) -> None:
    """A row Postgres refuses for what it holds goes to `dead` with its reason, even when
    the disk was full as it was written (held in memory): there once the disk has room."""
    spool = Spool(small_disk / "spool.db")
    spool.append_many(llm_calls(1))  # the file exists
    filler = fill(small_disk)
    bad = to_payload(LlmCall(model="m", provider_attempt=0))  # violates a CHECK
    assert spool.append_many([(LLM_CALL, bad), *llm_calls(2)])
    assert spool.stats().held_in_memory == 3
    flusher = Flusher(spool, database, RUNTIME_HANDLERS)
    assert await flusher.drain(timeout_s=30)
    assert await count(database, "llm_calls") == 3 and spool.stats().held_in_memory == 0
    assert spool.dead() == 1 and spool.stats().dead == 1  # counted while in memory
    filler.unlink()
    wait_for(lambda: spool.dead_entries(), what="the set-aside row to reach the disk")
    [dead] = spool.dead_entries()
    assert "[23514]" in dead.error and dead.kind == LLM_CALL
    assert spool.dead() == 1 and spool.requeue() == 1
    spool.close()


async def test_a_cancelled_put_keeps_its_entry_and_the_writer_alive(tmp_path: Path) -> None:
    """A turn that times out while its write waits for the commit must not take the
    writer thread down with it (every later append would wait for ever)."""
    spool = Spool(tmp_path / "spool.db")
    for _ in range(20):
        task = asyncio.create_task(spool.put(LLM_CALL, to_payload(LlmCall(model="cancelled"))))
        await asyncio.sleep(0)  # handed over, not committed yet
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await asyncio.wait_for(spool.put(LLM_CALL, to_payload(LlmCall(model="after"))), 30)
    assert spool.pending() == 21  # the cancelled callers' entries were kept
    spool.close()


async def test_entries_behind_the_cursor_ship_while_traffic_goes_on(
    tmp_path: Path, database: Database
) -> None:
    """A requeued entry (at its old place, behind the flusher's position) ships while new
    entries keep arriving; before, a round only ended when the spool ran empty."""
    spool = Spool(tmp_path / "spool.db")
    requeued = LlmCall(model="requeued")
    spool.append(LLM_CALL, to_payload(requeued))
    spool.bury(spool.peek(1)[0], "set aside by hand")
    flusher = Flusher(spool, database, RUNTIME_HANDLERS, interval_s=0.05)
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            spool.submit(LLM_CALL, to_payload(LlmCall(model="traffic")))
            await asyncio.sleep(0.01)

    running = [asyncio.create_task(flusher.run(stop)), asyncio.create_task(traffic())]
    try:
        await until(lambda: count(database, "llm_calls"), what="traffic to ship")
        assert spool.requeue() == 1

        async def shipped() -> bool:
            async with database.connection() as conn:
                cur = await conn.execute("SELECT 1 FROM llm_calls WHERE id = %s", (requeued.id,))
                return await cur.fetchone() is not None

        await until(shipped, what="the requeued entry to ship while traffic goes on")
    finally:
        stop.set()
        await asyncio.gather(*running)
        spool.close()


async def test_memory_held_entries_ship_from_a_read_only_directory(
    small_disk: Path, database: Database
) -> None:
    """No lock file can be made and the reader finds no file: the rows held in memory
    still ship (they used to wait for a disk that never came)."""
    await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,ro", str(small_disk)], check=True)
    spool = Spool(small_disk / "outbox" / "spool.db")
    try:
        assert spool.append_many(llm_calls(3)) and spool.stats().held_in_memory == 3
        assert await Flusher(spool, database, RUNTIME_HANDLERS).drain(timeout_s=30)
        assert await count(database, "llm_calls") == 3 and spool.stats().held_in_memory == 0
    finally:
        spool.close()
        await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,rw", str(small_disk)], check=True)


async def test_text_json_cannot_hold_is_made_storable(tmp_path: Path, database: Database) -> None:
    """A lone surrogate (a provider's broken JSON, an emoji split between stream chunks)
    made the append raise, on the turn's path."""
    spool = Spool(tmp_path / "spool.db")
    assert spool.submit(LLM_CALL, to_payload(LlmCall(model="m", response_content="half an emoji \ud83d")))
    assert await Flusher(spool, database, RUNTIME_HANDLERS).drain(timeout_s=30)
    async with database.connection() as conn:
        row = await (await conn.execute("SELECT response_content FROM llm_calls")).fetchone()
    assert row == ("half an emoji ?",)
    spool.close()


def test_an_earlier_versions_spool_is_counted_once_and_by_every_writer(tmp_path: Path) -> None:
    """A file of the version before (no counters, no session column) while a process of
    that version still appends to it: the counts and the session index stay true."""
    path = tmp_path / "spool.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
        " payload TEXT NOT NULL, created_at_ms INTEGER NOT NULL);"
        "CREATE TABLE dead (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,"
        " created_at_ms INTEGER NOT NULL, error TEXT NOT NULL, failed_at_ms INTEGER NOT NULL);"
    )
    insert = "INSERT INTO entries (kind, payload, created_at_ms) VALUES (?, ?, 0)"
    old.executemany(insert, [("session.messages", '{"key": "a", "messages": []}'), ("llm_call", "{}")])
    spool = Spool(path)
    assert spool.pending() == 2 and spool.has_pending("a") and spool.pending_sessions() == {"a"}
    old.execute(insert, ("session.messages", '{"key": "b", "messages": []}'))  # the old process goes on
    old.execute("DELETE FROM entries WHERE kind = 'llm_call'")
    assert spool.pending() == 2 and spool.has_pending("b")
    old.close()
    spool.close()


async def test_draining_at_shutdown_with_a_full_disk_and_postgres_gone_returns(small_disk: Path) -> None:
    """Finding 3, on SIGTERM: drain() raised sqlite3.Error out of a full spool (exit 1, a
    traceback). It reports that nothing more could ship, and the spool closes."""
    spool = Spool(small_disk / "spool.db")
    spool.append_many(llm_calls(5))
    fill(small_disk)
    assert spool.append_many(llm_calls(2)) and spool.stats().held_in_memory == 2
    gone = DatabaseTarget(TargetSource.OPTION, url="postgresql://postgres@127.0.0.1:1/nowhere")
    database = await Database.open(gone, wait=False, pool_wait_s=1)
    try:
        flusher = Flusher(spool, database, RUNTIME_HANDLERS, connect_timeout_s=1)
        assert not await flusher.drain(timeout_s=10)
        assert flusher.last_error is not None and spool.pending() == 7
    finally:
        await database.close()
        spool.close()  # says what it held in memory, and returns


def test_one_sessions_entries_are_read_by_its_index(tmp_path: Path) -> None:
    """A session's spooled writes (the history of a session behind the outbox, after a
    restart) are found through the session index, not by paging the whole spool."""
    from openclaw.sessions import mirror

    spool = Spool(tmp_path / "spool.db")
    try:
        spool.append_many(
            [
                (mirror.MESSAGES, {"key": "a", "messages": [1]}),
                *llm_calls(50),
                (mirror.MESSAGES, {"key": "b", "messages": [2]}),
                (mirror.MESSAGES, {"key": "a", "messages": [3]}),
                (mirror.DELETE, {"key": "a", "keys": ["a"]}),
            ]
        )
        spool.pending()  # opens the reading connection
        assert spool._reader is not None
        statements: list[str] = []
        spool._reader.set_trace_callback(statements.append)
        assert [(e.kind, e.payload.get("messages")) for e in spool.entries_of("a")] == [
            (mirror.MESSAGES, [1]),
            (mirror.MESSAGES, [3]),
            (mirror.DELETE, None),
        ]
        assert spool.entries_of("nobody") == []
        spool._reader.set_trace_callback(None)
        plans = [
            row[-1]
            for statement in statements
            for row in sqlite3.connect(spool.path).execute(f"EXPLAIN QUERY PLAN {statement}")
        ]
        assert plans and not [plan for plan in plans if plan.startswith("SCAN")], plans
    finally:
        spool.close()
