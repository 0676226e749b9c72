"""Sessions in Postgres: committed before the turn goes on, shared by every gateway."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg_pool import PoolTimeout

from openclaw.chat import Message, Role, parse_tool_calls
from openclaw.db.database import Database
from openclaw.db.sanitize import pg_json_text, pg_text
from openclaw.errors import NotStoredError, first_line
from openclaw.outbox import Spool
from openclaw.outbox.classify import Verdict, classify, is_unavailable
from openclaw.sessions.history import MAX_MESSAGES
from openclaw.sessions.keys import like_prefix, parse_key
from openclaw.sessions.mirror import CREATE, MESSAGES, TOKENS_ADD, messages_entry
from openclaw.sessions.models import SessionInfo, SessionStats
from openclaw.sessions.sqlite_store import to_ms
from openclaw.sessions.store import SessionStore

log = logging.getLogger(__name__)

REMEMBERED_SESSIONS = 1000


class _BehindOutboxError(PoolTimeout):
    """Not an outage: a session's writes queue behind its own earlier ones."""


class _RecentlyDownError(PoolTimeout):
    """Postgres failed a moment ago: not tried again yet (and not logged again)."""


RETRY_AFTER_S = 5.0

_SESSION_SELECT = """
    SELECT s.session_key, s.agent_name, s.model, s.channel, s.user_id, s.created_at, s.updated_at,
           s.total_tokens, (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count
    FROM sessions s
"""
_MESSAGE_SELECT = """
    SELECT m.role, m.content, m.reasoning_content, m.tool_calls_json::text, m.tool_call_id, m.created_at
    FROM messages m JOIN sessions s ON s.id = m.session_id
    WHERE s.session_key = %s
"""

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


