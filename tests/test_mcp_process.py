"""`openclaw mcp serve` as the IDE runs it: a real subprocess over stdio, and over
streamable HTTP with its bearer token; the snippets `mcp config` prints; the reader role
from the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import httpx2
import psycopg
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from openclaw.db.reader import READER, login_role
from tests.conftest import Cli
from tests.waiting import wait_for_http

OPENCLAW = str(Path(sys.executable).with_name("openclaw"))


def _env(db_url: str, home: Path) -> dict[str, str]:
    config = home / "gateway.json"
    config.write_text("{}")
    return {"OPENCLAW_HOME": str(home), "DATABASE_URL": db_url, "GATEWAY_CONFIG": str(config)}


@pytest.mark.slow
def test_stdio_subprocess_answers_and_refuses(cli: Cli, db_url: str, isolated_environment: Path) -> None:
    cli("issues", "add", "disk fills up", "--severity", "critical", "--component", "infra")
    params = StdioServerParameters(
        command=OPENCLAW, args=["mcp", "serve"], env=_env(db_url, isolated_environment)
    )

    async def scenario() -> None:
        async with Client(params) as client:
            issues = await client.call_tool("open_issues", {})
            assert [i["title"] for i in issues.structured_content["issues"]] == ["disk fills up"]  # type: ignore[index]
            drop = await client.call_tool("query", {"sql": "COMMIT; DROP TABLE known_issues"})
            assert drop.is_error
            assert "log_task" not in {t.name for t in (await client.list_tools()).tools}

    asyncio.run(scenario())
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM known_issues").fetchone() == (1,)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_http_needs_the_bearer_token(db_url: str, isolated_environment: Path) -> None:
    port = _free_port()
    env = {**os.environ, **_env(db_url, isolated_environment), "OPENCLAW_MCP_TOKEN": "tok-123"}
    server = subprocess.Popen(
        [OPENCLAW, "mcp", "serve", "--transport", "http", "--port", str(port), "--allow-writes"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        response = wait_for_http(url, method="POST", json={}, process=server, what="mcp serve to start")
        assert response.status_code == 401
        assert httpx.post(url, json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401

        async def scenario() -> None:
            http = httpx2.AsyncClient(headers={"Authorization": "Bearer tok-123"})
            async with Client(streamable_http_client(url, http_client=http)) as client:
                task = await client.call_tool("log_task", {"description": "over http"})
                assert not task.is_error, task.content

        asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait(timeout=30)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT description FROM task_log").fetchall() == [("over http",)]


@pytest.mark.parametrize("client", ["windsurf", "claude-code", "cursor", "vscode"])
def test_config_prints_each_clients_snippet(cli: Cli, client: str, isolated_environment: Path) -> None:
    result = cli("mcp", "config", "--client", client)
    assert result.exit_code == 0
    reader = (isolated_environment / "reader-url").read_text().strip()  # made by `mcp config`
    if client == "claude-code":
        assert result.stdout.startswith("claude mcp add openclaw --env OPENCLAW_HOME=")
        assert f"--env OPENCLAW_READER_URL={reader}" in result.stdout
        assert result.stdout.rstrip().endswith("mcp serve")
        return
    document = json.loads(result.stdout)
    entry = document["servers" if client == "vscode" else "mcpServers"]["openclaw"]
    assert entry["args"] == ["mcp", "serve"] and Path(entry["command"]).name == "openclaw"
    assert entry["env"] == {
        "OPENCLAW_HOME": str(isolated_environment.resolve()),
        "OPENCLAW_READER_URL": reader,
    }
    assert client != "vscode" or entry["type"] == "stdio"


def test_config_http_carries_the_token(cli: Cli, isolated_environment: Path) -> None:
    windsurf = json.loads(cli("mcp", "config", "--client", "windsurf", "--http").stdout)
    entry = windsurf["mcpServers"]["openclaw"]
    token = (isolated_environment / "mcp-token").read_text().strip()
    assert entry == {
        "serverUrl": "http://127.0.0.1:8765/mcp",
        "headers": {"Authorization": f"Bearer {token}"},
    }
    assert oct((isolated_environment / "mcp-token").stat().st_mode & 0o777) == "0o600"
    vscode = json.loads(cli("mcp", "config", "--client", "vscode", "--http").stdout)
    assert vscode["servers"]["openclaw"]["type"] == "http"
    bad = cli("mcp", "config", "--client", "emacs")
    assert bad.exit_code == 2 and "emacs" in bad.stderr


def test_config_http_on_a_fresh_machine_makes_the_home(
    cli: Cli, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = isolated_environment / "not-yet"
    monkeypatch.setenv("OPENCLAW_HOME", str(fresh))
    result = cli("mcp", "config", "--client", "cursor", "--http")
    assert result.exit_code == 0 and (fresh / "mcp-token").is_file()


def test_grant_reader_and_reader_url(cli: Cli, db_url: str, isolated_environment: Path) -> None:
    assert cli("db", "reader-url").exit_code == 2  # nothing saved yet: one line, no traceback
    assert cli("db", "grant-reader").exit_code == 0
    reader = cli("db", "reader-url").stdout.strip()
    assert reader.startswith(
        f"postgresql://{login_role(READER, psycopg.conninfo.conninfo_to_dict(db_url)['dbname'])}:"
    )
    with psycopg.connect(reader) as conn:
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SELECT count(*) FROM known_issues").fetchone() == (0,)  # the reader view
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM public.known_issues")


@pytest.mark.slow
async def test_servers_granting_the_reader_at_once_all_succeed(
    pg_server_url: str, template_database: str
) -> None:
    """A role and its settings are the server's: servers granting at once (several `mcp
    serve` starting on one database, or on several, which then revoke the grants of the
    shared role of earlier versions) update the same catalog rows."""
    from openclaw.db.reader import grant_reader
    from tests.conftest import create_database, database_url, drop_database

    names = [create_database(pg_server_url, template=template_database) for _ in range(6)]
    try:
        for _ in range(4):
            conns = [
                await psycopg.AsyncConnection.connect(database_url(pg_server_url, n), autocommit=True)
                for n in names + names
            ]
            try:
                await asyncio.gather(*(grant_reader(c, new_password=False) for c in conns))
            finally:
                for c in conns:
                    await c.close()
    finally:
        for n in names:
            drop_database(pg_server_url, n)
