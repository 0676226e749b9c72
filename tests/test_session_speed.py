"""The Postgres session store's fast paths (issue 14): single statements in autocommit, one
round trip each, and a session's history read through its own index."""

from __future__ import annotations

import json

import psycopg
import pytest

from openclaw.chat import Message, Role
from openclaw.db import Database
from openclaw.sessions import postgres_store
from openclaw.sessions.postgres_store import PostgresSessionStore

KEY = "tg:main:1:1"


async def test_a_block_in_autocommit_leaves_the_next_block_its_transaction(database: Database) -> None:
    """The pool hands every connection back out of autocommit: a later block that fails
    rolls back what it wrote."""
    async with database.connection(autocommit=True) as conn:
        assert conn.autocommit
    for n in range(database.pool.max_size + 1):  # whichever pooled connection comes next
        with pytest.raises(RuntimeError):
            async with database.connection() as conn:
                assert not conn.autocommit
                await conn.execute(f"CREATE TABLE rolled_back_{n} (x int)")
                raise RuntimeError("the block fails")
    async with database.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'rolled_back_%'")
        assert await cur.fetchone() == (0,)


async def test_history_reads_the_last_messages_alone_however_long_the_session(
    database: Database, conn: psycopg.AsyncConnection
) -> None:
    store = PostgresSessionStore(database, "main")
    await store.append_messages(KEY, [Message(Role.USER, content="first")])
    await store.append_messages("tg:main:2:2", [Message(Role.USER, content="another chat")])
    many = (
        "INSERT INTO messages (session_id, role, content)"
        " SELECT s.id, 'user', repeat('words ', 40) || g FROM sessions s, generate_series(1, 20000) g"
        " WHERE s.session_key = %s"
    )
    await conn.execute(many, (KEY,))
    await store.append_messages(KEY, [Message(Role.ASSISTANT, content="the last")])
    await conn.execute(many, ("tg:main:2:2",))  # the newest rows are another chat's
    await conn.execute("ANALYZE sessions, messages")
    recent = await store.load_recent_messages(KEY, 40)
    assert len(recent) == 40 and recent[-1].content == "the last"
    query = postgres_store._MESSAGE_SELECT + postgres_store.LAST_FIRST  # what load_recent_messages runs
    cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)" + query, {"key": KEY, "limit": 40})
    row = await cur.fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    top = plan[0]["Plan"]
    buffers = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
    # 40 messages, their index entries and the session's row: a few pages. Not the
    # session's 20,000 messages read and sorted (a join on the key), nor the other chat's
    # newer ones walked past (the table's primary key, backwards).
    assert buffers < 60, json.dumps(plan, indent=1)
