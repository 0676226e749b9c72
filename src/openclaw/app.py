"""The composition root: where openclaw's parts are put together, and nowhere else.

- `load_settings()`: both config files and the environment, read and checked once, at the
  edge (the CLI command that runs), and passed down from there.
- `OUTBOX_HANDLERS`: what ships each kind of outbox entry. Each component owns its records
  and names their handlers next to them; they meet here.
- `open_runtime()`: the database, the outbox, the session store, the LLM router, the tools
  and the agent, for `openclaw agent`, `openclaw chat`, `openclaw cron run` and the gateway.
- `serve_gateway()`: the socket, the runtime, then the gateway (openclaw.gateway.server).

Everything below this module gets what it needs as parameters; nothing below imports it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from openclaw import hostinfo
from openclaw.agent.context_tools import context_tools
from openclaw.agent.loop import Agent
from openclaw.agent.runtime import AgentRuntime, ensure_schema
from openclaw.agent.tools import LIST_DIR, READ_FILE, ToolRegistry, exec_tool
from openclaw.config.env import EnvSettings, read_env
from openclaw.config.gateway_file import load_gateway_file
from openclaw.config.manual_file import parse_manual_file
from openclaw.cron.records import OUTBOX_HANDLERS as CRON_HANDLERS
from openclaw.db import Database
from openclaw.db.target import DatabaseTarget, TargetSource, target_of
from openclaw.errors import ConfigError
from openclaw.gateway.config import GatewayConfig, gateway_config_from
from openclaw.gateway.metrics import OUTBOX_HANDLERS as METRICS_HANDLERS
from openclaw.home import manual_config_path, openclaw_home
from openclaw.llm.config import LlmConfig, llm_config_from
from openclaw.llm.log import LlmLog
from openclaw.llm.records import OUTBOX_HANDLERS as LLM_HANDLERS
from openclaw.llm.router import Router, build_providers
from openclaw.outbox import Flusher, Handler, open_spool
from openclaw.sessions import configured_backend, open_store
from openclaw.sessions.mirror import OUTBOX_HANDLERS as SESSION_HANDLERS
from openclaw.sessions.resilient import ResilientSessionStore
from openclaw.settings import read_json_object

log = logging.getLogger(__name__)


def _handlers(*groups: Mapping[str, Handler]) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {}
    for group in groups:
        if clash := handlers.keys() & group.keys():  # two owners of a kind: a bug, said at import
            raise RuntimeError(f"outbox kinds with two handlers: {sorted(clash)}")
        handlers.update(group)
    return handlers


# Every kind of outbox entry and what ships it: a component that adds a record adds its
# mapping here.
OUTBOX_HANDLERS = _handlers(LLM_HANDLERS, METRICS_HANDLERS, CRON_HANDLERS, SESSION_HANDLERS)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything openclaw's runtime is configured by, resolved (the env applied)."""

    home: Path
    gateway: GatewayConfig
    llm: LlmConfig
    config_database_url: str | None = field(default=None, repr=False)  # database.url of the file
    env_database_url: str | None = field(default=None, repr=False)  # DATABASE_URL
    sessions_backend: str | None = None  # OPENCLAW_SESSIONS_BACKEND, else sessions.backend
    outbox_limits: Mapping[str, int] = field(default_factory=dict)
    llm_log_capacity: int = 256

    def database_target(self, option_url: str | None = None) -> DatabaseTarget:
        """The database: `--database-url`, else DATABASE_URL, else the config file's
        database.url, else the embedded server of the home."""
        if option_url:
            return DatabaseTarget(TargetSource.OPTION, url=option_url)
        return target_of(env_url=self.env_database_url, config_url=self.config_database_url, home=self.home)


def load_models(path: Path, *, require_models: bool) -> tuple[LlmConfig, str | None]:
    """openclaw-manual.json: the LLM config and gateway.auth's token. Without
    `require_models` (the gateway), a missing file or a file without usable providers gives
    an unusable config that says why; a wrong type is an error either way."""
    if not path.exists() and not require_models:
        return LlmConfig.unusable(f"model config not found: {path}"), None
    manual = parse_manual_file(read_json_object(path, what="model config"), path)
    token = manual.gateway.auth
    try:
        config = llm_config_from(manual, path)
        if not config.providers:
            raise ConfigError(f"no providers in {path}: add models.providers (see the README)")
    except ConfigError as exc:
        if require_models:
            raise
        return LlmConfig.unusable(str(exc)), token
    return config, token


def load_settings(
    *, require_models: bool = False, read_models: bool = True, manual_path: Path | None = None
) -> Settings:
    """Read the gateway config, openclaw-manual.json (unless not `read_models`) and the
    environment. Raises ConfigError (InvalidConfigError, exit code 2, for a wrong value)
    before anything is started or written."""
    home = openclaw_home()
    file = load_gateway_file()
    env: EnvSettings = read_env()
    if read_models:
        llm, api_token = load_models(manual_path or manual_config_path(home), require_models=require_models)
    else:
        llm, api_token = LlmConfig.unusable("openclaw-manual.json not read"), None
    return Settings(
        home=home,
        gateway=gateway_config_from(file, env, api_token=api_token),
        llm=llm,
        config_database_url=file.database.url,
        env_database_url=(env.database_url or "").strip() or None,
        sessions_backend=env.openclaw_sessions_backend or file.sessions.backend,
        outbox_limits={"max_entries": file.outbox.max_entries, "memory_entries": file.outbox.memory_entries},
        llm_log_capacity=file.llm_log.capacity,
    )


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
    """The runtime of `settings` (loaded by the command, at the edge); without them (tests)
    they are loaded here, once."""
    if settings is None:
        settings = load_settings(require_models=require_models, manual_path=config_path)
    config = settings.llm
    if config.problem is not None:
        if require_models:
            raise ConfigError(config.problem)
        log.error("%s; the gateway serves, and turns answer that no model is configured", config.problem)
    sandbox = settings.gateway.sandbox
    database = await Database.open(target, wait=False, application_name="openclaw-agent", pool_wait_s=3)
    ready = await ensure_schema(database)
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


async def serve_gateway(
    target: DatabaseTarget, settings: Settings, sock: socket.socket | None = None
) -> None:
    """Run the gateway until SIGTERM or SIGINT; on `sock` when given, else on a socket bound
    to the configured address before anything else happens (a port in use is one line,
    with nothing written anywhere)."""
    from openclaw.gateway import server  # uvicorn and the chat SDKs: for the gateway only

    config = settings.gateway
    listener = sock if sock is not None else server.listen(config.bind, config.port)
    try:
        runtime = await open_runtime(
            target,
            home=settings.home,
            agent_name=config.agent_name,
            require_models=False,
            use_fallback=config.use_fallback,
            settings=settings,
        )
        await server.serve(runtime, config, listener, home=settings.home, target=target)
    finally:
        listener.close()
