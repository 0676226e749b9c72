"""Sessions in Postgres: committed before the turn goes on, shared by every gateway.

A plain SQL store: errors propagate. The gateway wraps it in `ResilientSessionStore`
(`openclaw.sessions.resilient`), which rides out an outage through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any

from psycopg.rows import class_row

from openclaw.chat import Message, Role, parse_tool_calls
from openclaw.db.database import Database
from openclaw.db.sanitize import pg_json_text, pg_text
from openclaw.sessions.keys import like_prefix, parse_key
from openclaw.sessions.models import SessionInfo, SessionStats
from openclaw.sessions.pg_writes import ADD_TOKENS_ONCE, APPLIED_UIDS_KEPT
from openclaw.sessions.store import IdempotentSessionStore

# The direct path records a uid per addition (see ADD_TOKENS_ONCE): it prunes the old ones
# with one in so many additions, inside the same statement (no round trip of its own).
PRUNE_APPLIED_EVERY = 1000

_SESSION_SELECT = """
    SELECT s.session_key, s.agent_name, s.model, s.channel, s.user_id, s.created_at, s.updated_at,
           s.total_tokens, (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count
    FROM sessions s
"""
# The session's id is looked up first (InitPlans), and a range on it rather than an
# equality makes `ORDER BY session_id, id` the order of idx_messages_session alone: Postgres
# walks this session's index entries, backwards for the last N. Joined on the key, it read
# and sorted all of the session's messages (22.7 ms at 10,000); with an equality on the id
# it may walk the primary key backwards instead, past every newer message of other chats
# (1,228 pages instead of 8, with two chats of 20,000 messages: tests/test_session_speed.py).
_MESSAGE_SELECT = """
    SELECT m.role, m.content, m.reasoning_content, m.tool_calls_json::text, m.tool_call_id, m.created_at
    FROM messages m
    WHERE m.session_id BETWEEN (SELECT id FROM sessions WHERE session_key = %(key)s)
                           AND (SELECT id FROM sessions WHERE session_key = %(key)s)
"""
LAST_FIRST = " ORDER BY m.session_id DESC, m.id DESC LIMIT %(limit)s"
OLDEST_FIRST = " ORDER BY m.session_id, m.id"
_MESSAGE_WITH_UID_SELECT = _MESSAGE_SELECT.replace("SELECT m.role", "SELECT m.uid::text, m.role", 1)

# One statement (the session made or touched, the messages inserted), run in autocommit:
# one round trip, no BEGIN and COMMIT. Messages merge on their uid: a retried append (or
# its spooled copy shipped after a commit whose answer was lost) stores nothing twice.
_APPEND_ONE = """
WITH s AS (
    INSERT INTO sessions AS s (session_key, agent_name, channel, user_id, created_at, updated_at)
    VALUES (%(key)s, %(agent)s, %(channel)s, %(user_id)s, %(time)s, %(time)s)
    ON CONFLICT (session_key) DO UPDATE SET updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at)
    RETURNING id
)
INSERT INTO messages (uid, session_id, role, content, reasoning_content, tool_calls_json, tool_call_id,
                      created_at)
SELECT %(uid)s, s.id, %(role)s, %(content)s, %(reasoning)s, %(tool_calls)s::jsonb, %(tool_call_id)s, %(time)s
FROM s
ON CONFLICT (uid) DO NOTHING
"""
# The same for several messages at once, as arrays (a single message is the common case, and
# plain parameters cost less to send than seven one-element arrays).
_APPEND = """
WITH s AS (
    INSERT INTO sessions AS s (session_key, agent_name, channel, user_id, created_at, updated_at)
    VALUES (%(key)s, %(agent)s, %(channel)s, %(user_id)s, %(first)s, %(last)s)
    ON CONFLICT (session_key) DO UPDATE SET updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at)
    RETURNING id
)
INSERT INTO messages (uid, session_id, role, content, reasoning_content, tool_calls_json, tool_call_id,
                      created_at)
