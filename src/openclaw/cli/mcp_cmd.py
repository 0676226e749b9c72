"""`openclaw mcp`: the context server for coding assistants, and how to wire it up."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from enum import StrEnum
from pathlib import Path

import typer

from openclaw.cli.common import note, state
from openclaw.cli.mcp_call import READER_URL_ENV, WRITER_URL_ENV, call_command, login_urls, tools_command
from openclaw.db.target import resolve_target
from openclaw.home import openclaw_home
from openclaw.mcp.clients import CLIENTS, WHERE, snippet
from openclaw.mcp.http import DEFAULT_PORT, BearerToken, mcp_token

app = typer.Typer(help="The MCP server your coding assistant reads openclaw through.", no_args_is_help=True)


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    transport: Transport = typer.Option(Transport.STDIO, help="stdio for an IDE; http for remote use."),
    host: str = typer.Option(
        "127.0.0.1", help="HTTP only: the address to bind (loopback unless you mean it)."
    ),
    port: int = typer.Option(DEFAULT_PORT, min=1, max=65535, help="HTTP only: the port."),
    allow_writes: bool = typer.Option(
        False,
        "--allow-writes",
        help="Add log_task, add_issue, resolve_issue, set_context (context tables only, as the writer role).",
    ),
    reader_url: str | None = typer.Option(
        None,
        "--reader-url",
        help=f"Log in as this database's reader with this URL alone (or {READER_URL_ENV}): no owner"
        " credentials, no migration.",
        show_default=False,
    ),
    writer_url: str | None = typer.Option(
        None,
        "--writer-url",
        help=f"With --allow-writes: the writer role's URL (or {WRITER_URL_ENV}, else"
        " $OPENCLAW_HOME/writer-url).",
        show_default=False,
    ),
) -> None:
    """Serve the curated tools, query(sql) and the schema resources.

    Every read runs as this database's read-only role, and every write (--allow-writes) as
    its writer role, which may write the context tables only (`openclaw db grant-reader`,
    `grant-writer`). Given a reader URL (--reader-url, OPENCLAW_READER_URL), that is all it
    uses: this is how an IDE runs it (`openclaw mcp config`). Without one, it uses the
    database URL (the owner's) to migrate and make the roles, then logs in as them. An
    embedded server named by the reader URL is started if it is down. Over HTTP every
    request needs `Authorization: Bearer <token>`; the token is in $OPENCLAW_HOME/mcp-token
    (or OPENCLAW_MCP_TOKEN), and `openclaw mcp config --http` prints it.
    """
    # Only the SDK is loaded before serving; the database layer (psycopg, the pool), the
    # migrations and the reader role are loaded and made ready in the background once the
    # client is connected (a tool that needs them waits; if they fail, the reason goes to
    # stderr and to every tool call until they work). tests/test_cli_startup.py checks that
    # psycopg is not loaded when `initialize` is answered.
    from openclaw.mcp.lazy_state import LazyState
    from openclaw.mcp.server import create_server

    home = openclaw_home()
    target = resolve_target(state(ctx).database_url)
    reader, writer = login_urls(reader_url, writer_url)

    async def go() -> None:
        server_state = LazyState(
            target, home, allow_writes=allow_writes, reader_url=reader, writer_url=writer
        )
        try:
            server = create_server(server_state)
            if transport is Transport.STDIO:
                await server.run_stdio_async()
                return
            if host not in ("127.0.0.1", "localhost", "::1"):
                note(
                    f"openclaw mcp: serving on {host}, beyond this machine; the bearer token is the only lock"
                )
            import uvicorn

            app = BearerToken(server.streamable_http_app(host=host), mcp_token(home))
            note(f"openclaw mcp: http://{host}:{port}/mcp (bearer token: openclaw mcp config --http)")
            await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()
        finally:
            await server_state.close()

    asyncio.run(go())


@app.command("config")
def config_command(
    ctx: typer.Context,
    client: str = typer.Option(..., "--client", help=f"One of: {', '.join(CLIENTS)}."),
    http: bool = typer.Option(False, "--http", help="Point at a running `mcp serve --transport http`."),
    url: str = typer.Option(f"http://127.0.0.1:{DEFAULT_PORT}/mcp", help="With --http: the server's URL."),
    allow_writes: bool = typer.Option(
        False, "--allow-writes", help="Let the assistant log tasks and issues."
    ),
) -> None:
    """Print the configuration snippet for your coding assistant, with this machine's paths.

    The stdio entry runs this very openclaw with OPENCLAW_HOME and OPENCLAW_READER_URL (and
    with --allow-writes OPENCLAW_WRITER_URL) in its environment, since IDEs do not start
    servers from your shell. Never the owner's DATABASE_URL: the snippet may land in the
    project (.vscode/mcp.json), where the assistant reads it and a commit may publish it.
    This database's reader (and writer) role is made here with your database URL if it is
    missing, as `openclaw db grant-reader` does; OPENCLAW_READER_URL, if set, is used as is.
    """
    if client not in CLIENTS:
        raise typer.BadParameter(f"{client!r} is not one of {', '.join(CLIENTS)}", param_hint="--client")
    home = openclaw_home()
    # The launcher installed beside this Python: the IDE then runs this very openclaw.
    beside = Path(sys.executable).with_name("openclaw")
    command = str(beside) if beside.is_file() else shutil.which("openclaw") or os.path.abspath(sys.argv[0])
    env = {"OPENCLAW_HOME": str(home.resolve())}
    if not http:
        reader, writer = _login_urls_for_config(ctx, allow_writes)
        env[READER_URL_ENV] = reader
        if writer is not None:
            env[WRITER_URL_ENV] = writer
    args = ["mcp", "serve", *(["--allow-writes"] if allow_writes else [])]
    print(
        snippet(
            client,
            command=command,
            args=args,
            env=env,
            url=url if http else None,
            token=mcp_token(home) if http else None,
        )
    )
    note(f"({client}: {WHERE[client]})")


def _login_urls_for_config(ctx: typer.Context, allow_writes: bool) -> tuple[str, str | None]:
    """The URLs the IDE's server logs in with: those given in the environment, else made (or
    refreshed) here with the owner's database URL, which stays in this shell."""
    from psycopg import AsyncConnection

    from openclaw.cli.common import run_with_database
    from openclaw.db import Database
    from openclaw.db.reader import READER, WRITER, ensure_login

    reader, writer = login_urls()
    if reader is not None and (writer is not None or not allow_writes):
        return reader, writer
    home = openclaw_home()

    async def go(db: Database) -> tuple[str, str | None]:
        # run_with_database migrated it: the IDE's server will not, it has no right to.
        async with await AsyncConnection.connect(db.url, autocommit=True) as conn:
            made_reader = reader or (await ensure_login(conn, db.url, home, READER)).url
            made_writer = None
            if allow_writes:
                made_writer = writer or (await ensure_login(conn, db.url, home, WRITER)).url
        return made_reader, made_writer

    return run_with_database(ctx, go)


app.command("call")(call_command)
app.command("tools")(tools_command)
