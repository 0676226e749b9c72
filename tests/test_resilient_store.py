"""The resilience decorator around the plain Postgres store (DESIGN.md §5): the edge cases
it owns, against a real Postgres, a real spool and a real broken connection."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import PoolTimeout

from openclaw.chat import Message, Role
from openclaw.db import Database
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.outbox import Flusher, Spool
from openclaw.sessions.mirror import MESSAGES, messages_entry
from openclaw.sessions.mirror import OUTBOX_HANDLERS as HANDLERS
from openclaw.sessions.postgres_store import PostgresSessionStore
from openclaw.sessions.resilient import ResilientSessionStore
from tests.sessions_support import TcpProxy, at
from tests.waiting import until


@pytest.fixture
async def spool(isolated_environment: Path) -> AsyncIterator[Spool]:
    spool = Spool(isolated_environment / "outbox" / "spool.db")
    yield spool
    spool.close()


def resilient(database: Database, spool: Spool) -> ResilientSessionStore:
    """A gateway process's store, as `open_store` wires it."""
    return ResilientSessionStore(PostgresSessionStore(database, "main"), spool)


def said(text: str, second: float) -> Message:
    return Message(Role.USER, content=text, timestamp=at(second))


async def spooled_by_an_earlier_run(spool: Spool, key: str, messages: list[Message]) -> None:
    """What a run (or another gateway process) left in the spool during an outage."""
    uids = [str(uuid.uuid4()) for _ in messages]
    assert await spool.put(MESSAGES, messages_entry(key, "main", messages, uids))


async def drain(spool: Spool, database: Database) -> None:
    flusher = Flusher(spool, database, HANDLERS)
    assert await flusher.drain(timeout_s=30)
    assert spool.pending() == 0 and spool.dead() == 0


def contents(messages: list[Message]) -> list[str | None]:
    return [m.content for m in messages]


async def test_a_session_waits_for_its_own_spooled_writes_only(database: Database, spool: Spool) -> None:
    """Edge case 1: another session's (another process's) backlog does not hold this one
    in memory once its own entries have shipped."""
    await spooled_by_an_earlier_run(spool, "tg:main:1:1", [said("mine, spooled", 0)])
    store = resilient(database, spool)
    await store.append_message("tg:main:1:1", said("mine, behind it", 1))
    assert spool.pending() == 2  # queued behind its own earlier write
    await drain(spool, database)  # this session's backlog ships...
    await spooled_by_an_earlier_run(spool, "tg:main:2:2", [said("another's", 2)])  # ...another's waits
    await store.append_message("tg:main:1:1", said("straight to Postgres", 3))
    assert spool.pending() == 1
    plain = PostgresSessionStore(database, "main")
    assert contents(await plain.load_messages("tg:main:1:1")) == [
        "mine, spooled",
        "mine, behind it",
        "straight to Postgres",
    ]
    # Its history is Postgres's again, not the memory window's: a row only Postgres has shows.
    await plain.append_message("tg:main:1:1", said("written by another gateway", 4))
    recent = await store.load_recent_messages("tg:main:1:1", 10)
    assert contents(recent)[-1] == "written by another gateway"
    await store.close()


async def test_a_delete_does_not_run_ahead_of_the_sessions_spooled_writes(
    database: Database, spool: Spool
) -> None:
    """Edge case 2: /clear while the session's messages still wait in the spool. Run at
    once, the delete would find nothing and the replay would bring the session back."""
    key = "tg:main:3:3"
    await spooled_by_an_earlier_run(spool, key, [said("forget me", 0), said("me too", 1)])
    store = resilient(database, spool)
    deleted = await store.delete_session(key)
    assert await store.load_recent_messages(key, 10) == []  # already forgotten here
    await store.append_message(key, said("a fresh start", 2))  # after the delete, in order
    await drain(spool, database)
    assert contents(await store.load_messages(key)) == ["a fresh start"]
    assert deleted  # as far as this process knows, the session was there
    await store.close()


