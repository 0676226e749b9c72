"""`openclaw db`: the schema and the server."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import typer
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from openclaw.cli.common import (
    JSON_OPTION,
    note,
    open_database,
    print_json,
    print_table,
    run_with_database,
    state,
    when,
)
from openclaw.db import Database, migrate, migration_status, resolve_target
from openclaw.db.embedded import client_program, running_embedded_url, stop_embedded
from openclaw.db.migrate import init_sql
from openclaw.db.reader import READER, WRITER, Kind, ensure_login, saved_url
from openclaw.db.tables import TABLES
from openclaw.db.target import redact_url
from openclaw.errors import DatabaseError, UsageError
from openclaw.home import openclaw_home
from openclaw.outbox import adopt_legacy_spool, other_spools
from openclaw.sessions.legacy import describe_unimported, unimported_session_files

app = typer.Typer(help="Migrate the schema, show its status, print the database URL.", no_args_is_help=True)


@app.command("migrate")
def migrate_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Apply pending schema migrations (safe to run from several processes at once)."""

    async def go() -> tuple[list[str], int]:
        async with (
            await open_database(ctx) as db,
            await AsyncConnection.connect(db.url, autocommit=True) as conn,
        ):
            applied = await migrate(conn)
            total = len((await migration_status(conn)).applied)
        return [m.filename for m in applied], total

    applied, total = asyncio.run(go())
    if as_json:
        print_json({"applied": applied, "total_applied": total})
    elif applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print(f"schema is up to date ({total} migration{'s' if total != 1 else ''} applied)")


async def _status(db: Database) -> dict[str, Any]:
    async with db.connection() as conn:
        status = await migration_status(conn)
        row = await (
            await conn.execute(
                "SELECT current_database(), pg_database_size(current_database()),"
                " current_setting('server_version')"
            )
        ).fetchone()
        assert row is not None
        counts: dict[str, int | None] = {}
        for table in TABLES:
            exists = await (await conn.execute("SELECT to_regclass(%s)", (table,))).fetchone()
            if exists and exists[0]:
                count = await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone()
                counts[table] = count[0] if count else 0
            else:
                counts[table] = None
        legacy = (
            await unimported_session_files(conn, openclaw_home() / "agents") if not status.pending else []
        )
    return {
        "server": {
            "kind": "embedded" if db.target.is_embedded else "url",
            "source": db.target.source.value,
            "description": db.target.describe(),
            "url": redact_url(db.url),
            "version": row[2],
        },
        "database": {"name": row[0], "size_bytes": row[1]},
        "migrations": {
            "applied": [
                {
                    "version": m.version,
                    "name": m.name,
                    "applied_at": m.applied_at,
                    "execution_ms": m.execution_ms,
                }
                for m in status.applied
            ],
            "pending": [{"version": m.version, "name": m.name} for m in status.pending],
            "unknown": [{"version": m.version, "name": m.name} for m in status.unknown],
        },
        "tables": counts,
        "unimported_session_files": [
            {"path": str(f.path), "agent": f.agent, "sessions": f.sessions, "missing": f.missing}
            for f in legacy
        ],
        "unimported_sessions_hint": describe_unimported(legacy) if legacy else None,
        "other_outboxes": [
            {
                "database": o.description,
                "pending": o.pending,
                "dead": o.dead,
                "path": str(o.path),
                "legacy": o.legacy,
                "hint": o.describe(),
            }
            for o in other_spools(openclaw_home(), db.target)
        ],
    }


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command("status")
def status_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Which server, applied and pending migrations, rows per table, database size."""

    async def go() -> dict[str, Any]:
        async with await open_database(ctx) as db:
            return await _status(db)

    info = asyncio.run(go())
    if as_json:
        print_json(info)
        return
    migrations = info["migrations"]
    print(f"server:    {info['server']['description']}, PostgreSQL {info['server']['version']}")
    print(f"database:  {info['database']['name']}, {_size(info['database']['size_bytes'])}")
    print(
        f"schema:    {len(migrations['applied'])} applied, {len(migrations['pending'])} pending"
        + ("" if migrations["pending"] else " (up to date)")
    )
    rows = [
        (f"{m['version']:04d}", m["name"], "applied", when(m["applied_at"])) for m in migrations["applied"]
    ]
    rows += [(f"{m['version']:04d}", m["name"], "pending", "") for m in migrations["pending"]]
    rows += [(f"{m['version']:04d}", m["name"], "unknown to this version", "") for m in migrations["unknown"]]
    print_table(None, ["migration", "name", "state", "applied at"], rows)
    print_table(
        None,
        ["table", "rows"],
        [(name, "missing" if count is None else count) for name, count in info["tables"].items()],
    )
    if migrations["pending"]:
        note("run 'openclaw db migrate' to apply the pending migrations")
    if info["unimported_sessions_hint"]:
        note(info["unimported_sessions_hint"])
    for other in info["other_outboxes"]:
        note(other["hint"])


def _resolved_url(ctx: typer.Context) -> tuple[str, int]:
    """The URL of the database once it answers (the embedded server is started), and the
    server's major version."""

    async def go() -> tuple[str, int]:
        async with await open_database(ctx) as db, db.connection() as conn:
            return db.url, conn.info.server_version // 10000

    return asyncio.run(go())


