"""`openclaw gateway`: the long-running service.

On start: take the listening socket first (a port in use is one line and a non-zero exit,
with nothing written anywhere: a second gateway must not supersede the running one's
deployment row), then connect (embedded or DATABASE_URL) without waiting for Postgres,
migrate when it answers, record this process's deployment row, start the outbox flusher
and the metrics snapshot loop, serve the HTTP API. On SIGTERM or SIGINT: stop taking
requests, let running turns finish within a bound, take a last metrics snapshot, flush the
outbox, mark the deployment stopped, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

import uvicorn
from telegram.error import TelegramError

from openclaw import __version__, hostinfo
from openclaw.agent.runtime import AgentRuntime, open_runtime
from openclaw.context.deployments import NewDeployment, log_deployment, mark_stopped
from openclaw.cron.jobs import jobs_path
from openclaw.cron.runner import CronRunner
from openclaw.db.embedded_watchdog import watch_embedded
from openclaw.db.target import DatabaseTarget
from openclaw.errors import OpenclawError
from openclaw.gateway.app import Gateway, create_app
from openclaw.gateway.channel import ChannelCore
from openclaw.gateway.config import GatewayConfig, load_gateway_config
from openclaw.gateway.delivery import telegram_delivery
from openclaw.gateway.metrics import snapshot_loop
from openclaw.gateway.telegram import TelegramChannel
from openclaw.home import openclaw_home
from openclaw.sessions.legacy import log_unimported_sessions

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 30.0
LISTEN_BACKLOG = 2048  # uvicorn's default
# An idle kept-alive connection is closed after this. (uvicorn's default, said here: a slow
# request's body has its own deadline, webhook.body_timeout_s.)
KEEP_ALIVE_S = 5


class ListenError(OpenclawError):
    """The HTTP address cannot be taken (in use, not ours, no such address)."""


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, as uvicorn would make it; ListenError, with one
    line that names the address and the reason, when the address cannot be taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    sock = socket.socket(family=family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)  # held from now on: a second gateway's bind fails here
    except socket.gaierror as exc:  # HTTP_BIND is a name that does not resolve
        sock.close()
        raise ListenError(f"cannot listen on {where}: unknown address ({exc.strerror or exc})") from None
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise ListenError(f"cannot listen on {where}: {reason}") from None
    return sock


RETRY_S = 1.0  # while Postgres is down: a try a second, so the row is written soon after it answers


async def _record_deployment(runtime: AgentRuntime, stop: asyncio.Event) -> int | None:
    """This process's deployment row; retried in the background while Postgres is down."""
    new = NewDeployment(
        host=hostinfo.hostname(),
        component="gateway",
        version=__version__,
        binary_path=hostinfo.executable_path(),
        service_name=hostinfo.systemd_unit(),
        git_commit=hostinfo.git_head(),
        pid=os.getpid(),
    )
    warned = False
    while not stop.is_set():
        try:
            async with runtime.database.connection(wait_s=5) as conn:
                return (await log_deployment(conn, new)).id
        except Exception as exc:
            if not warned:  # once, not once a second
                log.warning("deployment not recorded yet (%s); retrying", type(exc).__name__)
                warned = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S)
    return None


async def serve(
    target: DatabaseTarget, config: GatewayConfig | None = None, sock: socket.socket | None = None
) -> None:
    """Run the gateway until SIGTERM or SIGINT; on `sock` when given, else on a socket bound
    to the config's address before anything else happens."""
    config = config or load_gateway_config()
    listener = sock if sock is not None else listen(config.bind, config.port)
    try:
        await _serve(target, config, listener)
    finally:
        listener.close()


