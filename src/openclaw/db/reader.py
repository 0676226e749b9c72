"""The read-only login role `openclaw_reader`: the real boundary of what an assistant reads.

It may connect, use the schema `reader` (one view per table, migration 0002) and SELECT
from it; it owns nothing, inherits nothing, cannot create, and its sessions start read
only with a statement timeout, whichever client uses it (our MCP server, or a generic
Postgres MCP server given `openclaw db reader-url`).

Roles belong to the whole server, so the role is made by `openclaw db grant-reader` (or
by `openclaw mcp serve` when its user may create roles), not by a migration. Its password
is generated once and kept in `$OPENCLAW_HOME/reader-url` (mode 0600); another machine
gets the URL from there, or from `OPENCLAW_READER_URL`.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
from pathlib import Path
from urllib.parse import quote, urlencode

from psycopg import AsyncConnection, errors, sql
from psycopg.conninfo import conninfo_to_dict

from openclaw.errors import DatabaseError

ROLE = "openclaw_reader"
SCHEMA = "reader"
STATEMENT_TIMEOUT = "10s"  # for clients that set none themselves
# Memory per sort or hash of a reader's query (four parallel questions once took 3.7 GB of
# backends): what a sort or hash needs past this goes to temporary files, which
# temp_file_limit bounds in turn.
WORK_MEM = "16MB"
HASH_MEM_MULTIPLIER = "1"
READER_URL_ENV = "OPENCLAW_READER_URL"


def reader_url_path(home: Path) -> Path:
    return home / "reader-url"


def reader_url(main_url: str, password: str | None) -> str:
    """The main database's URL with the reader's credentials, as a `postgresql://` URL
    (generic MCP servers take URLs, not `key=value` strings)."""
    params = conninfo_to_dict(main_url)
    user = quote(ROLE) + (":" + quote(password, safe="") if password else "")
    host = str(params.pop("host", "") or "")
    query: dict[str, str] = {}
    netloc_host = host
    if host.startswith("/"):  # a Unix socket directory goes in the query
        query["host"], netloc_host = host, ""
    port = params.get("port")
    netloc = f"{user}@{netloc_host}" + (f":{port}" if port and netloc_host else "")
    if port and not netloc_host:
        query["port"] = str(port)
    for key in ("sslmode", "sslrootcert"):
        if params.get(key):
            query[key] = str(params[key])
    dbname = quote(str(params.get("dbname") or "postgres"))
    return f"postgresql://{netloc}/{dbname}" + (f"?{urlencode(query, safe='/')}" if query else "")


def saved_reader_url(home: Path) -> str | None:
    env = os.environ.get(READER_URL_ENV, "").strip()
    if env:
        return env
    path = reader_url_path(home)
    return path.read_text().strip() if path.is_file() else None


def save_reader_url(home: Path, url: str) -> None:
    path = reader_url_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written 0600 from the first byte: it holds a password.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(url + "\n")


async def role_exists(conn: AsyncConnection) -> bool:
    row = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))).fetchone()
    return row is not None


async def _privileges(conn: AsyncConnection) -> tuple[bool, bool]:
    """(superuser, may create roles) of the current user."""
    row = await (
        await conn.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).fetchone()
    return (bool(row[0]), bool(row[1])) if row else (False, False)


async def can_create_roles(conn: AsyncConnection) -> bool:
    return any(await _privileges(conn))


async def _execute_retrying(conn: AsyncConnection, statement: sql.Composed, attempts: int = 30) -> None:
    """Run an idempotent role statement. The role and its settings belong to the server, so
    servers granting at once (several `mcp serve` starting, on any of its databases) update
    the same catalog row, and all but one get "tuple concurrently updated": try again."""
    for attempt in range(1, attempts + 1):
        try:
            await conn.execute(statement)
            return
        except errors.InternalError_ as exc:
            if "concurrently updated" not in str(exc) or attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0.01, 0.05))  # jitter: the losers must not meet again


async def grant_reader(conn: AsyncConnection, *, new_password: bool) -> str | None:
    """Create the role if missing (or give it a new password when `new_password`) and grant
    it the reader schema of this database. Returns the password it set, if it set one.
    Run on an autocommit connection of a user with CREATEROLE (or a superuser)."""
    if not await can_create_roles(conn):
        raise DatabaseError(
            f"the database user may not create roles; as a superuser, run `openclaw db grant-reader`"
            f" or CREATE ROLE {ROLE} LOGIN and grant it USAGE on schema {SCHEMA}"
        )
    role = sql.Identifier(ROLE)
    password = None
    if not await role_exists(conn):
        password = secrets.token_urlsafe(24)
        try:
            await conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION"
                    " NOBYPASSRLS CONNECTION LIMIT 20 PASSWORD {}"
                ).format(role, sql.Literal(password))
            )
        except Exception as exc:  # another process made it first: keep theirs
            if not await role_exists(conn):
                raise DatabaseError(f"cannot create role {ROLE}: {exc}") from None
            password = None
    elif new_password:
        password = secrets.token_urlsafe(24)
        await conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
    database = sql.Identifier(
        (await (await conn.execute("SELECT current_database()")).fetchone() or ("",))[0]
    )
    schema = sql.Identifier(SCHEMA)
    for statement in (
        "ALTER ROLE {role} SET default_transaction_read_only = on",
        "ALTER ROLE {role} SET jit = off",  # JIT costs seconds on the short questions it is asked
        f"ALTER ROLE {{role}} SET statement_timeout = '{STATEMENT_TIMEOUT}'",
        f"ALTER ROLE {{role}} SET work_mem = '{WORK_MEM}'",
        f"ALTER ROLE {{role}} SET hash_mem_multiplier = {HASH_MEM_MULTIPLIER}",
        "ALTER ROLE {role} IN DATABASE {database} SET search_path = {schema}",
        "GRANT CONNECT ON DATABASE {database} TO {role}",
        "GRANT USAGE ON SCHEMA {schema} TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
    ):
        await _execute_retrying(conn, sql.SQL(statement).format(role=role, database=database, schema=schema))
    if (await _privileges(conn))[0]:  # only a superuser may bound temporary files
        # A sort too big for memory could otherwise fill the server's disk before the timeout.
        await _execute_retrying(conn, sql.SQL("ALTER ROLE {} SET temp_file_limit = '256MB'").format(role))
    return password
