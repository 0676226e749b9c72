"""The attack list again, through `openclaw mcp serve` as an IDE runs it: a real subprocess
over stdio, started from the snippet's environment alone (the reader URL, no owner
credentials). The in-process tests (test_mcp.py, test_mcp_attacks.py) cover each class
in depth; this one proves that the process an assistant really talks to has the same walls:
every attack refused inside the envelope, hostile chat text kept in it, the parsers no
timeout stops refused, and every table intact."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psycopg
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import Cli
from tests.test_mcp import ATTACKS, TABLES, _seed
from tests.test_mcp_attacks import HOSTILE, UNSTOPPABLE, _outside_envelope, _seed_hostile

OPENCLAW = str(Path(sys.executable).with_name("openclaw"))


def _counts(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


@pytest.mark.slow
def test_attacks_through_a_stdio_subprocess(cli: Cli, db_url: str, isolated_environment: Path) -> None:
    _seed(cli, db_url, isolated_environment)
    asyncio.run(_seed_hostile(db_url))
    assert cli("db", "grant-reader").exit_code == 0
    reader_url = cli("db", "reader-url").stdout.strip()
    config = isolated_environment / "gateway.json"
    config.write_text("{}")
    # What `mcp config` puts in the IDE's file: no DATABASE_URL.
    env = {
        "OPENCLAW_HOME": str(isolated_environment),
        "OPENCLAW_READER_URL": reader_url,
        "GATEWAY_CONFIG": str(config),
    }
    before = _counts(db_url)

    async def scenario() -> None:
        params = StdioServerParameters(command=OPENCLAW, args=["mcp", "serve"], env=env)
        async with Client(params) as client:
            for sql, reason in ATTACKS + UNSTOPPABLE:
                result = await client.call_tool("query", {"sql": sql})
                assert result.is_error, sql
                text = result.content[0].text  # type: ignore[union-attr]
                _outside_envelope(result)  # the error is inside one whole envelope
                assert reason in text, (sql, text)
            for value in HOSTILE:
                for tool, args in (
                    ("query", {"sql": value}),
                    ("session_history", {"session_key": value}),
                    ("context_get", {"key": value}),
                ):
                    result = await client.call_tool(tool, args)
                    assert result.is_error
                    outside = _outside_envelope(result)
                    assert value not in outside and "IGNORE" not in outside, (tool, outside)
            # A stranger's text quoted by a Postgres error stays inside the envelope.
            cast = await client.call_tool(
                "query",
                {"sql": "SELECT content::date FROM messages WHERE content LIKE '%IGNORE%'"},
            )
            assert cast.is_error and "IGNORE" not in _outside_envelope(cast)
            # The answers themselves, too: chat text comes back inside the envelope only.
            history = await client.call_tool("session_history", {"session_key": "tg:main:7:7"})
            assert not history.is_error and "IGNORE" not in _outside_envelope(history)

    asyncio.run(scenario())
    assert _counts(db_url) == before
    assert not Path("/tmp/pwned").exists()
