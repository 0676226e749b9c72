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
from openclaw.cli.mcp_call import call_command, tools_command
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
        help="Add log_task, add_issue, resolve_issue, set_context (context tables only).",
    ),
) -> None:
    """Serve the curated tools, query(sql) and the schema resources.

    Every read runs as the read-only role openclaw_reader (made on first start when the
    database user may create roles; else see `openclaw db grant-reader`). Over HTTP every
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

    async def go() -> None:
        server_state = LazyState(target, home, allow_writes=allow_writes)
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
    client: str = typer.Option(..., "--client", help=f"One of: {', '.join(CLIENTS)}."),
    http: bool = typer.Option(False, "--http", help="Point at a running `mcp serve --transport http`."),
    url: str = typer.Option(f"http://127.0.0.1:{DEFAULT_PORT}/mcp", help="With --http: the server's URL."),
    allow_writes: bool = typer.Option(
        False, "--allow-writes", help="Let the assistant log tasks and issues."
    ),
) -> None:
    """Print the configuration snippet for your coding assistant, with this machine's paths.

    The stdio entry runs this very openclaw with OPENCLAW_HOME (and DATABASE_URL, if set)
    in its environment, since IDEs do not start servers from your shell.
    """
    if client not in CLIENTS:
        raise typer.BadParameter(f"{client!r} is not one of {', '.join(CLIENTS)}", param_hint="--client")
    home = openclaw_home()
    # The launcher installed beside this Python: the IDE then runs this very openclaw.
    beside = Path(sys.executable).with_name("openclaw")
    command = str(beside) if beside.is_file() else shutil.which("openclaw") or os.path.abspath(sys.argv[0])
    env = {"OPENCLAW_HOME": str(home.resolve())}
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
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


app.command("call")(call_command)
app.command("tools")(tools_command)
