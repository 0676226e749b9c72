"""One deadline per tool call, and `busy` rather than "unreachable" (issue 12, "The time
bound is per call, not per statement"). In-process, on a real Postgres.

The issue's done-when is itself a time bound ("one call never runs past its deadline by
more than a second"), so these tests measure a call's wall time. The bound asserted is
generous (deadline + 3 s) for a busy machine, while each shape takes the code before the
change far longer, or makes it answer without "timed out".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp import Client
from psycopg import AsyncConnection

from openclaw.chat import Message, Role
from openclaw.db import Database, DatabaseTarget, TargetSource
from openclaw.mcp import curated
from openclaw.mcp.server import create_server
from openclaw.mcp.state import ServerState, open_state
from openclaw.sessions.postgres_store import PostgresSessionStore
from tests.test_mcp import call
from tests.waiting import until

DEADLINE_S = 1.0
DEADLINE_MS = int(DEADLINE_S * 1000)
SLACK_S = 3.0  # the issue allows one second past the deadline; a busy machine, two more

# Heavy, immutable, interruptible work of several shapes; pg_sleep is volatile and refused.
SHAPES = {
    # 100 FETCHes of 50 rows, each ~0.25 s: within a timeout each, 25 s in all before.
    "many fetch batches": (
        "SELECT g, (SELECT count(*) FROM generate_series(1, 60000 + g - g)) AS n"
        " FROM generate_series(1, 5000) AS g",
        5000,
    ),
    "one long statement": (
        "SELECT count(*) FROM generate_series(1, 100000) AS a, generate_series(1, 100000) AS b",
        100,
    ),
    # Constant-folded while planning: the describe step (LIMIT 0) is the slow one.
    "slow describe (regex on a large generated string)": (
        "SELECT length(regexp_replace(repeat('ab', 100000000), 'a', 'cc', 'g'))",
        100,
    ),
    "big sort": (
        "SELECT x FROM (SELECT generate_series(1, 100000000) AS x) AS s ORDER BY md5(x::text) LIMIT 3",
        100,
    ),
    "regex per row": (
        "SELECT count(*) FROM (SELECT generate_series(1, 100000000) AS g) AS s"
        " WHERE repeat('ab', 50) || g::text ~ '(a|b)*c'",
        100,
    ),
}


@asynccontextmanager
async def served(db_url: str, home: Path, *, timeout_ms: int) -> AsyncIterator[tuple[ServerState, Client]]:
    async with open_state(DatabaseTarget(TargetSource.OPTION, url=db_url), home) as state:
        state.timeout_ms = timeout_ms
        async with Client(create_server(state)) as client:
            yield state, client


async def timed(client: Client, tool: str, **args: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = await client.call_tool(tool, args)
    return time.monotonic() - started, result


def message(result: Any) -> str:
    assert result.structured_content is not None, result.content
    return str(result.structured_content.get("error"))


@pytest.mark.slow
def test_a_call_ends_at_its_deadline_whatever_its_shape(db_url: str, isolated_environment: Path) -> None:
    asyncio.run(_a_call_ends_at_its_deadline_whatever_its_shape(db_url, isolated_environment))


async def _a_call_ends_at_its_deadline_whatever_its_shape(db_url: str, home: Path) -> None:
    async with served(db_url, home, timeout_ms=DEADLINE_MS) as (_state, client):
        await call(client, "query", sql="SELECT 1")  # the pool and pglast are warm
        for shape, (sql, max_rows) in SHAPES.items():
            took, result = await timed(client, "query", sql=sql, max_rows=max_rows)
            assert result.is_error, (shape, result.content)
            assert "timed out after 1 s" in message(result), (shape, message(result))
            assert took < DEADLINE_S + SLACK_S, (shape, took)
        # The connections came back clean: a quick question is answered, also by a curated tool.
        assert (await call(client, "query", sql="SELECT 2 AS n"))["rows"] == [[2]]
        await call(client, "open_issues")


def test_a_curated_tool_has_one_deadline_for_all_its_statements(
    db_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def many_statements(conn: AsyncConnection) -> list[dict[str, Any]]:
        # Each far within a timeout of its own; 2,000 of them take many seconds.
        for _ in range(2000):
            await conn.execute("SELECT count(*) FROM generate_series(1, 100000)")
        return []

    monkeypatch.setattr(curated, "context_list", many_statements)

    async def run() -> None:
        async with served(db_url, isolated_environment, timeout_ms=DEADLINE_MS) as (_state, client):
            took, result = await timed(client, "context_list")
            assert result.is_error and "timed out after 1 s" in message(result), result.content
            assert took < DEADLINE_S + SLACK_S, took
            await until(idle(db_url), what="the slow call to have stopped")
            await call(client, "open_issues")

    asyncio.run(run())


@pytest.mark.slow
def test_a_statement_the_timeout_cannot_stop_is_answered_at_the_deadline(
    db_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backstop: Postgres's own timeout cannot stop the text search parser (the guard
    keeps it from `query`; a curated tool is made to call it here). The call is answered at
    its deadline; the backend is cancelled, and stops once the parser returns."""

    async def uninterruptible(conn: AsyncConnection) -> list[dict[str, Any]]:
        await conn.execute("SELECT numnode(plainto_tsquery('simple', repeat('w ', 150000)))")
        return []

    monkeypatch.setattr(curated, "context_list", uninterruptible)

    async def run() -> None:
        async with served(db_url, isolated_environment, timeout_ms=DEADLINE_MS) as (_state, client):
            await call(client, "open_issues")
            took, result = await timed(client, "context_list")
            assert result.is_error and "timed out after 1 s" in message(result), result.content
            assert took < DEADLINE_S + SLACK_S, took
            assert await running(db_url)()  # answered before it stopped
            # Once its backend has stopped, its connection is back, clean.
            await until(idle(db_url), what="the parser's backend to stop")
            for _ in range(4):  # every connection of the pool answers
                await call(client, "open_issues")

    asyncio.run(run())


