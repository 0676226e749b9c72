"""The SessionStore contract, run against every backend (sqlite, postgres, dual)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from openclaw.chat import Message, Role
from openclaw.db import Database
from openclaw.outbox import Flusher, Spool
from openclaw.sessions import Backend, SessionStore, open_store
from openclaw.sessions.mirror import OUTBOX_HANDLERS as HANDLERS
from openclaw.sessions.mirror import TOKENS_ADD, DualSessionStore
from openclaw.sessions.postgres_store import PostgresSessionStore
from openclaw.sessions.resilient import ResilientSessionStore
from openclaw.sessions.sqlite_store import SqliteSessionStore
from tests.sessions_support import at, sample_turn


@pytest.fixture(params=[*(b.value for b in Backend), "plain postgres"])
async def store(
    request: pytest.FixtureRequest, database: Database, isolated_environment: Path
) -> AsyncIterator[SessionStore]:
    spool = Spool(isolated_environment / "outbox" / "spool.db")
    store: SessionStore
    if request.param == "plain postgres":  # what the resilient store wraps, on its own
        store = PostgresSessionStore(database, "main")
    else:
        store = open_store(
            Backend(request.param), agent="main", home=isolated_environment, database=database, spool=spool
        )
        if request.param == Backend.POSTGRES.value:
            assert isinstance(store, ResilientSessionStore)
    yield store
    if isinstance(store, DualSessionStore):
        # Whatever the test did, the Postgres mirror ends up equal to the SQLite truth.
        flusher = Flusher(spool, database, HANDLERS)
        assert await flusher.drain(timeout_s=30)
        assert flusher.buried == 0
        mirror = PostgresSessionStore(database, "main")
        for info in await store.list_sessions(limit=1000):
            assert await mirror.load_messages(info.session_key) == await store.load_messages(info.session_key)
            pg = await mirror.get_session(info.session_key)
            assert pg is not None
            assert (pg.agent_name, pg.model, pg.total_tokens, pg.message_count, pg.created_at) == (
                info.agent_name,
                info.model,
                info.total_tokens,
                info.message_count,
                info.created_at,
            )
        assert len(await mirror.list_sessions(limit=1000)) == len(await store.list_sessions(limit=1000))
    await store.close()
    spool.close()


async def test_roundtrip_of_every_field(store: SessionStore) -> None:
    key = "tg:main:42:-1001"
    await store.create_session(key, "main", "kimi-k2")
    turn = sample_turn()
    await store.append_message(key, turn[0])
    await store.append_messages(key, turn[1:])
    await store.add_tokens(key, 120)
    await store.add_tokens(key, 30)
    assert await store.load_messages(key) == turn  # content, tool calls, reasoning, None, emoji, times
    info = await store.get_session(key)
    assert info is not None
    assert (info.agent_name, info.model, info.channel, info.user_id) == ("main", "kimi-k2", "telegram", "42")
    assert (info.total_tokens, info.message_count) == (150, 4) and info.updated_at >= info.created_at
    await store.create_session(key, "main", "other-model")  # insert-or-ignore: model kept
    info = await store.get_session(key)
    assert info is not None and info.model == "kimi-k2"
    assert await store.load_messages("tg:main:42:nope") == []
    assert await store.get_session("tg:main:42:nope") is None


async def test_llm_window_and_recent(store: SessionStore) -> None:
    key = "agent:main:cli:7f"
    await store.create_session(key, "main")
    messages = [
        Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, content=f"m{i}", timestamp=at(i))
        for i in range(60)
    ]
    await store.append_messages(key, messages)
    recent = await store.load_recent_messages(key, 5)
    assert [m.content for m in recent] == [f"m{i}" for i in range(55, 60)]
    window = await store.load_llm_messages(key)
    assert [m.content for m in window] == [f"m{i}" for i in range(20, 60)]


async def test_list_find_delete_prune_stats(store: SessionStore) -> None:
    keys = ["tg:main:1:2", "tg:main:1:23", "tg:main:1:2:5f1e", "tg:ma_n:1:2", "dc:main:9:9"]
    for i, key in enumerate(keys):  # no create_session: sessions take their messages' times
        await store.append_message(key, Message(Role.USER, content=key, timestamp=at(100 + i)))
    latest = await store.find_latest_session("tg:main:1:2")
    assert latest is not None and latest.session_key == "tg:main:1:2:5f1e"  # never chat 23
    latest = await store.find_latest_session("tg:main:1:23")
    assert latest is not None and latest.session_key == "tg:main:1:23"
    assert await store.find_latest_session("tg:m_in:1:2") is None  # '_' is not a wildcard
    assert await store.find_latest_session("tg:main:1") is not None
    listed = await store.list_sessions()
    assert [s.session_key for s in listed] == list(reversed(keys))
    assert [s.session_key for s in await store.list_sessions(agent="ma_n")] == ["tg:ma_n:1:2"]
    assert len(await store.list_sessions(limit=2)) == 2
    stats = await store.stats()
    assert (stats.sessions, stats.messages) == (5, 5)
    assert stats.sessions_by_agent == {"main": 4, "ma_n": 1}
    assert stats.sessions_by_channel == {"telegram": 4, "discord": 1}
    assert await store.delete_session("dc:main:9:9") and not await store.delete_session("dc:main:9:9")
    assert await store.load_messages("dc:main:9:9") == []
    # The sample sessions were last updated in March 2026: older than 30 days.
    await store.create_session("agent:main:cli:fresh", "main")
    assert await store.prune(timedelta(days=30), agent="ma_n") == 1
    assert await store.prune(timedelta(days=30)) == 3
    assert [s.session_key for s in await store.list_sessions()] == ["agent:main:cli:fresh"]


async def test_messages_before_create_session(store: SessionStore) -> None:
    # openclaw-rs never enforced the foreign key; a message may arrive first.
    await store.append_message("cron:main:1", Message(Role.USER, content="wake up", timestamp=at(0)))
    assert [m.content for m in await store.load_messages("cron:main:1")] == ["wake up"]


async def test_sqlite_file_is_the_rust_format(isolated_environment: Path) -> None:
    store = SqliteSessionStore(isolated_environment / "agents" / "main" / "sessions.db", "main")
    await store.create_session("tg:main:1:2", "main", "kimi-k2")
    await store.append_messages("tg:main:1:2", sample_turn())
    await store.close()
    conn = sqlite3.connect(isolated_environment / "agents" / "main" / "sessions.db")
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    rows = conn.execute(
        "SELECT role, content, tool_calls_json, tool_call_id, timestamp_ms FROM messages ORDER BY id"
    )
    rows = rows.fetchall()
    # serde_json's compact form, arguments a JSON-encoded string
    assert rows[1][2].startswith('[{"id":"call_1","type":"function","function":{"name":"exec","arguments":"{')
    assert json.loads(rows[1][2])[0]["function"]["arguments"] == json.dumps({"command": "ls -la ~/données"})
    assert rows[2][3] == "call_1" and rows[0][4] == int(at(0).timestamp() * 1000)
    assert conn.execute("SELECT model, created_at_ms > 0 FROM sessions").fetchone() == ("kimi-k2", 1)
    # One addition, which openclaw-rs never reads: the file's id (its messages' uids derive from it)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"sessions", "messages", "sqlite_sequence", "openclaw_file_identity"}
    conn.close()


async def test_a_file_gets_one_id_that_stays(isolated_environment: Path) -> None:
    path = isolated_environment / "agents" / "main" / "sessions.db"
    first = SqliteSessionStore(path, "main")
    await first.append_messages("tg:main:1:2", sample_turn())
    second = SqliteSessionStore(path, "main")  # another process, or the next start
    assert second.identity == first.identity and len(first.identity.segments) == 1
    assert first.identity.legacy_rowid_max == 0  # a new file: no row from before the id
    await first.close()
    await second.close()


async def test_a_replayed_token_increment_adds_once(conn: psycopg.AsyncConnection) -> None:
    """Postgres mode spools "add N tokens" during an outage; a crash after the flusher's
    commit and before the spool cleanup replays it: the uid makes the replay a no-op."""
    await conn.execute(
        "INSERT INTO sessions (session_key, agent_name, total_tokens) VALUES ('tg:main:1:1', 'main', 10)"
    )
    entry = {"key": "tg:main:1:1", "add": 5, "uid": str(uuid.uuid4())}
    for _ in range(2):  # shipped, then replayed
        async with conn.transaction():
            await HANDLERS[TOKENS_ADD](conn, [entry])
    await HANDLERS[TOKENS_ADD](conn, [{"key": "tg:main:1:1", "add": 1}])  # spooled by an older openclaw
    row = await (await conn.execute("SELECT total_tokens FROM sessions")).fetchone()
    assert row == (16,)


async def test_old_applied_uids_are_pruned(conn: psycopg.AsyncConnection) -> None:
    old, recent = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO outbox_applied (uid, applied_at)"
        " VALUES (%s, now() - interval '31 days'), (%s, now() - interval '29 days')",
        (old, recent),
    )
    await HANDLERS[TOKENS_ADD](conn, [{"key": "tg:main:1:1", "add": 1, "uid": str(uuid.uuid4())}])
    rows = await (await conn.execute("SELECT uid FROM outbox_applied")).fetchall()
    assert old not in {r[0] for r in rows} and recent in {r[0] for r in rows} and len(rows) == 2
