"""Discord, over the gateway websocket (discord.py), on the shared channel core.

discord.py runs each event handler as its own task, so a new message can cancel the
chat's running answer, as on Telegram. The API address is configurable (`discord.api_base`),
which is also how the tests point the client at a local fake Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient, Route

from openclaw.errors import OpenclawError, is_transient
from openclaw.gateway.channel import ChannelCore, Incoming

log = logging.getLogger(__name__)

MAX_CHARS = 2000  # Discord's limit for one message
START_TIMEOUT_S = 30.0
TRANSPORT_ERRORS = (discord.DiscordException, aiohttp.ClientError)


class DiscordStartError(OpenclawError):
    """The bot could not log in or connect; the message says why in one line. `transient`:
    Discord or the network failed, and a later start may succeed; not so for a refused
    token or an intent switched off, which a person must mend."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class DiscordReplier:
    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel

    async def send(self, text: str) -> object:
        return await self.channel.send(text[:MAX_CHARS] or "…")

    async def edit(self, handle: object, text: str) -> None:
        assert isinstance(handle, discord.Message)
        # Streaming edits are best effort: a rate limit, a deleted message or a network
        # hiccup must not cost the answer (the final text is edited in at the end).
        try:
            await handle.edit(content=text[:MAX_CHARS] or "…")
        except TRANSPORT_ERRORS as exc:
            log.warning("discord: an edit in channel %s failed: %s", handle.channel.id, exc)


class _HTTPClient(HTTPClient):
    """discord.py's REST client, sent to `api_base`. discord.py builds every URL from the
    class attribute `Route.BASE`; rewriting here keeps the address per client instead of
    moving every client in the process."""

    def __init__(self, loop: asyncio.AbstractEventLoop, api_base: str) -> None:
        super().__init__(loop)
        self.api_base = api_base
        self._gateway: str | None = None

    async def request(self, route: Route, **kwargs: Any) -> Any:
        if route.url.startswith(Route.BASE):
            route.url = self.api_base + route.url[len(Route.BASE) :]
        return await super().request(route, **kwargs)

    async def ws_connect(self, url: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
        # The first connection goes to a hard-coded wss://gateway.discord.gg (later ones to
        # READY's resume_gateway_url): ask the API where its gateway is, as Discord advises.
        target = yarl.URL(url)
        if target.host == DiscordWebSocket.DEFAULT_GATEWAY.host:
            if self._gateway is None:
                _, self._gateway, _ = await self.get_bot_gateway()
            target = yarl.URL(self._gateway).with_query(target.query)
        return await super().ws_connect(str(target), compress=compress)


class _Client(discord.Client):
    def __init__(self, channel: DiscordChannel) -> None:
        # No voice here: keep discord.py from warning at every start that its libraries are missing.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: switched on for the bot in the Developer Portal
        # A model's "@everyone" must stay text, not ping a whole server.
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        # discord.py has no option for the REST client: swap it, and the connection state's
        # reference to it, before anything has used it.
        self.http = self._connection.http = _HTTPClient(self.loop, channel.core.config.api_base)
        self.channel = channel
        self.counters = channel.core.gateway.counters

    async def on_ready(self) -> None:
        self.channel.ready.set()

    async def on_connect(self) -> None:
        self.counters.gateway_connects += 1

    async def on_disconnect(self) -> None:
        self.counters.gateway_disconnects += 1

    async def on_resumed(self) -> None:
        self.counters.gateway_resumes += 1

    async def on_message(self, message: discord.Message) -> None:
        await self.channel.on_message(message)


class DiscordChannel:
    def __init__(self, core: ChannelCore) -> None:
        self.core = core
        self.ready = asyncio.Event()
        self.client = _Client(self)
        self._running: asyncio.Task[None] | None = None
        self._stopping = False

    async def on_message(self, message: discord.Message) -> None:
        # Other bots and our own answers; no text: an attachment alone, or the intent is off.
        if message.author.bot or not message.content:
            return
        incoming = Incoming(message.author.id, message.channel.id, message.content, message.author.name)
        try:
            await self.core.handle(incoming, DiscordReplier(message.channel))
        except TRANSPORT_ERRORS as exc:
            self.core.gateway.counters.error(self.core.channel)
            log.error("discord: could not answer channel %s: %s", message.channel.id, exc)

    async def start(self) -> None:
        """Log in and connect; return once Discord says ready, or raise DiscordStartError."""
        self._running = asyncio.create_task(self.client.start(self.core.config.bot_token or ""))
        self._running.add_done_callback(self._ended)
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait(
            {self._running, ready}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready.done():
            log.warning("discord: connected as %s", self.client.user)
            return
        ready.cancel()
        failure = self._running.exception() if self._running.done() else None
        await self.stop()
        if isinstance(failure, discord.LoginFailure):
            raise DiscordStartError("the bot token was refused")
        if isinstance(failure, discord.PrivilegedIntentsRequired):
            raise DiscordStartError("the bot's Message Content intent is off (Developer Portal, Bot page)")
        if failure is not None:
            raise DiscordStartError(f"{type(failure).__name__}: {failure}", transient=_transient(failure))
        raise DiscordStartError(f"not connected within {START_TIMEOUT_S:.0f} s", transient=True)

    def _ended(self, task: asyncio.Task[None]) -> None:
        # discord.py reconnects by itself; it gives up only on what a retry cannot fix
        # (a revoked token, an intent switched off), and that must not pass silently.
        failure = None if task.cancelled() else task.exception()
        if failure is not None and self.ready.is_set() and not self._stopping:
            log.error("discord: disconnected for good: %s", failure)

    async def stop(self) -> None:
        self._stopping = True
        self.core.cancel_all()
        await self.client.close()
        if self._running is not None:
            # The client's task ends once closed; its error, if any, was reported by start().
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._running, 10)


def _transient(failure: BaseException) -> bool:
    """Whether a start that failed with `failure` may succeed later: the network or
    Discord's side (a 429 or a 5xx), not a request Discord refuses."""
    if isinstance(failure, discord.HTTPException):
        return failure.status == 429 or failure.status >= 500
    return isinstance(
        failure, aiohttp.ClientError | OSError | discord.GatewayNotFound | discord.ConnectionClosed
    ) or is_transient(failure)