@app.command("url")
def url_command(ctx: typer.Context) -> None:
    """Print the database URL, without connecting to it.

    For scripts: psql "$(openclaw db url)". The password, if any, is printed. The embedded
    server's URL names its socket, which exists only while it runs: a stopped embedded
    server is started first.
    """
    target = resolve_target(state(ctx).database_url)
    if target.url is not None:
        print(target.url)
        return
    assert target.pgdata is not None
    print(running_embedded_url(target.pgdata) or _resolved_url(ctx)[0])


@app.command("adopt-outbox")
def adopt_outbox_command(ctx: typer.Context) -> None:
    """Ship an earlier openclaw's outbox ($OPENCLAW_HOME/outbox/spool.db) to this database.

    That version kept one outbox per home, not per database, so it did not record which
    database its waiting rows were for. Run this with the database they were written for
    (--database-url, DATABASE_URL, ...): they move ahead of this database's own outbox
    and ship with it. Nothing connects here; safe to run again if interrupted.
    """
    target = resolve_target(state(ctx).database_url)
    adopted = adopt_legacy_spool(openclaw_home(), target)
    if adopted.pending or adopted.dead:
        print(
            f"adopted {adopted.pending} waiting and {adopted.dead} set-aside entries for {target.describe()};"
            " the gateway (or the next `openclaw agent`) ships them"
        )
    else:
        print("nothing to adopt: no earlier outbox with entries in this home")


