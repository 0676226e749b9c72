"""psycopg_pool's AsyncConnectionPool, made to serve again as soon as Postgres answers
after an outage. Every pool of openclaw is one: the shared one (openclaw.db.database) and
the MCP server's reader pool.

Left to itself, psycopg_pool recovers slowly from an outage, for three reasons:

- It hands out an idle connection without looking at it. After Postgres restarted, the
  first requests get connections the old server closed, and fail.
- A connection that could not be made is tried again after 1, 2, 4, 8... seconds: after a
  60 s outage the next attempt may come 30 s after Postgres is back, and every request
  waits for it.
- After `reconnect_timeout` (5 minutes) it stops trying to refill that connection; a
  request already waiting is then never served.

`RecoveringPool` changes these three and nothing else:

- `getconn` looks at the socket of the connection it is about to hand out (a poll, no
  round trip). Between requests the server sends nothing, except when it closes the
  connection (shutdown, crash, restart: an error message, then the end of the stream);
  such a connection is closed and given back, the pool replaces it at once, and the
  request takes the next one, without waiting. (A server whose host vanished without a
  word, a cut cable, cannot be seen this way: the first request on such a connection
  fails, as with any pool that does not ping; a ping on every request would cost a round
  trip on every turn.)
- A failed connection attempt is retried after RETRY_MIN_S to RETRY_MAX_S seconds (random,
  so that several processes do not knock together), however long the outage: a few
  attempts a second at most for the whole pool, and a request waits at most about
  RETRY_MAX_S after Postgres answers again.
- It never gives up.
"""

from __future__ import annotations

import math
import random
import select
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.pool_async import AddConnection, MaintenanceTask

RETRY_MIN_S = 0.5
RETRY_MAX_S = 1.0

ResetSession = Callable[[AsyncConnection[Any]], Awaitable[None]]


def server_hung_up(conn: AsyncConnection[Any]) -> bool:
    """Whether the server closed this idle connection (or said anything on it, which
    between requests it does only to say goodbye)."""
    if conn.closed:
        return True
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))  # readable, or hung up (POLLHUP and POLLERR always count)


class RecoveringPool(AsyncConnectionPool[AsyncConnection[Any]]):
    """An AsyncConnectionPool that serves again as soon as Postgres answers (see the module)."""

    # `timeout`, not asyncio.timeout(): the signature of the method this overrides.
    async def getconn(self, timeout: float | None = None) -> AsyncConnection[Any]:  # noqa: ASYNC109
        wait_s = self.timeout if timeout is None else timeout
        deadline = monotonic() + wait_s
        while True:
            try:
                conn = await super().getconn(max(deadline - monotonic(), 0.0))
            except PoolTimeout:
                raise PoolTimeout(f"couldn't get a connection after {wait_s:.2f} sec") from None
            if not server_hung_up(conn):
                return conn
            # Closed, it goes back as broken: the pool opens a new one in its place now, not
            # after a back-off. The other idle ones, as old, come next and go the same way.
            await conn.close()
            await self.putconn(conn)

    async def schedule_task(self, task: MaintenanceTask, delay: float) -> None:
        if isinstance(task, AddConnection):  # the retry of a connection that could not be made
            delay = min(delay, random.uniform(RETRY_MIN_S, RETRY_MAX_S))
        await super().schedule_task(task, delay)


async def open_pool(
    url: str,
    *,
    kwargs: dict[str, Any],
    min_size: int,
    max_size: int,
    wait_s: float,
    reset: ResetSession | None = None,
    wait_for_min_size: bool,
    open_timeout_s: float,
) -> RecoveringPool:
    """An open RecoveringPool; with `wait_for_min_size`, once its first connections are made.
    A connection goes back into the pool out of autocommit (a block may have asked for it:
    openclaw.db.Database.connection), then through `reset`."""

    async def back_in_the_pool(conn: AsyncConnection[Any]) -> None:
        if conn.autocommit:  # the next block expects a transaction
            await conn.set_autocommit(False)
        if reset is not None:
            await reset(conn)

    pool = RecoveringPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs=kwargs,
        open=False,
        timeout=wait_s,
        reset=back_in_the_pool,
        reconnect_timeout=math.inf,
    )
    try:
        await pool.open(wait=wait_for_min_size, timeout=open_timeout_s)
    except BaseException:  # cancelled while waiting: the pool's workers must not outlive it
        await pool.close()
        raise
    return pool