SELECT m.uid, s.id, m.role, m.content, m.reasoning, m.tool_calls::jsonb, m.tool_call_id, m.ts
FROM s, unnest(%(uids)s::uuid[], %(roles)s::text[], %(contents)s::text[], %(reasonings)s::text[],
               %(tool_calls)s::text[], %(tool_call_ids)s::text[], %(times)s::timestamptz[])
        WITH ORDINALITY AS m(uid, role, content, reasoning, tool_calls, tool_call_id, ts, n)
ORDER BY m.n
ON CONFLICT (uid) DO NOTHING
"""


def _message(row: Sequence[Any]) -> Message:
    role, content, reasoning, tool_calls, tool_call_id, created_at = row
    return Message(
        Role(role),
        content=content,
        reasoning_content=reasoning,
        tool_calls=parse_tool_calls(tool_calls),
        tool_call_id=tool_call_id,
        timestamp=created_at,
    )


class PostgresSessionStore(IdempotentSessionStore):
    """Sessions in Postgres, nothing else: every error propagates (psycopg's, the pool's).
    Riding out an outage is `ResilientSessionStore`'s job (`openclaw.sessions.resilient`)."""

    def __init__(self, database: Database, agent: str) -> None:
        self.database = database
        self.agent = agent  # for sessions a message arrives in before create_session
        self._additions = 0

    async def create_session(self, session_key: str, agent: str, model: str = "") -> None:
        info = parse_key(session_key)
        async with self.database.connection(autocommit=True) as conn:
            await conn.execute(
                """INSERT INTO sessions (session_key, agent_name, model, channel, user_id)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT (session_key) DO NOTHING""",
                (session_key, agent, model, info.channel, info.user_id),
            )

    async def append_messages(self, session_key: str, messages: Sequence[Message]) -> None:
        await self.append_with_uids(session_key, messages, [uuid.uuid4() for _ in messages])

    async def append_with_uids(
        self, session_key: str, messages: Sequence[Message], uids: Sequence[uuid.UUID]
    ) -> None:
        """Append with the caller's idempotency keys: a retried append stores nothing twice."""
        if not messages:
            return
        info = parse_key(session_key)
        agent = info.agent or self.agent
        params: dict[str, Any]
        if len(messages) == 1:
            m = messages[0]
            query, params = (
                _APPEND_ONE,
                {
                    "key": session_key,
                    "agent": agent,
                    "channel": info.channel,
                    "user_id": info.user_id,
                    "time": m.timestamp,
                    "uid": uids[0],
                    "role": m.role.value,
                    "content": pg_text(m.content),
                    "reasoning": pg_text(m.reasoning_content),
                    "tool_calls": pg_json_text(m.tool_calls_json()),
                    "tool_call_id": pg_text(m.tool_call_id),
                },
            )
        else:
            query, params = (
                _APPEND,
                {
                    "key": session_key,
                    "agent": agent,
                    "channel": info.channel,
                    "user_id": info.user_id,
                    "first": min(m.timestamp for m in messages),
                    "last": max(m.timestamp for m in messages),
                    "uids": list(uids),
                    "roles": [m.role.value for m in messages],
                    "contents": [pg_text(m.content) for m in messages],
                    "reasonings": [pg_text(m.reasoning_content) for m in messages],
                    "tool_calls": [pg_json_text(m.tool_calls_json()) for m in messages],
                    "tool_call_ids": [pg_text(m.tool_call_id) for m in messages],
                    "times": [m.timestamp for m in messages],
                },
            )
        async with self.database.connection(autocommit=True) as conn:
            await conn.execute(query, params)

    async def add_tokens(self, session_key: str, tokens: int) -> None:
        await self.add_tokens_once(session_key, tokens, uuid.uuid4())

    async def add_tokens_once(self, session_key: str, tokens: int, uid: uuid.UUID) -> None:
        """Add with the caller's idempotency key, recorded in the same statement: the same
        addition retried (or spooled and shipped after a commit whose answer was lost)
        adds nothing. One round trip, as a plain increment."""
        self._additions += 1
        prune = self._additions % PRUNE_APPLIED_EVERY == 1  # the first, then now and then
        async with self.database.connection(autocommit=True) as conn:
            await conn.execute(
                ADD_TOKENS_ONCE,
                {"uid": uid, "add": tokens, "key": session_key, "prune": prune, "kept": APPLIED_UIDS_KEPT},
            )

    async def load_recent_messages(self, session_key: str, limit: int) -> list[Message]:
        async with self.database.connection(autocommit=True) as conn:
            cur = await conn.execute(_MESSAGE_SELECT + LAST_FIRST, {"key": session_key, "limit": limit})
            return [_message(row) for row in reversed(await cur.fetchall())]

    async def load_recent_with_uids(self, session_key: str, limit: int) -> list[tuple[str, Message]]:
        async with self.database.connection(autocommit=True) as conn:
            cur = await conn.execute(
                _MESSAGE_WITH_UID_SELECT + LAST_FIRST, {"key": session_key, "limit": limit}
            )
            return [(row[0], _message(row[1:])) for row in reversed(await cur.fetchall())]

    async def load_messages(self, session_key: str) -> list[Message]:
        async with self.database.connection(autocommit=True) as conn:
            cur = await conn.execute(_MESSAGE_SELECT + OLDEST_FIRST, {"key": session_key})
            return [_message(row) for row in await cur.fetchall()]

    async def _sessions(self, where: str, params: Sequence[Any]) -> list[SessionInfo]:
        async with (
            self.database.connection(autocommit=True) as conn,
            conn.cursor(row_factory=class_row(SessionInfo)) as cur,
        ):
            await cur.execute(_SESSION_SELECT + where, params)
            return await cur.fetchall()

    async def list_sessions(self, agent: str | None = None, limit: int = 50) -> list[SessionInfo]:
        return await self._sessions(
            " WHERE %s::text IS NULL OR s.agent_name = %s ORDER BY s.updated_at DESC, s.id DESC LIMIT %s",
            (agent, agent, limit),
        )

    async def get_session(self, session_key: str) -> SessionInfo | None:
        rows = await self._sessions(" WHERE s.session_key = %s", (session_key,))
        return rows[0] if rows else None

    async def find_latest_session(self, prefix: str) -> SessionInfo | None:
        rows = await self._sessions(
            " WHERE s.session_key = %s OR s.session_key LIKE %s ESCAPE '\\'"
            " ORDER BY s.updated_at DESC, s.id DESC LIMIT 1",
            (prefix, like_prefix(prefix)),
        )
        return rows[0] if rows else None

    async def delete_session(self, session_key: str) -> bool:
        async with self.database.connection(autocommit=True) as conn:
            cur = await conn.execute("DELETE FROM sessions WHERE session_key = %s", (session_key,))
            return cur.rowcount > 0

    async def stats(self) -> SessionStats:
        stats = SessionStats()
        async with self.database.connection(autocommit=True) as conn:
            row = await (
                await conn.execute("SELECT count(*), coalesce(sum(total_tokens), 0) FROM sessions")
            ).fetchone()
            assert row is not None
            stats.sessions, stats.total_tokens = row[0], int(row[1])
            row = await (await conn.execute("SELECT count(*) FROM messages")).fetchone()
            stats.messages = row[0] if row else 0
            cur = await conn.execute("SELECT agent_name, count(*) FROM sessions GROUP BY 1 ORDER BY 1")
            stats.sessions_by_agent = dict(await cur.fetchall())
            cur = await conn.execute(
                "SELECT coalesce(channel, 'other'), count(*) FROM sessions GROUP BY 1 ORDER BY 1"
            )
            stats.sessions_by_channel = dict(await cur.fetchall())
        return stats

    async def prune(self, older_than: timedelta, agent: str | None = None) -> int:
        return len(await self.prune_returning_keys(older_than, agent))

    async def prune_returning_keys(
        self, older_than: timedelta, agent: str | None = None, *, keep: Collection[str] = ()
    ) -> list[str]:
        async with self.database.connection(autocommit=True) as conn:
            cur = await conn.execute(
                "DELETE FROM sessions"
                " WHERE updated_at < now() - %s AND (%s::text IS NULL OR agent_name = %s)"
                " AND NOT session_key = ANY(%s::text[]) RETURNING session_key",
                (older_than, agent, agent, list(keep)),
            )
            return [row[0] for row in await cur.fetchall()]
