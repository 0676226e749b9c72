"""Writes of sessions and messages into Postgres, shared by the Postgres store, the
dual-mode mirror and the SQLite importer. Every write is idempotent: sessions merge on
their key, messages on their uid (see `message_uids`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from psycopg import AsyncConnection

from openclaw.db.batch_insert import insert_batch
from openclaw.db.sanitize import pg_json_text
from openclaw.sessions.keys import parse_key

# An addition's uid only has to outlive its spool entry, removed right after the commit
# (or at the next start after a crash): a month is ample, and the table stays small.
APPLIED_UIDS_KEPT = "30 days"

# "Add N tokens", once per uid: the uid is recorded with the increment, in one statement,
# so the same addition applied again (a retry, or the spooled copy of a write whose commit
# answer was lost) adds nothing. `prune` also drops the uids older than `kept`: the
# direct path asks for it now and then, not on every turn (it scans the table).
ADD_TOKENS_ONCE = """
WITH pruned AS (
    DELETE FROM outbox_applied WHERE %(prune)s AND applied_at < now() - %(kept)s::interval
), fresh AS (
    INSERT INTO outbox_applied (uid) SELECT %(uid)s::uuid WHERE %(uid)s::uuid IS NOT NULL
    ON CONFLICT DO NOTHING RETURNING uid
)
UPDATE sessions SET total_tokens = total_tokens + %(add)s
 WHERE session_key = %(key)s AND (%(uid)s::uuid IS NULL OR EXISTS (SELECT 1 FROM fresh))
"""


@dataclass(slots=True)
class SessionRow:
    session_key: str
    agent_name: str
    created_at: datetime
    updated_at: datetime
    model: str = ""
    total_tokens: int | None = None  # None: leave the stored total alone


@dataclass(slots=True)
class MessageRow:
    uid: uuid.UUID | str
    session_key: str
    role: str
    content: str | None
    reasoning_content: str | None
    tool_calls_json: str | None  # JSON text
    tool_call_id: str | None
    created_at: datetime


MESSAGE_COLUMNS = (
    "uid",
    "session_id",
    "role",
    "content",
    "reasoning_content",
    "tool_calls_json",
    "tool_call_id",
    "created_at",
)


async def upsert_sessions(
    conn: AsyncConnection, rows: Sequence[SessionRow], *, authoritative: bool = False
) -> dict[str, int]:
    """Create missing sessions and merge the rest: latest update, a model once known, the
    token total where one is given, and the creation time if `authoritative` (the rows
    come from the session's own record, not from its messages). Returns ids by key."""
    if not rows:
        return {}
    merged: dict[str, SessionRow] = {}
    for row in rows:
        seen = merged.get(row.session_key)
        if seen is None:
            merged[row.session_key] = SessionRow(**{f: getattr(row, f) for f in SessionRow.__slots__})
            continue
        seen.created_at = min(seen.created_at, row.created_at)
        seen.updated_at = max(seen.updated_at, row.updated_at)
        seen.model = seen.model or row.model
        seen.total_tokens = row.total_tokens if row.total_tokens is not None else seen.total_tokens
    keys = list(merged)
    infos = [parse_key(k) for k in keys]
    cur = await conn.execute(
        """INSERT INTO sessions AS s
               (session_key, agent_name, model, channel, user_id, created_at, updated_at, total_tokens)
           SELECT k, a, m, c, u, ca, ua, coalesce(t, 0)
           FROM unnest(%(keys)s::text[], %(agents)s::text[], %(models)s::text[], %(channels)s::text[],
                       %(users)s::text[], %(created)s::timestamptz[], %(updated)s::timestamptz[],
                       %(tokens)s::bigint[]) AS x(k, a, m, c, u, ca, ua, t)
           ON CONFLICT (session_key) DO UPDATE SET
               created_at = CASE WHEN %(authoritative)s THEN EXCLUDED.created_at ELSE s.created_at END,
               updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at),
               model = CASE WHEN s.model = '' THEN EXCLUDED.model ELSE s.model END
           RETURNING id, session_key""",
        {
            "authoritative": authoritative,
            "keys": keys,
            "agents": [merged[k].agent_name for k in keys],
            "models": [merged[k].model for k in keys],
            "channels": [i.channel for i in infos],
            "users": [i.user_id for i in infos],
            "created": [merged[k].created_at for k in keys],
            "updated": [merged[k].updated_at for k in keys],
            "tokens": [merged[k].total_tokens for k in keys],
        },
    )
    ids = {key: session_id for session_id, key in await cur.fetchall()}
    totals = [(k, merged[k].total_tokens) for k in keys if merged[k].total_tokens is not None]
    if totals:
        await conn.execute(
            """UPDATE sessions SET total_tokens = x.t
               FROM unnest(%s::text[], %s::bigint[]) AS x(k, t) WHERE session_key = x.k""",
            ([k for k, _ in totals], [t for _, t in totals]),
        )
    return ids


async def insert_messages(
    conn: AsyncConnection, rows: Sequence[MessageRow], session_ids: dict[str, int]
) -> int:
    """Insert messages in order; ones already stored (same uid) are skipped. Returns rows inserted."""
    return await insert_batch(
        conn,
        "messages",
        MESSAGE_COLUMNS,
        [
            (
                r.uid,
                session_ids[r.session_key],
                r.role,
                r.content,
                r.reasoning_content,
                pg_json_text(r.tool_calls_json),
                r.tool_call_id,
                r.created_at,
            )
            for r in rows
        ],
        on_conflict="(uid) DO NOTHING",
    )


class Rekey(NamedTuple):  # a tuple: the importer makes one for every legacy row it merges
    """A message that may be stored under the uid an older openclaw gave it (`earlier`)."""

    earlier: bytes
    uid: uuid.UUID
    session_id: int
    role: str
    content: str | None
    created_at: datetime


async def rekey_messages(conn: AsyncConnection, rows: Sequence[Rekey]) -> int:
    """Give the stored messages their new uids: a message stored under `earlier` takes
    `uid` if it is the same message (same session, role, time and content) and nothing
    holds `uid` yet. Another machine's message under the same old uid (row 1 of machine B
    when this is row 1 of machine A) is left alone. Call it in the transaction that then
    inserts the rows (ON CONFLICT (uid) DO NOTHING). Returns the messages re-keyed."""
    if not rows:
        return 0
    # Most re-runs find no earlier uid at all (re-keyed already, or never stored): ask with
    # the uids alone first, and send the contents only for the messages that need them.
    cur = await conn.execute(
        "SELECT uid FROM messages WHERE uid = ANY(%s::uuid[])", ([r.earlier.hex() for r in rows],)
    )
    stored = {row[0].bytes for row in await cur.fetchall()}
    rows = [r for r in rows if r.earlier in stored]
    if not rows:
        return 0
    cur = await conn.execute(
        """UPDATE messages m SET uid = x.uid
           FROM unnest(%s::uuid[], %s::uuid[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[])
                AS x(earlier, uid, session_id, role, content, created_at)
           WHERE m.uid = x.earlier AND m.session_id = x.session_id AND m.role = x.role
             AND m.created_at = x.created_at AND m.content IS NOT DISTINCT FROM x.content
             AND NOT EXISTS (SELECT 1 FROM messages n WHERE n.uid = x.uid)""",
        (
            [uuid.UUID(bytes=r.earlier) for r in rows],
            [r.uid for r in rows],
            [r.session_id for r in rows],
            [r.role for r in rows],
            [r.content for r in rows],
            [r.created_at for r in rows],
        ),
    )
    return cur.rowcount
