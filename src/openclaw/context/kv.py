"""The project context store: JSON values under text keys (e.g. `current_focus`)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from openclaw.context.models import ContextEntry
from openclaw.context.redact import looks_secret
from openclaw.errors import NotFoundError, UsageError


def _check_key(key: str) -> str:
    if not key.strip():
        raise UsageError("context key must not be empty")
    return key


async def set_value(conn: AsyncConnection, key: str, value: Any) -> ContextEntry:
    """Store `value` under `key`; one that looks like a credential is marked secret, and the
    coding assistant's reader never sees it (`redact.looks_secret` decides)."""
    async with conn.cursor(row_factory=class_row(ContextEntry)) as cur:
        await cur.execute(
            """INSERT INTO project_context (key, value, secret) VALUES (%s, %s, %s)
               ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, secret = EXCLUDED.secret,
                                               updated_at = now()
               RETURNING key, value, updated_at""",
            (_check_key(key), Jsonb(value), looks_secret(key, value)),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def get_value(conn: AsyncConnection, key: str) -> ContextEntry:
    async with conn.cursor(row_factory=class_row(ContextEntry)) as cur:
        await cur.execute("SELECT key, value, updated_at FROM project_context WHERE key = %s", (key,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no context value under key {key!r}")
    return row


async def list_values(conn: AsyncConnection) -> list[ContextEntry]:
    async with conn.cursor(row_factory=class_row(ContextEntry)) as cur:
        await cur.execute("SELECT key, value, updated_at FROM project_context ORDER BY key")
        return await cur.fetchall()


async def delete_value(conn: AsyncConnection, key: str) -> None:
    cur = await conn.execute("DELETE FROM project_context WHERE key = %s", (key,))
    if cur.rowcount == 0:
        raise NotFoundError(f"no context value under key {key!r}")