HEAVY = "SELECT count(*) FROM generate_series(1, 100000) AS a, generate_series(1, 100000) AS b"


def running(db_url: str, *, at_least: int = 1) -> Callable[[], Awaitable[bool]]:
    """Whether so many backends of the server's pool run a statement (for the heavy query:
    a FETCH of its cursor)."""

    async def check() -> bool:
        async with await AsyncConnection.connect(db_url, autocommit=True) as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'openclaw-mcp' AND state = 'active'"
                )
            ).fetchone()
        return row is not None and row[0] >= at_least

    return check


def idle(db_url: str) -> Callable[[], Awaitable[bool]]:
    """Whether no backend of the server's pool runs a statement."""
    busy = running(db_url)

    async def check() -> bool:
        return not await busy()

    return check


@pytest.mark.slow
def test_queries_over_the_cap_are_busy_at_once_and_curated_tools_still_answer(
    db_url: str, isolated_environment: Path
) -> None:
    asyncio.run(_queries_over_the_cap_are_busy_at_once(db_url, isolated_environment))


async def _queries_over_the_cap_are_busy_at_once(db_url: str, home: Path) -> None:
    async with served(db_url, home, timeout_ms=120_000) as (state, client):
        await call(client, "query", sql="SELECT 1")
        size = state.reader.max_size - 1  # one connection kept for the curated tools
        heavy = [asyncio.create_task(client.call_tool("query", {"sql": HEAVY})) for _ in range(size)]
        try:
            await until(
                running(db_url, at_least=size),
                what="the heavy queries to run",
            )
            # The next query is answered busy while the others still run, not after a wait.
            result = await client.call_tool("query", {"sql": "SELECT 1"})
            assert result.is_error and f"busy: {size} queries running, retry" in message(result)
            assert not any(t.done() for t in heavy)
            # A curated tool still has its connection.
            await call(client, "open_issues")
            await call(client, "context_list")
            assert not any(t.done() for t in heavy)

            # With the curated tools' connection taken too, a curated call waits for a
            # connection at most until its deadline, and says busy, not "unreachable".
            state.timeout_ms = int(DEADLINE_S * 1000)
            async with state.reader.connection() as held:  # the last connection, taken
                took, waited = await timed(client, "open_issues")
                assert waited.is_error and "busy:" in message(waited), message(waited)
                assert "unreachable" not in message(waited)
                assert took < DEADLINE_S + SLACK_S, took
                await held.execute("SELECT 1")
            assert not any(t.done() for t in heavy)
        finally:
            with psycopg.connect(db_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = 'openclaw-mcp'"
                )
            answers = await asyncio.gather(*heavy)
        assert all(a.is_error for a in answers)
        await until(idle(db_url), what="the heavy queries to stop")
        assert (await call(client, "query", sql="SELECT 3 AS n"))["rows"] == [[3]]


def test_twelve_heavy_queries_at_once_are_answered_by_their_deadline(
    db_url: str, isolated_environment: Path
) -> None:
    """Twelve heavy queries at once (the red team's case): three run, nine are busy at once,
    and none waits the pool's 10 s to fail as "unreachable"."""

    async def run() -> None:
        async with served(db_url, isolated_environment, timeout_ms=DEADLINE_MS) as (state, client):
            await call(client, "query", sql="SELECT 1")
            answers = await asyncio.gather(*(timed(client, "query", sql=HEAVY) for _ in range(12)))
            texts = [message(r) for _, r in answers]
            assert all(r.is_error for _, r in answers)
            assert sum("busy:" in t for t in texts) >= 12 - (state.reader.max_size - 1), texts
            assert not any("unreachable" in t for t in texts), texts
            assert all(took < DEADLINE_S + SLACK_S for took, _ in answers), [t for t, _ in answers]

    asyncio.run(run())


@pytest.mark.slow
def test_a_query_answered_at_its_deadline_keeps_its_place_until_its_backend_stops(
    db_url: str, isolated_environment: Path
) -> None:
    """Postgres's JSON parser checks for no interrupt: parsing a stored 100 MB message runs
    on after the deadline. The call is answered then; its place in the gate is given back
    only when the backend has stopped, so that such backends cannot pile up."""

    async def run() -> None:
        async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=db_url)) as db:
            store = PostgresSessionStore(db, "main")
            await store.create_session("tg:main:5:5", "main")
            huge = "[" + "1," * 50_000_000 + "1]"
            await store.append_messages("tg:main:5:5", [Message(Role.USER, content=huge)])
        async with served(db_url, isolated_environment, timeout_ms=DEADLINE_MS) as (state, client):
            await call(client, "query", sql="SELECT 1")
            sql = "SELECT json_array_length(content::json) FROM messages"
            took, result = await timed(client, "query", sql=sql)
            assert result.is_error and "timed out after 1 s" in message(result), result.content
            assert took < DEADLINE_S + SLACK_S, took
            if await running(db_url)():  # still parsing (measured: answered at 1.75 s, parsed ~4 s)
                assert state.gate.running == 1
            await until(idle(db_url), what="the parser's backend to stop")
            await until(lambda: state.gate.running == 0, what="the query's place to be given back")
            assert (await call(client, "query", sql="SELECT 4 AS n"))["rows"] == [[4]]

    asyncio.run(run())
