"""Recovery after an outage, on a PostgreSQL server of the test's own that it stops and
starts for real: every pool serves again as soon as Postgres answers, and a gateway's
embedded server that dies is started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from mcp import Client
from psycopg_pool import PoolTimeout

from openclaw.db import Database, DatabaseTarget, TargetSource
from openclaw.db.embedded import stop_embedded
from openclaw.db.embedded_watchdog import watch_embedded
from openclaw.errors import DatabaseError
from openclaw.mcp.server import create_server
from openclaw.mcp.state import open_state
from tests.private_cluster import PrivateCluster
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PrivateCluster]:
    """A running private server with an `openclaw` database, migrated."""
    server = PrivateCluster(tmp_path / "cluster")
    server.init()
    server.start()
    server.migrated_database("openclaw")
    yield server
    if server.running():
        server.stop("fast")


async def _select_one(db: Database, wait_s: float = 30.0) -> object:
    async with db.connection(wait_s=wait_s) as conn:
        row = await (await conn.execute("SELECT 1")).fetchone()
    return row[0] if row else None


async def test_no_connection_the_old_server_closed_is_handed_out_after_a_restart(
    cluster: PrivateCluster,
) -> None:
    db = await Database.open(DatabaseTarget(TargetSource.OPTION, url=cluster.url("openclaw")), max_size=3)
    try:
        # Three idle connections, as a gateway holds after some traffic.
        held = [await db.pool.getconn() for _ in range(3)]
        for conn in held:
            await db.pool.putconn(conn)
        await until(lambda: db.pool.get_stats()["pool_available"] == 3)

        await asyncio.to_thread(cluster.stop, "immediate")
        await asyncio.to_thread(cluster.start)

        # Each of the next requests works: none is given a connection of the old server.
        assert [await _select_one(db) for _ in range(3)] == [1, 1, 1]
    finally:
        await db.close()


async def test_the_pool_keeps_trying_through_an_outage_and_serves_when_postgres_answers(
    cluster: PrivateCluster,
) -> None:
    # One connection: one line of attempts to count.
    target = DatabaseTarget(TargetSource.OPTION, url=cluster.url("openclaw"))
    db = await Database.open(target, max_size=1)
    try:
        await asyncio.to_thread(cluster.stop, "immediate")
        with contextlib.suppress(psycopg.OperationalError, PoolTimeout):  # a request in the outage
            await _select_one(db, wait_s=0.5)

        # Attempts do not thin out as the outage goes on: with a back-off that doubles from
        # 1 s, the tenth would come after 8 minutes; this waits half a minute at most.
        await until(
            lambda: db.pool.get_stats().get("connections_errors", 0) >= 10,
            what="ten connection attempts during the outage",
        )

        waiting = asyncio.create_task(_select_one(db, wait_s=60))  # a request waiting through it
        await asyncio.to_thread(cluster.start)
        assert await waiting == 1
    finally:
        await db.close()


async def test_an_mcp_tool_answers_on_the_first_call_after_postgres_restarts(
    cluster: PrivateCluster, isolated_environment: Path
) -> None:
    target = DatabaseTarget(TargetSource.OPTION, url=cluster.url("openclaw"))
    async with open_state(target, isolated_environment) as state, Client(create_server(state)) as client:
        assert not (await client.call_tool("open_issues", {})).is_error

        await asyncio.to_thread(cluster.stop, "immediate")
        await asyncio.to_thread(cluster.start)

        answer = await client.call_tool("open_issues", {})
        assert not answer.is_error, answer.content


@pytest.mark.embedded
async def test_the_watchdog_starts_a_killed_embedded_server_again(
    isolated_environment: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pgdata = isolated_environment / "pgdata"
    # As a gateway on the embedded server: started by this process, the pool opened on it.
    db = await Database.open(DatabaseTarget(TargetSource.EMBEDDED, pgdata=pgdata), wait=False, pool_wait_s=3)
    stop = asyncio.Event()
    watching = asyncio.create_task(watch_embedded(pgdata, stop))
    try:
        assert await _select_one(db) == 1
        killed = _postmaster_pid(pgdata)
        os.kill(killed, signal.SIGKILL)

        async def answered_by_a_new_server() -> object:
            # (A backend of the killed postmaster may still answer for a moment: not yet.)
            return _postmaster_pid(pgdata) != killed and await _select_one(db, wait_s=1)

        await until(
            answered_by_a_new_server,
            timeout_s=90,  # the server's crash recovery, on a busy machine
            ignoring=(psycopg.OperationalError, PoolTimeout, OSError, ValueError),
            what="a query on the embedded server after its postmaster was killed",
        )

        def restarts() -> list[str]:
            return [r.getMessage() for r in caplog.records if "was gone; it runs again" in r.getMessage()]

        # Said once (the pool may connect before start_embedded returns and logs it). A start
        # that fails first (orphaned backends still holding the shared memory) is logged
        # apart, once, and tried again at the next look.
        assert len(await until(restarts, what="the watchdog's line")) == 1, caplog.text
    finally:
        stop.set()
        await watching
        await db.close()
        # A server just started again may refuse a fast stop while it recovers: ask again.
        await until(
            lambda: stop_embedded(pgdata) or True,
            ignoring=(DatabaseError,),
            what="the embedded server to stop",
        )


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])