async def test_prune_spares_the_sessions_with_spooled_writes(database: Database, spool: Spool) -> None:
    """Edge case 2, prune: a session whose last writes wait in the spool is not stale.
    Pruned now, the replay would re-create it with those writes alone."""
    plain = PostgresSessionStore(database, "main")
    await plain.append_messages("tg:main:4:4", [said("old, but the chat goes on", 0)])
    await plain.append_messages("tg:main:5:5", [said("old and over", 0)])
    await spooled_by_an_earlier_run(spool, "tg:main:4:4", [said("recent, spooled", 10)])
    store = resilient(database, spool)
    assert await store.prune(timedelta(days=30)) == 1  # the sample times are from March 2026
    await drain(spool, database)
    assert contents(await plain.load_messages("tg:main:4:4")) == [
        "old, but the chat goes on",
        "recent, spooled",
    ]
    assert await plain.get_session("tg:main:5:5") is None
    await store.close()


async def test_after_a_restart_history_is_postgres_and_the_spool(database: Database, spool: Spool) -> None:
    """Edge case 3: a session behind the outbox in a new process: no window in memory yet.
    Its history is what Postgres has, then what the spool holds for it, each message once
    (one whose commit's answer was lost is in both)."""
    key = "tg:main:6:6"
    plain = PostgresSessionStore(database, "main")
    stored = [said("stored 0", 0), said("stored 1", 1)]
    both = said("committed, answer lost", 2)
    both_uid = uuid.uuid4()
    await plain.append_with_uids(key, [*stored, both], [uuid.uuid4(), uuid.uuid4(), both_uid])
    spooled = [said("spooled 3", 3), said("spooled 4", 4)]
    uids = [str(both_uid), *(str(uuid.uuid4()) for _ in spooled)]
    assert await spool.put(MESSAGES, messages_entry(key, "main", [both, *spooled], uids))
    store = resilient(database, spool)  # the next start: its memory is empty
    history = await store.load_llm_messages(key)
    assert contents(history) == [
        "stored 0",
        "stored 1",
        "committed, answer lost",
        "spooled 3",
        "spooled 4",
    ]
    await store.append_message(key, said("next turn", 5))  # queued behind, and remembered
    assert contents(await store.load_recent_messages(key, 2)) == ["spooled 4", "next turn"]
    await drain(spool, database)
    assert contents(await store.load_recent_messages(key, 40)) == [*contents(history), "next turn"]
    await store.close()


class LosesTheCommitAnswer(TcpProxy):
    """Forwards to Postgres; once armed, the connection that sends a statement naming
    `marker` loses the answer to its commit: the COMMIT's, or in autocommit (where the
    statement commits on its own) the statement's. The server commits, the client sees
    the connection drop (a network cut at the worst moment)."""

    def __init__(self, target_host: str, target_port: int, marker: bytes) -> None:
        super().__init__(target_host, target_port)
        self.marker = marker
        self.armed = False
        self.fired = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._open_target()
        self._writers |= {writer, up_writer}
        seen_marker = False

        async def upstream() -> None:
            nonlocal seen_marker
            with contextlib.suppress(OSError, ConnectionError):
                while data := await reader.read(65536):
                    up_writer.write(data)
                    await up_writer.drain()
                    seen_marker = seen_marker or (self.armed and self.marker in data)
                    if seen_marker and (b"COMMIT" in data or self.marker in data):
                        self.armed = False
                        writer.close()  # the server has the COMMIT; its answer goes nowhere
                        self.fired.set()
                        break
            up_writer.close()

        async def downstream() -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await up_reader.read(65536):
                    if self.fired.is_set() and writer.is_closing():
                        continue
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream())
        self._writers -= {writer, up_writer}


