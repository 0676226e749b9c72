"""What Telegram and Discord share: who may talk, how often, how many at once, sessions,
commands, and answers streamed by editing one message (reference §8).

A transport adapter (python-telegram-bot, discord.py) turns its updates into `Incoming`
and gives a `Replier` that can send and edit; everything else happens here. The turn
itself (the concurrency gate, one answer per chat where the latest message wins, the
counters, what a failure tells the user) is the gateway's `TurnRunner` (gateway/turns.py).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from openclaw.agent.loop import Agent, TurnResult
from openclaw.cron.runner import CronRunner
from openclaw.errors import NotFoundError
from openclaw.gateway.app import Gateway
from openclaw.gateway.config import ChannelConfig
from openclaw.gateway.metrics import Channel
from openclaw.gateway.turns import Answered

log = logging.getLogger(__name__)

EDIT_INTERVAL_S = 1.0  # Telegram allows about one edit a second per chat
HELP = """Commands:
/new: start a new conversation
/clear: forget this conversation
/history [N]: the last N messages (at most 20)
/cancel or /stop: stop the running answer
/model: the model in use
/status: how the gateway is doing
/sessions: your conversations
/logs [N]: the last N model calls (at most 20)
/cron [enable|disable NAME]: the cron jobs
/whoami: your ids
/ping: pong"""


@dataclass(frozen=True, slots=True)
class Incoming:
    user_id: int
    chat_id: int | str
    text: str
    username: str | None = None


class Replier(Protocol):
    async def send(self, text: str) -> object:
        """Send a message; return a handle to edit it."""
        ...

    async def edit(self, handle: object, text: str) -> None: ...


class SlidingWindow:
    """At most `limit` events per `window_s` seconds, per key."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s = limit, window_s
        self.clock = clock
        self._events: dict[int, deque[float]] = {}

    def allow(self, key: int) -> bool:
        now = self.clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True


