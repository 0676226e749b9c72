"""What the MCP server holds while it runs: a pool of the read-only role, the functions a
query may call, and (with --allow-writes only) the main database for the context tables.

`openclaw mcp serve` makes it in the background once `initialize` is answered, through
openclaw.mcp.lazy_state.LazyState, so that the answer waits for no Postgres, migration or
reader role, nor for this module's imports (psycopg, the pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import AsyncConnection

from openclaw.db import Database, DatabaseTarget, migrate
from openclaw.db.pool import RecoveringPool, open_pool
from openclaw.db.reader import (
    HASH_MEM_MULTIPLIER,
    ROLE,
    SCHEMA,
    WORK_MEM,
    can_create_roles,
    grant_reader,
    reader_url,
    role_exists,
    save_reader_url,
    saved_reader_url,
)
from openclaw.db.target import redact_url
from openclaw.errors import DatabaseError, first_line
from openclaw.mcp.limits import DEFAULT_TIMEOUT_MS

if TYPE_CHECKING:
    from openclaw.mcp.guard import FunctionPolicy


@dataclass(slots=True)
class ServerState:
    reader: RecoveringPool  # serves again as soon as Postgres answers after an outage
    functions: FunctionPolicy
    writer: Database | None = None  # None: read-only server
    timeout_ms: int = DEFAULT_TIMEOUT_MS


async def prepare_reader(db: Database, home: Path) -> str:
    """Migrate, make sure the reader role exists and holds its grants, and return the URL
    to log in as it."""
    async with await AsyncConnection.connect(db.url, autocommit=True) as conn:
        await migrate(conn)  # applies only what is pending
        saved = saved_reader_url(home)
        if await can_create_roles(conn):
            # Re-granting is cheap and covers views added by later migrations. A password is
            # set only when the role is new: changing it would break other machines' URLs.
            password = await grant_reader(conn, new_password=False)
            if password is not None:
                url = reader_url(db.url, password)
                save_reader_url(home, url)
                return url
        elif not await role_exists(conn):
            raise DatabaseError(
                f"role {ROLE} does not exist and {redact_url(db.url)} may not create it;"
                " a superuser can run `openclaw db grant-reader`"
            )
    return saved or reader_url(db.url, None)


async def open_reader_pool(url: str) -> RecoveringPool:
    kwargs: dict[str, Any] = {
        "application_name": "openclaw-mcp",
        "connect_timeout": 10,
        # Also set on the role (db.reader.grant_reader), which an older grant lacks; RESET
        # ALL between questions returns to these, not to the server's defaults.
        "options": (
            f"-c search_path={SCHEMA} -c work_mem={WORK_MEM} -c hash_mem_multiplier={HASH_MEM_MULTIPLIER}"
        ),
    }
    try:
        probe = await AsyncConnection.connect(url, **kwargs)
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot log in as {ROLE} at {redact_url(url)}: {first_line(exc)}; set OPENCLAW_READER_URL"
            " (printed by `openclaw db reader-url`) or run `openclaw db grant-reader --new-password`"
        ) from None
    await probe.close()
    return await open_pool(
        url,
        kwargs=kwargs,
        min_size=1,
        max_size=4,
        wait_s=30.0,
        reset=_reset_session,
        wait_for_min_size=True,
        open_timeout_s=10,
    )


async def _reset_session(conn: AsyncConnection) -> None:
    """Whatever a question managed to change in its session (a setting, an advisory lock,
    an open cursor), the next one starts clean. Not DISCARD ALL: it would also drop the
    statements psycopg has prepared and still counts on."""
    await conn.set_autocommit(True)  # these cannot run inside a transaction
    await conn.execute("RESET ALL; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()")
    await conn.set_autocommit(False)


@asynccontextmanager
async def open_state(
    target: DatabaseTarget, home: Path, *, allow_writes: bool = False
) -> AsyncIterator[ServerState]:
    """The server's state; the owner's pool stays open only when writes are allowed."""
    db = await Database.open(target, application_name="openclaw-mcp")
    try:
        url = await prepare_reader(db, home)
        if not allow_writes:
            await db.close()
        pool = await open_reader_pool(url)
        try:
            from openclaw.mcp.query import function_policy  # loads pglast: not before it is needed

            async with pool.connection() as conn:
                functions = await function_policy(conn)
            yield ServerState(pool, functions, writer=db if allow_writes else None)
        finally:
            await pool.close()
    finally:
        await db.close()  # also after an error or a cancel half-way (closing twice is harmless)
