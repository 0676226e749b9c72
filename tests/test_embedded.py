"""The embedded server, through real `openclaw` processes: started on demand, shared by
several processes, stopped on request. Runs whatever OPENCLAW_TEST_DATABASE_URL says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from openclaw.db.embedded import _pgserver, start_embedded, stop_embedded
from openclaw.db.migrate import load_migrations

pytestmark = [pytest.mark.embedded, pytest.mark.slow]


@pytest.fixture
def home(isolated_environment: Path) -> Iterator[Path]:
    yield isolated_environment
    stop_embedded(isolated_environment / "pgdata")


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENCLAW_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "openclaw", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_embedded_server_starts_on_demand_and_is_shared(home: Path) -> None:
    # Two processes race to initialise and start the same fresh server.
    env = {**os.environ, "OPENCLAW_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "openclaw", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in (
            ["db", "migrate"],
            ["issues", "add", "first", "--severity", "high", "--component", "infra"],
        )
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    status = json.loads(run(home, "db", "status", "--json").stdout)
    assert status["server"]["kind"] == "embedded"
    assert status["server"]["version"].startswith("18")
    assert len(status["migrations"]["applied"]) == len(load_migrations())
    assert status["tables"]["known_issues"] == 1

    url = run(home, "db", "url").stdout.strip()
    assert str(home / "pgdata") in url
    with psycopg.connect(url) as conn:  # the printed URL works for other clients
        assert conn.execute("SELECT title FROM known_issues").fetchall() == [("first",)]

    run(home, "context", "set", "current_focus", '{"phase": 3}')
    assert json.loads(run(home, "context", "get", "current_focus").stdout) == {"phase": 3}

    assert run(home, "db", "stop").stdout.strip() == "stopped the embedded server"
    assert run(home, "db", "stop").stdout.strip() == "the embedded server is not running"
    # Data survives the stop, and the next command starts the server again.
    assert "first" in run(home, "issues", "list").stdout


def test_a_process_starts_its_server_again_once_another_stopped_it(home: Path) -> None:
    """pgserver starts a server once per process and hands back that one, stopped or not:
    a gateway's watchdog (openclaw.db.embedded_watchdog) needs start_embedded to start it
    again in the process that started it first."""
    pgdata = home / "pgdata"
    url = start_embedded(pgdata)
    assert run(home, "db", "stop").stdout.strip() == "stopped the embedded server"

    assert start_embedded(pgdata) == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("version", [16, 18])
async def test_migrations_on_bundled_server_versions(tmp_path: Path, version: int) -> None:
    """PostgreSQL 15 is the machine's server (OPENCLAW_TEST_DATABASE_URL in CI); pgserver's
    wheel also carries 16 and 18."""
    from tests.test_migrations import (
        test_init_sql_then_migrate_keeps_data,
        test_migrate_applies_once_then_nothing,
    )

    pgdata = tmp_path / f"pg{version}"
    pgdata.mkdir()
    server = _pgserver().get_server(pgdata, cleanup_mode=None, postgres_version=version)
    try:
        url = server.get_uri()
        with psycopg.connect(url) as conn:
            assert conn.info.server_version // 10000 == version
        for db, check in (
            ("a", test_migrate_applies_once_then_nothing),
            ("b", test_init_sql_then_migrate_keeps_data),
        ):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {db}".encode())
            await check(server.get_uri(database=db))
    finally:
        stop_embedded(pgdata)


def test_mcp_server_on_the_embedded_database(home: Path) -> None:
    """`mcp serve` attaches to the embedded server the CLI started, as the reader role."""
    import asyncio

    from mcp import Client, StdioServerParameters

    run(home, "issues", "add", "embedded issue", "--severity", "low", "--component", "core")
    (home / "gateway.json").write_text("{}")
    env = {"OPENCLAW_HOME": str(home), "GATEWAY_CONFIG": str(home / "gateway.json")}
    params = StdioServerParameters(
        command=str(Path(sys.executable).with_name("openclaw")), args=["mcp", "serve"], env=env
    )

    async def scenario() -> None:
        async with Client(params) as client:
            issues = await client.call_tool("open_issues", {})
            assert [i["title"] for i in issues.structured_content["issues"]] == ["embedded issue"]  # type: ignore[index]
            who = await client.call_tool("query", {"sql": "SELECT current_user"})
            assert who.structured_content["rows"] == [["openclaw_reader_openclaw"]]  # type: ignore[index]

    asyncio.run(scenario())
    reader = run(home, "db", "reader-url").stdout.strip()
    assert "openclaw_reader_openclaw" in reader and str(home / "pgdata") in reader
    with psycopg.connect(reader) as conn:
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        # The embedded server is openclaw's own, and it is its superuser: large objects
        # cannot be made by the roles it gives out, even in a transaction made writable.
        conn.execute("BEGIN READ WRITE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT lo_from_bytea(0, 'x')")


def test_mcp_server_from_the_reader_url_alone_starts_the_embedded_server(home: Path) -> None:
    """The IDE's snippet carries the reader's URL, which names the socket in the home: a
    stopped embedded server is started (no credential involved), and no owner URL is needed."""
    import asyncio

    from mcp import Client, StdioServerParameters

    run(home, "issues", "add", "embedded issue", "--severity", "low", "--component", "core")
    snippet = json.loads(run(home, "mcp", "config", "--client", "cursor").stdout)
    env = snippet["mcpServers"]["openclaw"]["env"]
    assert set(env) == {"OPENCLAW_HOME", "OPENCLAW_READER_URL"}
    assert stop_embedded(home / "pgdata")
    (home / "gateway.json").write_text("{}")
    params = StdioServerParameters(
        command=str(Path(sys.executable).with_name("openclaw")),
        args=["mcp", "serve"],
        env={**env, "GATEWAY_CONFIG": str(home / "gateway.json")},
    )

    async def scenario() -> None:
        async with Client(params) as client:
            issues = await client.call_tool("open_issues", {})
            assert [i["title"] for i in issues.structured_content["issues"]] == ["embedded issue"]  # type: ignore[index]

    asyncio.run(scenario())