class PostgresSessionStore(SessionStore):
    """Sessions in Postgres. Given the outbox spool, it also rides out an outage (DESIGN.md
    §5): writes go to the spool (with the same uids, so nothing lands twice), and the
    history of the sessions this process talked in comes from memory until the spool has
    shipped them."""

    def __init__(self, database: Database, agent: str, spool: Spool | None = None) -> None:
        self.database = database
        self.agent = agent  # for sessions a message arrives in before create_session
        self.spool = spool
        self._recent: OrderedDict[str, deque[Message]] = OrderedDict()  # the last messages, per session
        self._spooled: set[str] = set()  # sessions with writes waiting in the outbox
        self._down_until = 0.0  # after a failure, skip Postgres for a moment instead of waiting each time

    async def _connection(
        self, session_key: str | None = None
    ) -> AbstractAsyncContextManager[AsyncConnection]:
        if self.spool is not None and time.monotonic() < self._down_until:
            raise _RecentlyDownError("Postgres was unreachable a moment ago")
        if session_key is not None and await self._from_memory(session_key):
            # Earlier writes of this session still wait in the outbox: these go after them,
            # or the history would come back out of order.
            raise _BehindOutboxError("this session's earlier writes are still in the outbox")
        return self.database.connection()

    def _remember(self, key: str, messages: Sequence[Message], *, replace: bool = False) -> None:
        window = self._recent.pop(key, None)
        if window is None or replace:
            window = deque(maxlen=MAX_MESSAGES)
        window.extend(messages)
        self._recent[key] = window
        while len(self._recent) > REMEMBERED_SESSIONS:
            self._recent.popitem(last=False)

    async def _fallback(self, kind: str, payload: dict[str, Any], key: str, exc: Exception) -> None:
        """Spool a write Postgres could not take. Only for an outage: a row Postgres refuses
        for what it holds (or a bug) is an error for this turn, not a reason to wait."""
        verdict = classify(exc)
        if verdict is Verdict.BAD_ROW:
            raise NotStoredError(
                f"Postgres refused to store this message: {first_line(exc)}", retryable=False
            ) from exc
        if verdict is Verdict.BUG or self.spool is None:
            raise exc
        if not await self.spool.put(kind, payload):
            raise NotStoredError(
                "Postgres is unreachable and the outbox cannot take more: this message was not stored",
                retryable=True,
            ) from None
        self._spooled.add(key)
        if isinstance(exc, _BehindOutboxError | _RecentlyDownError):
            return
        self._down_until = time.monotonic() + RETRY_AFTER_S
        log.warning(
            "Postgres unreachable (%s): session %s writes wait in the outbox", type(exc).__name__, key
        )

    async def create_session(self, session_key: str, agent: str, model: str = "") -> None:
        info = parse_key(session_key)
        try:
            async with await self._connection(session_key) as conn:
                await conn.execute(
                    """INSERT INTO sessions (session_key, agent_name, model, channel, user_id)
                       VALUES (%s, %s, %s, %s, %s) ON CONFLICT (session_key) DO NOTHING""",
                    (session_key, agent, model, info.channel, info.user_id),
                )
        except Exception as exc:
            now = to_ms(datetime.now(UTC))
            await self._fallback(
                CREATE,
                {
                    "key": session_key,
                    "agent": agent,
                    "model": model,
                    "created_ms": now,
                    "updated_ms": now,
                    "authoritative": False,
                },
                session_key,
                exc,
            )

    async def append_messages(self, session_key: str, messages: Sequence[Message]) -> None:
        uids = [uuid.uuid4() for _ in messages]
        try:
            await self.append_with_uids(session_key, messages, uids)
        except Exception as exc:
            agent = parse_key(session_key).agent or self.agent
            entry = messages_entry(session_key, agent, messages, [str(u) for u in uids])
            await self._fallback(MESSAGES, entry, session_key, exc)
        self._remember(session_key, messages)

    async def append_with_uids(
        self, session_key: str, messages: Sequence[Message], uids: Sequence[uuid.UUID]
    ) -> None:
        """Append with the caller's idempotency keys: a retried append stores nothing twice."""
        if not messages:
            return
        info = parse_key(session_key)
        async with await self._connection(session_key) as conn:
            await conn.execute(
                _APPEND,
                {
                    "key": session_key,
                    "agent": info.agent or self.agent,
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

    async def add_tokens(self, session_key: str, tokens: int) -> None:
        try:
            async with await self._connection(session_key) as conn:
                await conn.execute(
                    "UPDATE sessions SET total_tokens = total_tokens + %s WHERE session_key = %s",
                    (tokens, session_key),
                )
        except Exception as exc:
            entry = {"key": session_key, "add": tokens, "uid": str(uuid.uuid4())}
            await self._fallback(TOKENS_ADD, entry, session_key, exc)

    def behind_outbox(self, session_keys: set[str]) -> None:
        """The outbox holds writes of these sessions from before this process (an earlier
        run, another process) that could not be shipped at start: their new writes queue
        behind them, and their history comes from memory, until those have shipped. Other
        sessions are not held up."""
        self._spooled |= session_keys

    async def _from_memory(self, session_key: str) -> bool:
        """Whether Postgres lacks writes of this session that wait in the outbox (an index
        probe of the spool, off the event loop, for the sessions that had some)."""
        if session_key not in self._spooled:
            return False
        if self.spool is not None and not await asyncio.to_thread(self.spool.has_pending, session_key):
            self._spooled.discard(session_key)  # all shipped: Postgres has this session whole again
            return False
        return True

    async def load_recent_messages(self, session_key: str, limit: int) -> list[Message]:
        if not await self._from_memory(session_key):
            try:
                async with await self._connection() as conn:
                    cur = await conn.execute(
                        _MESSAGE_SELECT + " ORDER BY m.id DESC LIMIT %s", (session_key, limit)
                    )
                    messages = [_message(row) for row in reversed(await cur.fetchall())]
                self._remember(session_key, messages, replace=True)
                return messages
            except Exception as exc:
                if self.spool is None or not is_unavailable(exc):
                    raise
                self._down_until = time.monotonic() + RETRY_AFTER_S
        return list(self._recent.get(session_key, ()))[-limit:]

    async def load_messages(self, session_key: str) -> list[Message]:
        async with self.database.connection() as conn:
            cur = await conn.execute(_MESSAGE_SELECT + " ORDER BY m.id", (session_key,))
            return [_message(row) for row in await cur.fetchall()]

    async def _sessions(
        self,
        where: str,
        params: Sequence[Any],
        connection: AbstractAsyncContextManager[AsyncConnection] | None = None,
    ) -> list[SessionInfo]:
        async with (
            connection or self.database.connection() as conn,
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
        # The session a chat continues is asked for on every message: during an outage (or
        # while this chat's writes wait in the outbox) the sessions this process talked
        # in answer it, newest first.
        remembered = [k for k in reversed(self._recent) if k == prefix or k.startswith(prefix + ":")]
        if not [k for k in remembered if await self._from_memory(k)]:
            try:
                rows = await self._sessions(
                    " WHERE s.session_key = %s OR s.session_key LIKE %s ESCAPE '\\'"
                    " ORDER BY s.updated_at DESC, s.id DESC LIMIT 1",
                    (prefix, like_prefix(prefix)),
                    await self._connection(),  # fails at once while Postgres is known to be down
                )
                return rows[0] if rows else None
            except Exception as exc:
                if self.spool is None or not is_unavailable(exc):
                    raise
                self._down_until = time.monotonic() + RETRY_AFTER_S
        if not remembered:
            return None
        now = datetime.now(UTC)
        key = remembered[0]
        info = parse_key(key)
        return SessionInfo(
            key, self.agent, "", info.channel, info.user_id, now, now, 0, len(self._recent[key])
        )

    async def delete_session(self, session_key: str) -> bool:
        async with self.database.connection() as conn:
            cur = await conn.execute("DELETE FROM sessions WHERE session_key = %s", (session_key,))
            return cur.rowcount > 0

    async def stats(self) -> SessionStats:
        stats = SessionStats()
        async with self.database.connection() as conn:
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
        async with self.database.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM sessions"
                " WHERE updated_at < now() - %s AND (%s::text IS NULL OR agent_name = %s)",
                (older_than, agent, agent),
            )
            return cur.rowcount
