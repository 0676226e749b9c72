"""Recovery after a Postgres outage: how long after Postgres answers again do requests work?

    python bench/recovery.py [--outages 5,20,60] [--interval 0.2]

A private PostgreSQL 15 cluster (initdb and pg_ctl from /usr/lib/postgresql/15/bin, on a
free loopback port, in a temporary directory; never the machine's server) is stopped
with `pg_ctl stop -m immediate` (a crash, as clients see it) for each outage, then
started again. Throughout, two clients ask every --interval seconds, as a gateway's
turns and `/ready` probes and an IDE's questions do, outage or not:

(a) the shared pool (`Database.connection(wait_s=2)` and `SELECT 1`), opened as the
    gateway opens it;
(b) an MCP tool (`open_issues`) of the server `openclaw mcp serve` runs, in this process
    (as `openclaw mcp call` runs it).

"answering" is the first moment a new direct connection succeeds (a probe tries every
10 ms from the start of `pg_ctl start`). Each column is the seconds from that moment to
the end of the first request of that client that worked. Goal: under 2 s for every
outage. The machine is shared and noisy: run it a few times. Timings never go in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from psycopg import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.private_cluster import PrivateCluster

from openclaw.db import Database, migrate
from openclaw.db.target import DatabaseTarget, TargetSource

RECOVERY_DEADLINE_S = 120.0  # a client not served by then is reported as such


class Client:
    """Asks every `interval_s` seconds; remembers when each answer that worked arrived."""

    def __init__(self, name: str, ask: Callable[[], Awaitable[bool]], interval_s: float) -> None:
        self.name = name
        self.ask = ask
        self.interval_s = interval_s
        self.served_at: list[float] = []
        self.served = asyncio.Event()  # set at each request that worked

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # an exception: the outage, not served
                if await self.ask():
                    self.served_at.append(time.monotonic())
                    self.served.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    def first_served_after(self, moment: float) -> float | None:
        return next((t - moment for t in self.served_at if t >= moment), None)


async def first_answer(url: str) -> float:
    """When a new direct connection first succeeds."""
    while True:
        try:
            conn = await AsyncConnection.connect(url, connect_timeout=2)
        except psycopg.OperationalError:
            await asyncio.sleep(0.01)
            continue
        answered = time.monotonic()
        await conn.close()
        return answered


async def outage(cluster: PrivateCluster, url: str, seconds: float, clients: list[Client]) -> list[str]:
    await asyncio.to_thread(cluster.stop, "immediate")
    await asyncio.sleep(seconds)
    for client in clients:
        client.served.clear()  # nobody is served while Postgres is down
    starting = asyncio.create_task(asyncio.to_thread(cluster.start))
    answered = await first_answer(url)
    await starting
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.served.wait() for c in clients)), RECOVERY_DEADLINE_S)
    cells = []
    for client in clients:
        waited = client.first_served_after(answered)
        cells.append(f"{waited:.2f}" if waited is not None else f"> {RECOVERY_DEADLINE_S:g}")
    return cells


async def main_async(outages: list[float], interval_s: float, root: Path) -> None:
    from mcp import Client as McpClient

    from openclaw.mcp.server import create_server
    from openclaw.mcp.state import open_state

    cluster = PrivateCluster(root / "cluster")
    await asyncio.to_thread(cluster.init)
    await asyncio.to_thread(cluster.start)
    async with await AsyncConnection.connect(cluster.url(), autocommit=True) as admin:
        await admin.execute("CREATE DATABASE openclaw")
    url = cluster.url("openclaw")
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
    target = DatabaseTarget(TargetSource.OPTION, url=url)
    home = root / "home"
    home.mkdir()

    db = await Database.open(target, wait=False, application_name="bench-recovery", pool_wait_s=3)
    try:
        async with (
            open_state(target, home) as state,
            McpClient(create_server(state)) as mcp,
        ):

            async def pool_select() -> bool:
                async with db.connection(wait_s=2) as conn:
                    await conn.execute("SELECT 1")
                return True

            async def mcp_tool() -> bool:
                return not (await mcp.call_tool("open_issues", {})).is_error

            clients = [Client("pool", pool_select, interval_s), Client("MCP tool", mcp_tool, interval_s)]
            stop = asyncio.Event()
            asking = [asyncio.create_task(c.run(stop)) for c in clients]
            rows = []
            for seconds in outages:
                rows.append([f"{seconds:g}", *await outage(cluster, url, seconds, clients)])
            stop.set()
            await asyncio.gather(*asking)
    finally:
        await db.close()
        await asyncio.to_thread(cluster.stop, "fast")

    header = ["outage s", *(f"{c.name} s" for c in clients)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(
        f"\nSeconds from Postgres answering to the first request that worked (asked every {interval_s:g} s)\n"
    )
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--outages",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[5.0, 20.0, 60.0],
        help="seconds of each outage, comma-separated (default 5,20,60)",
    )
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between a client's requests")
    args = parser.parse_args()
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)  # the pool's reconnect chatter in the outage
    logging.getLogger("mcp").setLevel(logging.CRITICAL)  # each failed tool call, as the IDE would see it
    with tempfile.TemporaryDirectory(prefix="openclaw-recovery-") as tmp:
        asyncio.run(main_async(args.outages, args.interval, Path(tmp)))


if __name__ == "__main__":
    main()
