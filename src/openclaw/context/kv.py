"""The project context store: JSON values under text keys (e.g. `current_focus`)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from openclaw.context.models import ContextEntry
from openclaw.context.redact import Redactor, default_redactor, looks_secret
from openclaw.errors import NotFoundError, UsageError


def _check_key(key: str) -> str:
    if not key.strip():
        raise UsageError("context key must not be empty")
    return key


async def set_value(
    conn: AsyncConnection, key: str, value: Any, *, redactor: Redactor | None = None
) -> ContextEntry:
    """Store `value` under `key` with its secrets redacted, by the rules of config snapshots
    (key names, places, value patterns) and the password-like phrases of free text: no
    secret reaches the database, and "the staging password is hunter2" stays a readable
    sentence. A value that looked like a credential (by its key or content) is also marked
    secret, and the coding assistant's reader does not list it at all (`redact.looks_secret`
    decides). `redactor` defaults to this installation's ($OPENCLAW_HOME)."""
    _check_key(key)
    stored = (redactor or default_redactor()).redact_entry(key, value)  # refuses absurd nesting first
    secret = looks_secret(key, value)
    async with conn.cursor(row_factory=class_row(ContextEntry)) as cur:
        await cur.execute(
            """INSERT INTO project_context (key, value, secret) VALUES (%s, %s, %s)
               ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, secret = EXCLUDED.secret,
                                               updated_at = now()
               RETURNING key, value, updated_at""",
            (key, Jsonb(stored), secret),
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


async def scrub_values(conn: AsyncConnection, redactor: Redactor) -> int:
    """Redact every stored value again (values stored before a rule was added, or by an
    older openclaw, may hold secrets); a value that looks like a credential is also marked
    secret. Returns how many rows changed."""
    changed = 0
    async with conn.transaction():
        cur = await conn.execute("SELECT key, value, secret FROM project_context ORDER BY key FOR UPDATE")
        for key, value, secret in await cur.fetchall():
            redacted = redactor.redact_entry(key, value)
            hide = secret or looks_secret(key, value)
            if redacted != value or hide != secret:
                await conn.execute(
                    "UPDATE project_context SET value = %s, secret = %s WHERE key = %s",
                    (Jsonb(redacted), hide, key),
                )
                changed += 1
    return changed
