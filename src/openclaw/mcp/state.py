"""What the MCP server holds while it runs: a pool of this database's reader role, the
functions a query may call, and (with --allow-writes only) a pool of its writer role, which
may write the context tables and nothing else. Owner credentials are used only to make
those roles (and migrate), and only when no reader URL is given (openclaw.db.reader).

`openclaw mcp serve` makes it in the background once `initialize` is answered, through
openclaw.mcp.lazy_state.LazyState, so that the answer waits for no Postgres, migration or
reader role, nor for this module's imports (psycopg, the pool)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import AsyncConnection

from openclaw.db import Database, DatabaseTarget, migrate
from openclaw.db.pool import RecoveringPool, open_pool
from openclaw.db.reader import (
    HASH_MEM_MULTIPLIER,
    READER,
    SCHEMA,
    WORK_MEM,
    WRITER,
    ensure_login,
    saved_url,
    url_socket_dir,
    url_user,
)
from openclaw.db.target import TargetSource, redact_url
from openclaw.errors import DatabaseError, first_line
from openclaw.home import pgdata_path
from openclaw.mcp.calls import QueryGate
from openclaw.mcp.limits import DEFAULT_TIMEOUT_MS

if TYPE_CHECKING:
    from openclaw.mcp.guard import FunctionPolicy


@dataclass(slots=True)
class ServerState:
    reader: RecoveringPool  # serves again as soon as Postgres answers after an outage
    functions: FunctionPolicy
    writer: Database | None = None  # None: read-only server
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    # `query` calls running now, at most one fewer than the pool's connections (calls.py)
    gate: QueryGate = field(default_factory=QueryGate)


async def prepare_logins(db: Database, home: Path, *, writer: bool = False) -> tuple[str, str | None]:
    """As the owner: migrate, make sure this database's reader (and with `writer`, its
    writer) role exists and holds its grants, and return the URLs to log in as them."""
    async with await AsyncConnection.connect(db.url, autocommit=True) as conn:
        await migrate(conn)  # applies only what is pending
        # Re-granting is cheap and covers views added by later migrations. A password is
        # set only when a role is new: changing it would break other machines' URLs.
        reader = await ensure_login(conn, db.url, home, READER, rotate_unknown=False)
        written = await ensure_login(conn, db.url, home, WRITER, rotate_unknown=False) if writer else None
    return reader.url, written.url if written else None


async def _start_embedded_for(url: str, home: Path) -> None:
    """A reader URL naming the embedded server's socket (in $OPENCLAW_HOME/pgdata) starts that
    server if it is down, as every other command does: the IDE runs as the same OS user,
    and starting it takes no credential."""
    socket_dir = url_socket_dir(url)
    if socket_dir is None:
        return
    pgdata = await asyncio.to_thread(_resolved, pgdata_path(home))
    if await asyncio.to_thread(_resolved, Path(socket_dir)) != pgdata:
        return
    from openclaw.db.embedded import live_postmaster_pid, start_embedded

    if live_postmaster_pid(pgdata) is None:
        await asyncio.to_thread(start_embedded, pgdata)


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


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
            f"cannot log in as {url_user(url) or 'the reader'} at {redact_url(url)}: {first_line(exc)};"
            " set OPENCLAW_READER_URL (printed by `openclaw db reader-url`) or run"
            " `openclaw db grant-reader --new-password`"
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
    target: DatabaseTarget,
    home: Path,
    *,
    allow_writes: bool = False,
    reader_url: str | None = None,
    writer_url: str | None = None,
) -> AsyncIterator[ServerState]:
    """The server's state.

    With `reader_url` (the IDE's case: `--reader-url`, OPENCLAW_READER_URL) it logs in as
    that role and nothing else: no migration, no role made, `target` unused; writes go
    through `writer_url`, else the writer URL saved in the home. Without it (the developer's
    shell), `target` is the owner's database: migrate, make sure the roles exist, then log
    in as them; the owner's connection is closed before the state is ready."""
    async with AsyncExitStack() as stack:
        if reader_url is None:
            owner = await Database.open(target, application_name="openclaw-mcp")
            stack.push_async_callback(owner.close)  # also after an error or a cancel half-way
            reader_url, made_writer = await prepare_logins(
                owner, home, writer=allow_writes and not writer_url
            )
            writer_url = writer_url or made_writer
            await owner.close()  # closing twice is harmless
        else:
            await _start_embedded_for(reader_url, home)
            if allow_writes and not writer_url:
                writer_url = saved_url(home, WRITER)
                if writer_url is None:
                    raise DatabaseError(
                        "--allow-writes needs the writer role's URL: set OPENCLAW_WRITER_URL (made by"
                        " `openclaw db grant-writer`, printed by `openclaw db writer-url`)"
                    )
        writer = None
        if allow_writes:
            assert writer_url is not None
            try:
                writer = await Database.open(
                    DatabaseTarget(TargetSource.OPTION, url=writer_url), application_name="openclaw-mcp"
                )
            except DatabaseError as exc:
                raise DatabaseError(
                    f"{exc.message} (the writer role); set OPENCLAW_WRITER_URL (printed by"
                    " `openclaw db writer-url`) or run `openclaw db grant-writer --new-password`"
                ) from None
            stack.push_async_callback(writer.close)
        pool = await open_reader_pool(reader_url)
        stack.push_async_callback(pool.close)
        from openclaw.mcp.query import function_policy  # loads pglast: not before it is needed

        async with pool.connection() as conn:
            functions = await function_policy(conn)
        yield ServerState(pool, functions, writer=writer)
