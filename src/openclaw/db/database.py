"""The connection pool every openclaw component shares.

During and after an outage (openclaw.db.pool has the details): a request waits for a
connection up to its `wait_s` and then raises PoolTimeout; meanwhile the pool tries to
connect again every RETRY_MIN_S to RETRY_MAX_S seconds (0.5 to 1 s), for as long as the
outage lasts, never giving up. Once Postgres answers, the next attempt succeeds and
serves the requests waiting, and no connection the old server closed is handed out: a
request made after Postgres answers gets a working connection within about a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

import psycopg
from psycopg import AsyncConnection

from openclaw.db.embedded import start_embedded
from openclaw.db.pool import RecoveringPool, open_pool
from openclaw.db.target import DatabaseTarget, redact_url
from openclaw.errors import DatabaseError, DatabaseUnavailableError, first_line, is_transient

CONNECT_TIMEOUT_S = 10


class Database:
    """An open pool on a resolved target. Use `Database.open()` or `async with`."""

    def __init__(self, target: DatabaseTarget, url: str, pool: RecoveringPool) -> None:
        self.target = target
        self.url = url
        self.pool = pool

    @classmethod
    async def open(
        cls,
        target: DatabaseTarget,
        *,
        min_size: int = 1,
        max_size: int = 4,
        application_name: str = "openclaw",
        wait: bool = True,
        pool_wait_s: float = 30.0,
    ) -> Self:
        """Start the embedded server if needed, check the server answers, open the pool.

        The first connection is made directly so that an unreachable server fails at
        once with libpq's reason, instead of after the pool's timeout. With `wait=False`
        the pool opens even if the server is down and connects when it comes back (the
        gateway and the outbox work through an outage).
        """
        url = target.url
        if url is None:
            assert target.pgdata is not None
            url = await asyncio.to_thread(start_embedded, target.pgdata)
        kwargs: dict[str, Any] = {
            "application_name": application_name,
            "connect_timeout": CONNECT_TIMEOUT_S,
        }
        if wait:
            try:
                probe = await AsyncConnection.connect(url, **kwargs)
            except psycopg.Error as exc:
                kind = (
                    DatabaseUnavailableError if is_transient(exc) else DatabaseError
                )  # a typo'd password is not
                raise kind(f"cannot connect to {redact_url(url)}: {first_line(exc)}") from None
            await probe.close()
        pool = await open_pool(
            url,
            kwargs=kwargs,
            min_size=min_size,
            max_size=max_size,
            wait_s=pool_wait_s,
            wait_for_min_size=wait,
            open_timeout_s=CONNECT_TIMEOUT_S,
        )
        return cls(target, url, pool)

    @asynccontextmanager
    async def connection(
        self, wait_s: float | None = None, *, autocommit: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A pooled connection; the block runs in a transaction committed on success. With
        `autocommit`, each statement commits on its own: no BEGIN and COMMIT round trips,
        for a block of one statement (a third of a short write's time) or of reads that need
        no common snapshot. Raises psycopg_pool.PoolTimeout if none is to be had within
        `wait_s` seconds."""
        async with self.pool.connection(timeout=wait_s) as conn:
            if autocommit:
                await conn.set_autocommit(True)  # a flag: no round trip (put back by the pool)
            yield conn

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