async def test_tokens_count_once_when_the_commit_answer_is_lost(
    db_url: str, database: Database, spool: Spool
) -> None:
    """Edge case 4: the addition committed, the connection dropped before the answer: the
    store spools it (it cannot know), and the spooled copy adds nothing when it ships."""
    params = conninfo_to_dict(db_url)
    proxy = LosesTheCommitAnswer(
        str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432), b"total_tokens"
    )
    await proxy.start()
    proxied = await Database.open(
        DatabaseTarget(TargetSource.OPTION, url=make_conninfo(db_url, host="127.0.0.1", port=proxy.port)),
        wait=False,
        pool_wait_s=5,
    )
    key = "tg:main:7:7"
    try:
        store = resilient(proxied, spool)
        await store.create_session(key, "main", "kimi-k2")
        await store.add_tokens(key, 10)
        proxy.armed = True
        await store.add_tokens(key, 32)  # committed; its answer lost; spooled
        assert proxy.fired.is_set()
        assert spool.pending() == 1

        async def total() -> int | None:
            async with await psycopg.AsyncConnection.connect(db_url) as conn:
                cur = await conn.execute("SELECT total_tokens FROM sessions WHERE session_key = %s", (key,))
                row = await cur.fetchone()
            return None if row is None else int(row[0])

        async def committed() -> bool:
            return await total() == 42

        await until(committed, what="the addition whose answer was lost, committed")
        await drain(spool, database)
        assert await total() == 42  # and its spooled copy added nothing
        await store.close()
    finally:
        await proxied.close()
        await proxy.stop()


async def test_without_postgres_writes_are_spooled_and_history_comes_from_memory(
    db_url: str, database: Database, spool: Spool
) -> None:
    """The breaker: once Postgres failed, writes go to the spool at once (no pool wait
    each) and the window answers; a row Postgres refuses is an error, not spooled."""
    params = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    await proxy.start()
    proxied = await Database.open(
        DatabaseTarget(TargetSource.OPTION, url=make_conninfo(db_url, host="127.0.0.1", port=proxy.port)),
        wait=False,
        pool_wait_s=1,
    )
    key = "tg:main:8:8"
    try:
        store = resilient(proxied, spool)
        await store.append_message(key, said("before", 0))
        assert contents(await store.load_recent_messages(key, 40)) == ["before"]
        proxy.cut()
        await store.append_message(key, said("during 1", 1))
        await store.append_message(key, said("during 2", 2))
        await store.add_tokens(key, 5)
        assert spool.pending() == 3
        assert contents(await store.load_recent_messages(key, 40)) == ["before", "during 1", "during 2"]
        latest = await store.find_latest_session("tg:main:8")
        assert latest is not None and latest.session_key == key
        proxy.restore()
        await until(lambda: drain_once(spool, database), what="the spool to ship once Postgres is back")
        assert contents(await store.load_messages(key)) == ["before", "during 1", "during 2"]
        info = await store.get_session(key)
        assert info is not None and info.total_tokens == 5
        await store.close()
    finally:
        await proxied.close()
        await proxy.stop()


async def drain_once(spool: Spool, database: Database) -> bool:
    return await Flusher(spool, database, HANDLERS).drain(timeout_s=5) and spool.pending() == 0


async def test_the_plain_store_lets_errors_through(db_url: str) -> None:
    """No breaker, no memory, no spool: an unreachable Postgres is the caller's error."""
    params = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    await proxy.start()
    proxied = await Database.open(
        DatabaseTarget(TargetSource.OPTION, url=make_conninfo(db_url, host="127.0.0.1", port=proxy.port)),
        wait=False,
        pool_wait_s=1,
    )
    try:
        plain = PostgresSessionStore(proxied, "main")
        await plain.append_message("tg:main:9:9", said("stored", 0))
        proxy.cut()
        with pytest.raises((psycopg.Error, PoolTimeout)):
            await plain.append_message("tg:main:9:9", said("not stored", 1))
    finally:
        await proxied.close()
        await proxy.stop()


async def test_after_a_restart_a_spooled_delete_hides_what_came_before(
    database: Database, spool: Spool
) -> None:
    """Edge cases 2 and 3 together: a run cleared a session behind the outbox, then talked
    on; the next run's history of it is what came after the delete."""
    key = "tg:main:10:10"
    plain = PostgresSessionStore(database, "main")
    await plain.append_messages(key, [said("in Postgres, cleared", 0)])
    await spooled_by_an_earlier_run(spool, key, [said("spooled, cleared", 1)])
    earlier = resilient(database, spool)
    await earlier.delete_session(key)
    await earlier.append_message(key, said("after the clear", 2))
    await earlier.close()
    store = resilient(database, spool)  # the next start
    assert contents(await store.load_recent_messages(key, 40)) == ["after the clear"]
    await drain(spool, database)
    assert contents(await store.load_recent_messages(key, 40)) == ["after the clear"]
    await store.close()
