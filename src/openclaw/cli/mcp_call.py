"""`openclaw mcp call TOOL [NAME=VALUE]...`: ask the MCP server what your assistant would ask.

The server runs in this process, as `mcp serve` runs it (this database's reader role, from
OPENCLAW_READER_URL alone when it is set; the same limits), and the answer is printed as
the assistant receives it: untrusted text inside its envelope. For trying a question,
checking a deployment, and scripts (`--json`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import typer

from openclaw.cli.common import JSON_OPTION, print_json, print_table, state
from openclaw.db.target import resolve_target
from openclaw.errors import OpenclawError, UsageError
from openclaw.home import openclaw_home

if TYPE_CHECKING:
    from mcp import Client


def _arguments(pairs: list[str]) -> dict[str, Any]:
    """NAME=VALUE pairs; a VALUE that parses as JSON is taken as JSON (limit=5), else as text."""
    arguments: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"argument {pair!r} is not NAME=VALUE")
        try:
            arguments[name.strip()] = json.loads(value)
        except ValueError:
            arguments[name.strip()] = value
    return arguments


# The names of openclaw.db.reader.READER_URL_ENV and WRITER_URL_ENV, spelled here because
# that module loads psycopg, which `mcp serve` loads only after answering `initialize`.
READER_URL_ENV = "OPENCLAW_READER_URL"
WRITER_URL_ENV = "OPENCLAW_WRITER_URL"


def login_urls(reader_url: str | None = None, writer_url: str | None = None) -> tuple[str | None, str | None]:
    """The reader's and writer's URLs given to the server (options, else the environment).
    With a reader URL the server logs in as it alone: no owner credentials, no migration."""

    def given(option: str | None, env: str) -> str | None:
        return (option or "").strip() or os.environ.get(env, "").strip() or None

    return given(reader_url, READER_URL_ENV), given(writer_url, WRITER_URL_ENV)


@asynccontextmanager
async def _in_process(ctx: typer.Context, allow_writes: bool) -> AsyncIterator[Client]:
    """A client of the server as `mcp serve` makes it, run in this process."""
    from mcp import Client

    from openclaw.mcp.server import create_server
    from openclaw.mcp.state import open_state

    target = resolve_target(state(ctx).database_url)
    reader_url, writer_url = login_urls()
    async with (
        open_state(
            target, openclaw_home(), allow_writes=allow_writes, reader_url=reader_url, writer_url=writer_url
        ) as server_state,
        Client(create_server(server_state)) as client,
    ):
        yield client


def call_command(
    ctx: typer.Context,
    tool: str = typer.Argument(..., help="The tool, e.g. search_sessions (see `openclaw mcp tools`)."),
    pairs: list[str] = typer.Argument(
        None, metavar="[NAME=VALUE]...", help="The tool's arguments: text=zebra limit=5 (JSON values parse)."
    ),
    allow_writes: bool = typer.Option(False, "--allow-writes", help="Also offer the four writing tools."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Call one tool of the MCP server and print what your assistant would get.

    Examples: `openclaw mcp call open_issues`, `openclaw mcp call search_sessions text=deploy`,
    `openclaw mcp call query sql="SELECT count(*) FROM messages"`.
    """
    arguments = _arguments(pairs or [])

    async def go() -> tuple[list[str], Any]:
        # Errors leave the client's task group wrapped in a group: decide outside it.
        async with _in_process(ctx, allow_writes) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            return names, (await client.call_tool(tool, arguments) if tool in names else None)

    names, result = asyncio.run(go())
    if result is None:
        raise UsageError(f"no tool {tool!r} (tools: {', '.join(names)})")
    text = "\n".join(getattr(part, "text", "") for part in result.content)
    if result.is_error:
        raise OpenclawError(f"{tool}: {text}")
    if as_json:
        print_json(result.structured_content)
    else:
        print(text)


def tools_command(
    ctx: typer.Context,
    allow_writes: bool = typer.Option(False, "--allow-writes", help="Also list the four writing tools."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The tools the MCP server offers, with the question each one answers."""

    async def go() -> list[tuple[str, str]]:
        async with _in_process(ctx, allow_writes) as client:
            tools = (await client.list_tools()).tools
        return [(t.name, (t.description or "").strip().split("\n")[0]) for t in tools]

    tools = asyncio.run(go())
    if as_json:
        print_json([{"name": name, "description": description} for name, description in tools])
    else:
        print_table(None, ["tool", "answers"], tools)
