"""Dual mode: SQLite is the truth, and every write is mirrored to Postgres through the
outbox. Entries carry absolute values and idempotency keys, so a replay or a flush after
a long outage converges on what the SQLite file says."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection

from openclaw.chat import Message
from openclaw.outbox import Handler, Spool
from openclaw.sessions.message_uids import MessageUids, uid_text
from openclaw.sessions.models import SessionInfo, SessionStats
from openclaw.sessions.pg_writes import (
    ADD_TOKENS_ONCE,
    APPLIED_UIDS_KEPT,
    MessageRow,
    SessionRow,
    insert_messages,
    upsert_sessions,
)
from openclaw.sessions.sqlite_store import SqliteSessionStore, from_ms, to_ms
from openclaw.sessions.store import SessionStore

CREATE = "session.create"
MESSAGES = "session.messages"
TOKENS = "session.tokens"
DELETE = "session.delete"
TOKENS_ADD = "session.tokens_add"  # Postgres mode during an outage: the total is not known here


def messages_entry(key: str, agent: str, messages: Sequence[Message], uids: Sequence[str]) -> dict[str, Any]:
    return {
        "key": key,
        "agent": agent,
        "messages": [
            {
                "uid": uid,
                "role": m.role.value,
                "content": m.content,
                "reasoning_content": m.reasoning_content,
                "tool_calls_json": m.tool_calls_json(),
                "tool_call_id": m.tool_call_id,
                "ms": to_ms(m.timestamp),
            }
            for uid, m in zip(uids, messages, strict=True)
        ],
    }


log = logging.getLogger(__name__)


class DualSessionStore(SessionStore):
    """Reads and writes the SQLite file; mirrors every write into the spool."""

    def __init__(self, sqlite: SqliteSessionStore, spool: Spool) -> None:
        self.sqlite = sqlite
        self.spool = spool
        self.agent = sqlite.agent
        # The uids the importer gives the same rows: they name this file (its identity),
        # so another machine's file with the same agent never collides with this one.
        self.uids = MessageUids(sqlite.identity, self.agent)

    async def _mirror(self, kind: str, payload: dict[str, Any]) -> None:
        # The SQLite write has happened: an outbox that cannot take the mirror loses only
        # the mirror, which `openclaw migrate-sessions` can redo later; say so rather than
        # fail the turn (the spool logs why: full, or no disk and no memory left).
        if not await self.spool.put(kind, payload):
            log.error(
                "outbox: a %s mirror entry was dropped; run 'openclaw migrate-sessions' once the outbox"
                " has room again",
                kind,
            )

    async def create_session(self, session_key: str, agent: str, model: str = "") -> None:
        await self.sqlite.create_session(session_key, agent, model)
        info = await self.sqlite.get_session(session_key)
        if info is not None:
            await self._mirror(
                CREATE,
                {
                    "key": session_key,
                    "agent": info.agent_name,
                    "model": info.model,
                    "created_ms": to_ms(info.created_at),
                    "updated_ms": to_ms(info.updated_at),
                },
            )

    async def append_messages(self, session_key: str, messages: Sequence[Message]) -> None:
        ids = await self.sqlite.append_returning_ids(session_key, messages)
        if ids:
            uids = [
                uid_text(self.uids.uid(rowid, session_key, to_ms(m.timestamp)))
                for rowid, m in zip(ids, messages, strict=True)
            ]
            await self._mirror(MESSAGES, messages_entry(session_key, self.agent, messages, uids))

    async def add_tokens(self, session_key: str, tokens: int) -> None:
        total = await self.sqlite.add_tokens_returning_total(session_key, tokens)
        if total is not None:
            await self._mirror(TOKENS, {"key": session_key, "total": total})

    async def delete_session(self, session_key: str) -> bool:
        deleted = await self.sqlite.delete_session(session_key)
        await self._mirror(DELETE, {"key": session_key, "keys": [session_key]})  # "key": found by session
        return deleted

    async def prune(self, older_than: timedelta, agent: str | None = None) -> int:
        keys = await self.sqlite.prune_returning_keys(older_than, agent)
        if keys:
            await self._mirror(DELETE, {"keys": keys})
        return len(keys)

    async def load_messages(self, session_key: str) -> list[Message]:
        return await self.sqlite.load_messages(session_key)

    async def load_recent_messages(self, session_key: str, limit: int) -> list[Message]:
        return await self.sqlite.load_recent_messages(session_key, limit)

    async def list_sessions(self, agent: str | None = None, limit: int = 50) -> list[SessionInfo]:
        return await self.sqlite.list_sessions(agent, limit)

    async def get_session(self, session_key: str) -> SessionInfo | None:
        return await self.sqlite.get_session(session_key)

    async def find_latest_session(self, prefix: str) -> SessionInfo | None:
        return await self.sqlite.find_latest_session(prefix)

    async def stats(self) -> SessionStats:
        return await self.sqlite.stats()

    async def close(self) -> None:
        await self.sqlite.close()


# ---- applying mirror entries in Postgres (outbox handlers) ----------------------------------


async def _apply_create(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    # From the dual store, the SQLite row is the truth (authoritative); from the Postgres
    # store during an outage, the session may exist already and keeps its creation time.
    for authoritative in (True, False):
        rows = [
            SessionRow(
                p["key"], p["agent"], from_ms(p["created_ms"]), from_ms(p["updated_ms"]), model=p["model"]
            )
            for p in payloads
            if p.get("authoritative", True) is authoritative
        ]
        if rows:
            await upsert_sessions(conn, rows, authoritative=authoritative)


async def _apply_messages(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    sessions: list[SessionRow] = []
    rows: list[MessageRow] = []
    for p in payloads:
        times = [from_ms(m["ms"]) for m in p["messages"]]
        sessions.append(SessionRow(p["key"], p["agent"], min(times), max(times)))
        rows += [
            MessageRow(
                m["uid"],
                p["key"],
                m["role"],
                m["content"],
                m["reasoning_content"],
                m["tool_calls_json"],
                m["tool_call_id"],
                t,
            )
            for m, t in zip(p["messages"], times, strict=True)
        ]
    ids = await upsert_sessions(conn, sessions)
    await insert_messages(conn, rows, ids)


async def _apply_tokens(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    latest = {p["key"]: p["total"] for p in payloads}  # in order: the last total wins
    await conn.execute(
        """UPDATE sessions SET total_tokens = x.t
           FROM unnest(%s::text[], %s::bigint[]) AS x(k, t) WHERE session_key = x.k""",
        (list(latest), list(latest.values())),
    )


async def _apply_tokens_add(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    for n, p in enumerate(payloads):
        # (Entries spooled before uids existed have none and are applied as they are.)
        await conn.execute(
            ADD_TOKENS_ONCE,
            {
                "uid": p.get("uid"),
                "add": p["add"],
                "key": p["key"],
                "prune": n == 0,
                "kept": APPLIED_UIDS_KEPT,
            },
        )


async def _apply_delete(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    keys = [k for p in payloads for k in p["keys"]]
    await conn.execute("DELETE FROM sessions WHERE session_key = ANY(%s)", (keys,))


OUTBOX_HANDLERS: dict[str, Handler] = {
    CREATE: _apply_create,
    MESSAGES: _apply_messages,
    TOKENS: _apply_tokens,
    TOKENS_ADD: _apply_tokens_add,
    DELETE: _apply_delete,
}
