"""`openclaw gateway`: the long-running service.

On start: take the listening socket first (a port in use is one line and a non-zero exit,
with nothing written anywhere: a second gateway must not supersede the running one's
deployment row), then connect (embedded or DATABASE_URL) without waiting for Postgres,
migrate when it answers, record this process's deployment row, start the outbox flusher
and the metrics snapshot loop, serve the HTTP API. On SIGTERM or SIGINT: stop taking
requests, let running turns finish within a bound, take a last metrics snapshot, mark the
deployment stopped, flush the outbox, exit 0. Each component's stop is a step of one
AsyncExitStack, pushed as it starts: a step that fails is logged and the others still run
(the outbox last); the process then exits 1 (ShutdownError), naming what did not stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from telegram.error import TelegramError

from openclaw import __version__, hostinfo
from openclaw.agent.runtime import AgentRuntime
from openclaw.context.deployments import NewDeployment, log_deployment, mark_stopped
from openclaw.cron.jobs import jobs_path
from openclaw.cron.runner import CronRunner
from openclaw.db.embedded_watchdog import watch_embedded
from openclaw.db.target import DatabaseTarget
from openclaw.errors import OpenclawError
from openclaw.gateway.app import Gateway, create_app
from openclaw.gateway.channel import ChannelCore
from openclaw.gateway.config import GatewayConfig
from openclaw.gateway.delivery import telegram_delivery
from openclaw.gateway.metrics import snapshot_loop
from openclaw.gateway.telegram import TelegramChannel
from openclaw.outbox.classify import describe
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
        except (psycopg.Error, OSError) as exc:  # Postgres unavailable (or refusing): retried
            if not warned:  # once, not once a second
                log.warning("deployment not recorded yet (%s); retrying", describe(exc))
                warned = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S)
    return None


async def serve(
    runtime: AgentRuntime, config: GatewayConfig, sock: socket.socket, *, home: Path, target: DatabaseTarget
) -> None:
    """Serve on `sock` until SIGTERM or SIGINT, then stop every component and close
    `runtime` (it is this function's from now on: openclaw.app.serve_gateway opens it)."""
    unknown = (
        runtime.config.unknown_model(config.model) if config.model and runtime.config.providers else None
    )
    if unknown is not None:  # a typo in MODEL / agent.model: say so now, not in every failed turn
        log.error("the preferred model (MODEL or agent.model): %s; turns go to the fallback chain", unknown)
    gateway = Gateway(config, runtime, hostinfo.hostname())
    stop = asyncio.Event()
    failures: list[str] = []

    def stopping(name: str, step: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        """`step`, as one step of the shutdown: its failure is logged and remembered, and
        the steps after it still run."""

        async def run() -> None:
            try:
                await step()
            except Exception as exc:  # the other components must still stop, and the outbox be flushed
                log.error("gateway: %s did not stop cleanly", name, exc_info=exc)
                failures.append(f"{name}: {type(exc).__name__}: {exc}")

        return run

    def ended(task: asyncio.Task[Any]) -> Callable[[], Awaitable[object]]:
        """Wait for a loop that ends once `stop` is set (set here too: the stack may unwind
        because starting failed, before the step that sets it)."""

        async def wait() -> object:
            stop.set()
            return await task

        return wait

    def cancelled(task: asyncio.Task[Any]) -> Callable[[], Awaitable[None]]:
        async def cancel() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return cancel

    # Every component's stop is pushed as the component starts; the stack runs them in
    # reverse order, each whatever happened to the others (a failed start included). The
    # outbox is entered first so it is flushed last: after every component put its last rows
    # (the snapshot, cron runs, the deployment) in it.
    async with contextlib.AsyncExitStack() as stack:
        # Signal handlers are put back at the very end: a second SIGTERM while stopping
        # must not cut the shutdown short (filled in when serving starts).
        previous: dict[signal.Signals, Any] = {}
        stack.callback(_restore_signals, previous)
        runtime.start_flusher()
        stack.push_async_callback(stopping("the outbox", lambda: _close_runtime(runtime)))
        # The embedded server this gateway depends on is started again whenever it is gone.
        if target.is_embedded and target.pgdata is not None:
            watchdog = asyncio.create_task(watch_embedded(target.pgdata, stop))
            # it ends within a look once `stop` is set
            stack.push_async_callback(stopping("the embedded server's watchdog", ended(watchdog)))
        deployment = asyncio.create_task(_record_deployment(runtime, stop))
        stack.push_async_callback(stopping("the deployment row", lambda: _mark_stopped(runtime, deployment)))
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
        stack.push_async_callback(stopping("the metrics snapshots", ended(snapshots)))  # the last snapshot
        cron = CronRunner(
            jobs_path(home),
            runtime.agent,
            runtime.spool,
            runtime.database,
            host=gateway.host,
            deliver=telegram_delivery(config.telegram, runtime.client),
            lease_s=config.cron_lease_s,
            # cron's turns share the gateway's limit (waiting for a place, never refused) and counters
            run_turn=gateway.turns.queued,
            max_concurrent=config.sandbox.max_concurrent,
        )
        cron_loop = asyncio.create_task(cron.loop(stop))
        # a run cut short is recorded as cancelled
        stack.push_async_callback(stopping("cron", cancelled(cron_loop)))
        legacy_sessions = asyncio.create_task(log_unimported_sessions(runtime.database, home / "agents"))
        stack.push_async_callback(stopping("the legacy sessions check", cancelled(legacy_sessions)))
        telegram = None
        if config.telegram.enabled:
            telegram = TelegramChannel(ChannelCore(gateway, "telegram", "tg", config.telegram, cron))
            try:
                await telegram.start()
            except TelegramError as exc:  # a wrong token, or no network: the rest of the gateway still serves
                log.error("telegram: not started: %s", exc)
                telegram = None
            else:
                stack.push_async_callback(stopping("telegram", telegram.stop))
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
            else:
                stack.push_async_callback(stopping("discord", discord.stop))
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
        previous.update({sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)})

        def drain() -> None:  # the first step: no new turns, and every loop told to end
            gateway.draining = True
            stop.set()

        stack.callback(drain)
        await server.serve(sockets=[sock])
    if failures:
        raise ShutdownError("the gateway stopped, but not cleanly: " + "; ".join(failures))


class ShutdownError(OpenclawError):
    """A component failed to stop (each is in the log); every other one stopped, and the
    outbox was flushed."""


def _restore_signals(previous: dict[signal.Signals, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


async def _close_runtime(runtime: AgentRuntime) -> None:
    """The last step: flush the outbox (within a bound), close the pools."""
    waiting = await runtime.close(drain_timeout_s=10)
    if waiting:
        log.warning("%d rows wait in the outbox; the next start ships them", waiting)


async def _mark_stopped(runtime: AgentRuntime, deployment: asyncio.Task[int | None]) -> None:
    deployment_id = await deployment  # it returns once `stop` is set, recorded or not
    if deployment_id is None:
        return
    try:
        async with runtime.database.connection(wait_s=3) as conn:
            await mark_stopped(conn, deployment_id)
    except (psycopg.Error, OSError) as exc:  # Postgres gone at the end: the next deployment supersedes it
        log.warning("the deployment row was not marked stopped (%s)", describe(exc))