class ChannelCore:
    def __init__(
        self,
        gateway: Gateway,
        channel: str,
        prefix: str,
        config: ChannelConfig,
        cron: CronRunner | None = None,
    ) -> None:
        self.gateway = gateway
        self.cron = cron
        self.channel = Channel(channel)  # telegram or discord: the counters' label
        self.prefix = prefix  # "tg" or "dc": the session keys'
        self.config = config
        sandbox = gateway.config.sandbox
        self.limiter = SlidingWindow(sandbox.rate_limit_messages, sandbox.rate_limit_window_secs)
        self._restricted: tuple[Agent, Path, Agent] | None = None  # the runtime's agent, root, the copy

    @property
    def restricted(self) -> bool:
        """Whether this channel's turns go without exec and files outside the workspace: it
        has no allowlist (anyone who finds the bot may talk) and the operator did not set
        agent.sandbox.allow_exec_for_everyone."""
        return self.config.open_to_everyone and not self.gateway.config.sandbox.allow_exec_for_everyone

    @property
    def agent(self) -> Agent:
        """The agent for this channel's turns: the runtime's, or a copy with the restricted tools."""
        full = self.gateway.runtime.agent
        if not self.restricted:
            return full
        root = self.gateway.config.sandbox.workspace
        if self._restricted is None or self._restricted[:2] != (full, root):
            limited = copy.copy(full)  # shares the router and the store; only the tools differ
            limited.tools = full.tools.restricted(
                root,
                f"{self.channel}.allowed_user_ids is empty, so anyone may talk to this bot "
                "(the operator can set agent.sandbox.allow_exec_for_everyone: true)",
            )
            self._restricted = (full, root, limited)
        return self._restricted[2]

    def base_key(self, msg: Incoming) -> str:
        return f"{self.prefix}:{self.gateway.config.agent_name}:{msg.user_id}:{msg.chat_id}"

    async def session_key(self, msg: Incoming) -> str:
        """The chat's current session: the newest one under its key (after /new, a suffixed one)."""
        latest = await self.gateway.runtime.store.find_latest_session(self.base_key(msg))
        return latest.session_key if latest else self.base_key(msg)

    def chat_key(self, msg: Incoming) -> str:
        """The chat, for the turn runner (shared by every channel): one answer at a time."""
        return f"{self.prefix}:{msg.user_id}:{msg.chat_id}"

    async def handle(self, msg: Incoming, reply: Replier) -> None:
        gw, turns = self.gateway, self.gateway.turns
        gw.counters.request(self.channel)
        if not self.config.allows(msg.user_id):
            await reply.send("Sorry, you are not on this bot's allowlist.")
            return
        text = msg.text.strip()
        if text.startswith("/"):
            await self.command(msg, text, reply)
            return
        if not self.limiter.allow(msg.user_id):
            gw.counters.rate_limited += 1
            await reply.send("Slow down a little: too many messages in a short time.")
            return
        chat = self.chat_key(msg)
        # A message that replaces the chat's running answer takes its place, even at the limit.
        if turns.running(chat) is None and turns.reject_if_busy():
            await reply.send("I'm busy with other conversations; please try again in a moment.")
            return
        await turns.wait(turns.start_latest(chat, lambda: self._turn(msg, text, reply)))

    def cancel_all(self) -> None:
        """Stop every running answer of this channel (it is shutting down)."""
        self.gateway.turns.cancel_all(f"{self.prefix}:")

    async def _turn(self, msg: Incoming, text: str, reply: Replier) -> None:
        gw = self.gateway
        shown = ""
        handle: object | None = None
        last_edit = 0.0

        async def on_delta(piece: str) -> None:
            nonlocal shown, handle, last_edit
            shown += piece
            now = time.monotonic()
            if handle is None:
                handle = await reply.send(shown)
                last_edit = now
            elif now - last_edit >= EDIT_INTERVAL_S:
                await reply.edit(handle, shown)
                last_edit = now

        async def on_restart() -> None:
            nonlocal shown
            shown = ""  # another model answers from the start; the next edit replaces the text

        async def turn() -> TurnResult:
            return await self.agent.turn(
                await self.session_key(msg),
                text,
                model=gw.config.model,
                on_delta=on_delta,
                on_restart=on_restart,
            )

        try:
            outcome = await gw.turns.run(self.channel, f"chat {msg.chat_id}", turn)
        except asyncio.CancelledError:
            if handle is not None:
                await reply.edit(handle, (shown + " …(stopped)").strip())
            raise
        if not isinstance(outcome, Answered):
            await reply.send(outcome.told)
            return
        final = outcome.result.reply or "(no answer)"
        if handle is None:
            await reply.send(final)
        else:
            await reply.edit(handle, final)  # the whole answer, whatever the last throttled edit showed

    async def command(self, msg: Incoming, text: str, reply: Replier) -> None:
        name, _, argument = text[1:].partition(" ")
        name = name.split("@", 1)[0].lower()  # /help@botname in groups
        gw, store = self.gateway, self.gateway.runtime.store
        if name in ("start", "help"):
            await reply.send(HELP)
        elif name == "ping":
            await reply.send("pong")
        elif name == "whoami":
            await reply.send(
                f"user {msg.user_id}, chat {msg.chat_id}" + (f", @{msg.username}" if msg.username else "")
            )
        elif name == "new":
            key = f"{self.base_key(msg)}:{uuid.uuid4()}"
            await store.create_session(key, gw.config.agent_name, str(gw.config.model or ""))
            await reply.send("New conversation started.")
        elif name == "clear":
            key = await self.session_key(msg)
            await store.delete_session(key)
            await reply.send("This conversation is forgotten.")
        elif name == "history":
            count = max(1, min(int(argument) if argument.strip().isdigit() else 10, 20))
            messages = await store.load_recent_messages(await self.session_key(msg), count)
            lines = [f"{m.role.value}: {(m.content or '(tool call)')[:200]}" for m in messages]
            await reply.send("\n".join(lines) or "No messages yet.")
        elif name in ("cancel", "stop"):
            if gw.turns.cancel(self.chat_key(msg)):
                await reply.send("Stopped.")
            else:
                await reply.send("Nothing is running.")
        elif name == "model":
            chain = gw.runtime.agent.router.chain(gw.config.model)
            await reply.send(
                "Model: "
                + (str(chain[0]) if chain else "none configured")
                + (f" (fallbacks: {', '.join(str(m) for m in chain[1:])})" if len(chain) > 1 else "")
            )
        elif name == "status":
            c = gw.counters
            await reply.send(
                f"up {gw.process.uptime_s} s, {c.completed_requests} answers, "
                f"{c.errors} errors, {gw.active_turns} running, avg {c.avg_latency_ms:.0f} ms"
            )
        elif name == "sessions":
            sessions = await store.list_sessions(gw.config.agent_name, 100)
            mine = [s for s in sessions if s.session_key.startswith(self.base_key(msg))][:10]
            await reply.send(
                "\n".join(f"{s.session_key} ({s.message_count} messages)" for s in mine)
                or "No conversations yet."
            )
        elif name == "logs":
            count = max(1, min(int(argument) if argument.strip().isdigit() else 5, 20))
            calls = gw.runtime.llm_log.recent(count)
            await reply.send(
                "\n".join(
                    f"{c.model} {c.latency_ms} ms {'error: ' + c.error[:60] if c.error else 'ok'}"
                    for c in calls
                )
                or "No model calls yet."
            )
        elif name == "cron":
            words = argument.split()
            if words and self.restricted:  # the operator's jobs are not for whoever finds the bot
                await reply.send(
                    f"Changing cron jobs is off here: {self.channel}.allowed_user_ids is empty,"
                    " so anyone may talk to this bot. /cron lists them."
                )
            else:
                await reply.send(self._cron_command(words))
        else:
            await reply.send(f"Unknown command /{name}. /help lists the commands.")

    def _cron_command(self, words: list[str]) -> str:
        if self.cron is None:
            return "Cron is not running here."
        if len(words) >= 2 and words[0] in ("enable", "disable"):
            try:
                job = self.cron.set_enabled(" ".join(words[1:]), words[0] == "enable")
            except NotFoundError as exc:
                return str(exc)
            return f"{job.name} is {'enabled' if job.enabled else 'disabled'}."
        if words:
            return "Usage: /cron, /cron enable NAME, /cron disable NAME"
        self.cron.reload()
        lines = [f"{'on ' if j.enabled else 'off'} {j.name}" for j in self.cron.jobs()]
        return "\n".join(lines) or "No cron jobs."
