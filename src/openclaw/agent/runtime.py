"""Everything a turn needs, put together from the configuration: the composition root that
`openclaw agent`, `openclaw chat` and the gateway share.

The database is opened without waiting: with Postgres down, chats on the sqlite and dual
backends go on, LLM calls wait in the outbox, and the flusher ships them when Postgres
is back (in this process, or the next one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg

from openclaw import hostinfo
from openclaw.agent.context_tools import context_tools
from openclaw.agent.loop import Agent
from openclaw.agent.tools import LIST_DIR, READ_FILE, ToolRegistry, exec_tool
from openclaw.db import Database, migrate, migration_status
from openclaw.db.runtime import HANDLERS as RUNTIME_HANDLERS
from openclaw.db.target import DatabaseTarget
from openclaw.errors import ConfigError
from openclaw.llm.config import LlmConfig
from openclaw.llm.log import LlmLog
from openclaw.llm.router import Router, build_providers
from openclaw.outbox import Flusher, Spool, open_spool
from openclaw.sessions import configured_backend, open_store
from openclaw.sessions.mirror import HANDLERS as SESSION_HANDLERS
from openclaw.sessions.resilient import ResilientSessionStore
from openclaw.sessions.store import SessionStore

if TYPE_CHECKING:
    from openclaw.config.loader import Settings

log = logging.getLogger(__name__)

OUTBOX_HANDLERS = {**RUNTIME_HANDLERS, **SESSION_HANDLERS}


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
                self.postgres_ready = await _ensure_schema(self.database, quiet=True)
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


async def _ensure_schema(database: Database, *, quiet: bool = False) -> bool:
    """Migrate if Postgres answers; if it does not, the outbox waits for it (said once, at
    start: `quiet` for the tries after)."""
    try:
        async with database.connection(wait_s=2) as conn:
            pending = (await migration_status(conn)).pending
        if pending:
            async with await psycopg.AsyncConnection.connect(database.url, autocommit=True) as conn:
                await migrate(conn)
    except Exception as exc:  # unreachable, or no rights to migrate: say so, chat anyway
        if not quiet:
            log.warning("Postgres not ready (%s); chats go on, and their writes wait in the outbox", exc)
        return False
    return True


async def open_runtime(
    target: DatabaseTarget,
    *,
    home: Path,
    agent_name: str = "main",
    config_path: Path | None = None,
    require_models: bool = True,
    use_fallback: bool = True,
    settings: Settings | None = None,
) -> AgentRuntime:
    """The runtime of `settings` (loaded by the command: openclaw.config.loader); without
    them (tests, and the commands that have not loaded any) they are loaded here, once."""
    if settings is None:
        from openclaw.config.loader import load_settings

        settings = load_settings(require_models=require_models, manual_path=config_path)
    config = settings.llm
    if config.problem is not None:
        if require_models:
            raise ConfigError(config.problem)
        log.error("%s; the gateway serves, and turns answer that no model is configured", config.problem)
    sandbox = settings.gateway.sandbox
    database = await Database.open(target, wait=False, application_name="openclaw-agent", pool_wait_s=3)
    ready = await _ensure_schema(database)
    # the spool of this database (outbox/targets.py)
    spool = await asyncio.to_thread(
        open_spool, home, target, **settings.outbox_limits
    )  # it may count an old file once
    llm_log = LlmLog(spool, capacity=settings.llm_log_capacity, host=hostinfo.hostname())
    store = open_store(
        configured_backend(settings.sessions_backend),
        agent=agent_name,
        home=home,
        database=database,
        spool=spool,
    )
    client = httpx.AsyncClient()
    router = Router(
        config,
        build_providers(config, client, read_timeout_s=config.timeout_s),
        llm_log,
        use_fallback=use_fallback,
    )
    tools = ToolRegistry([READ_FILE, LIST_DIR, exec_tool(sandbox), *context_tools(database)])
    agent = Agent(
        router, store, tools, name=agent_name, turn_timeout_s=min(config.timeout_s, sandbox.turn_timeout_secs)
    )
    flusher = Flusher(spool, database, OUTBOX_HANDLERS)
    if isinstance(store, ResilientSessionStore) and spool.stats().pending:
        # Writes from before this process (an earlier run, another process) ship first: a
        # session's new messages must land after its old ones. Only those sessions wait
        # for the flusher (which starts with them); the others go straight to Postgres.
        store.behind_outbox(await asyncio.to_thread(spool.pending_sessions))
    return AgentRuntime(agent, config, store, database, spool, flusher, llm_log, client, ready)