async def _serve(target: DatabaseTarget, config: GatewayConfig, sock: socket.socket) -> None:
    runtime = await open_runtime(
        target,
        home=openclaw_home(),
        agent_name=config.agent_name,
        require_models=False,
        use_fallback=config.use_fallback,
    )
    unknown = (
        runtime.config.unknown_model(config.model) if config.model and runtime.config.providers else None
    )
    if unknown is not None:  # a typo in MODEL / agent.model: say so now, not in every failed turn
        log.error("the preferred model (MODEL or agent.model): %s; turns go to the fallback chain", unknown)
    gateway = Gateway(config, runtime, hostinfo.hostname())
    stop = asyncio.Event()
    runtime.start_flusher()
    # The embedded server this gateway depends on is started again whenever it is gone.
    watchdog = (
        asyncio.create_task(watch_embedded(target.pgdata, stop))
        if target.is_embedded and target.pgdata is not None
        else None
    )
    snapshots = asyncio.create_task(
        snapshot_loop(
            gateway.counters,
            gateway.process,
            runtime.spool,
            host=gateway.host,
            version=__version__,
            interval_s=config.snapshot_interval_s,
            stop=stop,
        )
    )
    deployment = asyncio.create_task(_record_deployment(runtime, stop))
    legacy_sessions = asyncio.create_task(
        log_unimported_sessions(runtime.database, openclaw_home() / "agents")
    )
    cron = CronRunner(
        jobs_path(openclaw_home()),
        runtime.agent,
        runtime.spool,
        runtime.database,
        host=gateway.host,
        deliver=telegram_delivery(config.telegram, runtime.client),
        lease_s=config.cron_lease_s,
    )
    cron_loop = asyncio.create_task(cron.loop(stop))
    telegram = None
    if config.telegram.enabled:
        telegram = TelegramChannel(ChannelCore(gateway, "telegram", "tg", config.telegram, cron))
        try:
            await telegram.start()
        except TelegramError as exc:  # a wrong token, or no network: the rest of the gateway still serves
            log.error("telegram: not started: %s", exc)
            telegram = None
    discord = None
    if config.discord.enabled:
        # Imported here: discord.py takes a while to import, and most gateways have no Discord.
        from openclaw.gateway.discord import DiscordChannel, DiscordStartError

        discord = DiscordChannel(ChannelCore(gateway, "discord", "dc", config.discord, cron))
        try:
            await discord.start()
        except DiscordStartError as exc:  # as for Telegram: the rest of the gateway still serves
            log.error("discord: not started: %s", exc)
            discord = None
    # Once, for the chat channels that run: what strangers' chats cannot do, and why.
    running = [
        name for name, channel in (("telegram", telegram), ("discord", discord)) if channel is not None
    ]
    warning = config.open_channel_warning(running)
    if warning:
        log.warning("%s", warning)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(gateway),
            host=config.bind,
            port=config.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
            timeout_keep_alive=KEEP_ALIVE_S,
        )
    )
    log.warning(
        "openclaw gateway %s listening on http://%s:%s (agent %s)",
        __version__,
        config.bind,
        sock.getsockname()[1],
        config.agent_name,
    )
    # uvicorn catches SIGTERM/SIGINT while it serves and, once stopped, raises the signal
    # again under the handler that was there before: let that one be a no-op, so that the
    # shutdown below runs to the end and the process exits 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        await server.serve(sockets=[sock])
    finally:
        gateway.draining = True
        stop.set()
        if telegram is not None:
            await telegram.stop()
        if discord is not None:
            await discord.stop()
        legacy_sessions.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await legacy_sessions
        cron_loop.cancel()  # a run cut short is recorded as cancelled
        with contextlib.suppress(asyncio.CancelledError):
            await cron_loop
        await snapshots  # writes the last snapshot
        deployment_id = await deployment
        if deployment_id is not None:
            with contextlib.suppress(Exception):
                async with runtime.database.connection(wait_s=3) as conn:
                    await mark_stopped(conn, deployment_id)
        if watchdog is not None:
            await watchdog  # it ends within a look once `stop` is set
        waiting = await runtime.close(drain_timeout_s=10)
        if waiting:
            log.warning("%d rows wait in the outbox; the next start ships them", waiting)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
