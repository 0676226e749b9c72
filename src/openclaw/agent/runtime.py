"""`AgentRuntime`: everything a turn needs, and its lifecycle (the flusher started, the
outbox drained and everything closed at the end). `openclaw.app.open_runtime` puts one
together from the settings, for `openclaw agent`, `openclaw chat`, cron and the gateway.

With Postgres down, chats on the sqlite and dual backends go on, LLM calls wait in the
outbox, and the flusher ships them when Postgres is back (in this process, or the next).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import httpx
import psycopg

from openclaw.agent.loop import Agent
from openclaw.db import Database, migrate, migration_status
from openclaw.errors import MigrationError, first_line, is_transient
from openclaw.llm.config import LlmConfig
from openclaw.llm.log import LlmLog
from openclaw.outbox import Flusher, Spool
from openclaw.outbox.classify import describe
from openclaw.sessions.store import SessionStore

log = logging.getLogger(__name__)


@dataclass
class AgentRuntime:
    agent: Agent
    config: LlmConfig
    store: SessionStore
    database: Database
    spool: Spool
    flusher: Flusher
    llm_log: LlmLog
    client: httpx.AsyncClient
    postgres_ready: bool = True
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _flushing: asyncio.Task[None] | None = None

    def start_flusher(self) -> None:
        """Ship the outbox in the background while the runtime lives (after migrating, if
        Postgres was not ready at the start)."""

        async def migrate_then_flush() -> None:
            # A try a second (a connection attempt, no load on a down server): the outbox
            # ships soon after Postgres answers, not after a back-off grown in an outage.
            while not self.postgres_ready and not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                self.postgres_ready = await ensure_schema(self.database, quiet=True)
            await self.flusher.run(self._stop)

        self._flushing = asyncio.create_task(migrate_then_flush())

    async def close(self, drain_timeout_s: float = 3.0) -> int:
        """Ship what can be shipped, release everything; return the entries still waiting.
        (Stopping a flush halfway is safe: entries leave the spool only after Postgres
        committed them.)"""
        self._stop.set()
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        await self.flusher.drain(drain_timeout_s if self.postgres_ready else min(drain_timeout_s, 1.0))
        waiting = await asyncio.to_thread(self.spool.pending)
        await self.store.close()
        await self.client.aclose()
        await self.database.close()
        await asyncio.to_thread(self.spool.close)
        return waiting


async def ensure_schema(database: Database, *, quiet: bool = False) -> bool:
    """Migrate if Postgres answers; if it does not, the outbox waits for it (said once, at
    start: `quiet` for the tries after)."""
    try:
        async with database.connection(wait_s=2) as conn:
            pending = (await migration_status(conn)).pending
        if pending:
            async with await psycopg.AsyncConnection.connect(database.url, autocommit=True) as conn:
                await migrate(conn)
    except MigrationError as exc:  # an edited migration, a failed statement: a person must act
        if not quiet:
            log.error(
                "the schema cannot be brought up to date: %s; chats go on, their writes wait in the outbox",
                exc,
            )
        return False
    except (psycopg.Error, OSError) as exc:  # unreachable, or no rights to migrate: say so, chat anyway
        if not quiet:
            log.warning(
                "Postgres not ready (%s); chats go on, and their writes wait in the outbox",
                first_line(exc) if is_transient(exc) else describe(exc),
            )
        return False
    return True