@app.command("stop")
def stop_command(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL server (it otherwise keeps running for the next command)."""
    target = resolve_target(state(ctx).database_url)
    if not target.is_embedded or target.pgdata is None:
        raise UsageError(f"the database is {target.describe()}, not the embedded server")
    print(
        "stopped the embedded server"
        if stop_embedded(target.pgdata)
        else "the embedded server is not running"
    )


def _run_client(program: str, args: list[str], url: str, server_major: int) -> None:
    # The password goes through the environment: a command line is visible to every
    # local user in `ps`.
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    conninfo = make_conninfo("", **params)
    command = [str(client_program(program, server_major)), *args, f"--dbname={conninfo}"]
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False, env=env)
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        raise DatabaseError(f"{program} failed: {lines[-1] if lines else f'exit code {result.returncode}'}")


@app.command("dump")
def dump_command(
    ctx: typer.Context,
    output: Path = typer.Option(..., "--output", "-o", help="File to write (pg_dump custom format)."),
) -> None:
    """Back up the database to a file with pg_dump of the server's version.

    Restore with 'openclaw db restore FILE'. The pg_dump of PostgreSQL 16 and 18 comes
    with openclaw; for a 15 or 17 server, install that version's client tools.
    """

    url, major = _resolved_url(ctx)
    _run_client("pg_dump", ["--format=custom", "--no-owner", f"--file={output}"], url, major)
    print(f"wrote {output} ({_size(output.stat().st_size)})")


@app.command("restore")
def restore_command(
    ctx: typer.Context,
    dump: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A file written by 'openclaw db dump'."
    ),
) -> None:
    """Restore a backup made by 'openclaw db dump', replacing the tables it contains."""

    url, major = _resolved_url(ctx)
    _run_client(
        "pg_restore",
        ["--clean", "--if-exists", "--no-owner", "--single-transaction", str(dump)],
        url,
        major,
    )
    print(f"restored {dump}")


@app.command("init-sql")
def init_sql_command() -> None:
    """Print every migration as one idempotent script (the content of migrations/init.sql)."""
    print(init_sql(), end="")


_ROLE_RULE = (
    "Each database has its own roles (a session sees the query text of its own role's"
    " sessions on every database of the server): openclaw_reader_DBNAME and"
    " openclaw_writer_DBNAME when the name is made of a-z, 0-9 and _ only, is at most 47"
    " bytes and does not end in _ and 8 hex digits; otherwise the name lowered, every other"
    " character made _, cut to 38 characters, then _ and 8 hex digits of its SHA-256"
    " (SQL: SELECT openclaw_login_role('reader')). The shared openclaw_reader of earlier"
    " versions loses its grants in this database but is not dropped."
)


def _grant(ctx: typer.Context, kind: Kind, new_password: bool) -> None:
    home = openclaw_home()

    async def go(db: Database) -> tuple[str, str]:
        async with await AsyncConnection.connect(db.url, autocommit=True) as conn:
            # Without a saved URL for this role this machine cannot log in as it: a new password.
            login = await ensure_login(conn, db.url, home, kind, new_password=new_password)
        return login.role, login.outcome

    role, outcome = run_with_database(ctx, go)
    if outcome == "new password set":
        outcome += " (URLs saved elsewhere stop working)"
    print(f"{role}: {outcome}; its URL: openclaw db {kind}-url")


_NEW_PASSWORD_HELP = "Give the role a new password (other machines' saved URLs stop working)."


@app.command(
    "grant-reader",
    help=f"""Create this database's read-only role (or refresh its grants).

It may connect to this database only, and SELECT from the views of schema `reader`;
its sessions are read only, with a 10 s statement timeout. Needs a user with CREATEROLE
or a superuser. The URL to log in as it is saved in $OPENCLAW_HOME/reader-url (mode
0600); see `db reader-url`. {_ROLE_RULE}""",
)
def grant_reader_command(
    ctx: typer.Context,
    new_password: bool = typer.Option(False, "--new-password", help=_NEW_PASSWORD_HELP),
) -> None:
    _grant(ctx, READER, new_password)


@app.command(
    "grant-writer",
    help=f"""Create this database's writer role (or refresh its grants), for `mcp serve --allow-writes`.

It may SELECT, INSERT and UPDATE task_log, known_issues and project_context (and use
their id sequences), and nothing else: no DELETE, no other table, no DDL. It reads those
tables whole, secret context values included. Needs a user with CREATEROLE or a
superuser. Its URL is saved in $OPENCLAW_HOME/writer-url (mode 0600); see `db
writer-url`. {_ROLE_RULE}""",
)
def grant_writer_command(
    ctx: typer.Context,
    new_password: bool = typer.Option(False, "--new-password", help=_NEW_PASSWORD_HELP),
) -> None:
    _grant(ctx, WRITER, new_password)


def _print_saved(kind: Kind) -> None:
    saved = saved_url(openclaw_home(), kind)
    if saved is None:
        raise UsageError(f"no {kind} URL saved in {openclaw_home()}; run `openclaw db grant-{kind}` first")
    print(saved)


@app.command("reader-url")
def reader_url_command() -> None:
    """Print the read-only role's URL, for a generic Postgres MCP server or psql.

    OPENCLAW_READER_URL if set, else the URL saved by `db grant-reader` (or `mcp serve`,
    `mcp config`). The password, if any, is printed.
    """
    _print_saved(READER)


@app.command("writer-url")
def writer_url_command() -> None:
    """Print the writer role's URL (OPENCLAW_WRITER_URL if set, else the one saved by
    `db grant-writer`). The password, if any, is printed."""
    _print_saved(WRITER)
