"""The one turn runner: every turn the gateway runs (webhook, Telegram, Discord, cron)
goes through it.

It owns
- the concurrency gate (`agent.sandbox.max_concurrent`): a chat message or a webhook
  call is refused as busy at the limit; a cron run waits for a place;
- one running answer per chat, where the latest message wins: a new message cancels the
  chat's running answer, waits for it to end (its "(stopped)" edit, what it stores), then
  runs; a third message cancels the second even while the second still waits;
- the counters of a turn (answered, latency, tool calls, errors per channel, timeouts,
  cancellations);
- the error mapping: what a failed turn is, as an HTTP status and code for the webhook and
  as a sentence for a chat user (`TurnFailure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from openclaw.agent.loop import InvalidMessageError, TurnResult, TurnTimeoutError
from openclaw.errors import NotStoredError
from openclaw.gateway.metrics import Channel, Counters
from openclaw.llm.router import AllModelsFailedError, ProviderInitError
from openclaw.sessions.keys import InvalidSessionKeyError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TurnFailure:
    """A turn that ended without an answer, as each caller says it."""

    status: int  # the webhook's HTTP status
    code: str  # the webhook's error_code
    detail: str  # the webhook's error: the exception's own words
    told: str  # what a chat user is told
    # The caller's input was refused (400): the webhook's caller made the error, so it is not
    # counted as the gateway's; a chat user is told, and it counts, as it always did.
    refused_input: bool = False


# What a turn may raise without a bug behind it.
_FORESEEN = (
    InvalidSessionKeyError,
    InvalidMessageError,
    TurnTimeoutError,
    ProviderInitError,
    AllModelsFailedError,
    NotStoredError,
)
NOT_READABLE = "That message could not be read (it is not valid text)."


def failure_of(exc: Exception) -> TurnFailure:
    """The failure a turn's exception stands for; the mapping every caller shares."""
    detail = str(exc)
    if isinstance(exc, InvalidSessionKeyError):
        return TurnFailure(400, "INVALID_SESSION_KEY", detail, NOT_READABLE, refused_input=True)
    if isinstance(exc, InvalidMessageError):
        return TurnFailure(400, "INVALID_MESSAGE", detail, NOT_READABLE, refused_input=True)
    if isinstance(exc, TurnTimeoutError):
        return TurnFailure(
            500,
            "AGENT_TURN_FAILED",
            detail,
            "That took too long and was stopped. Try again, or ask for less.",
        )
    if isinstance(exc, ProviderInitError):
        return TurnFailure(
            500,
            "PROVIDER_INIT_FAILED",
            detail,
            "No model is configured on this gateway yet (see openclaw-manual.json).",
        )
    if isinstance(exc, AllModelsFailedError):
        return TurnFailure(
            500, "AGENT_TURN_FAILED", detail, "Sorry, no model could answer just now. Try again in a moment."
        )
    if isinstance(exc, NotStoredError):
        told = "Sorry, that message could not be stored, so it was not answered."
        if exc.retryable:  # Postgres unreachable and the outbox full: try again later
            return TurnFailure(503, "OUTBOX_FULL", detail, told)
        return TurnFailure(422, "MESSAGE_NOT_STORED", detail, told)
    return TurnFailure(
        500,
        "AGENT_TURN_FAILED",
        f"{type(exc).__name__}: {exc}",
        "Sorry, something went wrong on my side. Try again in a moment.",
    )


@dataclass(frozen=True, slots=True)
class Answered:
    result: TurnResult
    elapsed_ms: int


class TurnRunner:
    """One per gateway (`Gateway.turns`); see the module's docstring. Callers: the webhook
    (`place` + `run`), the chat channels (`start_latest` + `run` + `wait`), cron
    (`queued`)."""

    def __init__(self, counters: Counters, limit: Callable[[], int]) -> None:
        self.counters = counters
        # Read at each turn: the limit is the config's, and the config may be replaced.
        self.limit = limit
        self.active = 0  # turns holding a place (running, or waiting for the answer they replace)
        # Per chat: its answers not yet ended, oldest first; the last is the latest.
        self._chats: dict[str, list[asyncio.Task[None]]] = {}
        # Set when a place is freed: cron runs waiting for one look again.
        self._freed = asyncio.Event()

    # -- the gate

    @property
    def busy(self) -> bool:
        return self.active >= self.limit()

    def reject_if_busy(self) -> bool:
        """True (and counted) when a new turn must be refused: the limit is reached."""
        if self.busy:
            self.counters.concurrency_rejected += 1
            return True
        return False

    @contextlib.contextmanager
    def place(self) -> Iterator[None]:
        """Hold a place for a turn. Taken without an await: concurrent callers each see the
        others' places at once."""
        self.active += 1
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self.active -= 1
        self._freed.set()

    @contextlib.asynccontextmanager
    async def queued_place(self) -> AsyncIterator[None]:
        """A place for a turn that waits rather than being refused (cron). The check and the
        taking of the place have no await between them."""
        while self.busy:
            self._freed.clear()
            await self._freed.wait()
        with self.place():
            yield

    # -- one turn: counters and error mapping

    async def run(
        self, channel: Channel, where: str, turn: Callable[[], Awaitable[TurnResult]]
    ) -> Answered | TurnFailure:
        """Run `turn` (the caller holds a place); count it; map its failure (`where`: the
        chat or session, for the log). A cancellation passes through: the caller decides
        what a stopped turn shows."""
        try:
            result, elapsed_ms = await self._counted(channel, turn)
        except Exception as exc:  # a failed turn, a bug too, is answered: the gateway serves on
            # (a bug's traceback is logged below; a cancellation, a BaseException, passes through)
            failure = failure_of(exc)
            if isinstance(exc, NotStoredError):  # not a bug: one line, no traceback
                log.error("%s: %s: %s", channel, where, exc)
            elif not isinstance(exc, _FORESEEN):  # a bug: the log has the details, the gateway serves on
                log.exception("%s: the turn for %s failed", channel, where)
            if not (failure.refused_input and channel is Channel.WEBHOOK):
                self.counters.error(channel)
            return failure
        return Answered(result, elapsed_ms)

    async def queued(self, where: str, turn: Callable[[], Awaitable[TurnResult]]) -> TurnResult:
        """A cron run's turn (`where`: its job): it waits for a place rather than being
        refused, and is counted as every turn is. Its failure is raised: the run's row
        records it (cron/runner.py)."""
        async with self.queued_place():
            result, _ = await self._counted(Channel.CRON, turn)
            return result

    async def _counted(
        self, channel: Channel, turn: Callable[[], Awaitable[TurnResult]]
    ) -> tuple[TurnResult, int]:
        started = time.perf_counter()
        try:
            result = await turn()
        except TurnTimeoutError:
            self.counters.agent_timeouts += 1
            raise
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        self.counters.answered(channel, tool_calls=result.tool_calls, latency_ms=elapsed_ms)
        return result, elapsed_ms

    # -- one answer per chat, the latest wins

    def running(self, chat: str) -> asyncio.Task[None] | None:
        """The chat's latest answer, while it runs."""
        tasks = self._chats.get(chat)
        return tasks[-1] if tasks and not tasks[-1].done() else None

    def start_latest(self, chat: str, answer: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Start the chat's answer to its newest message, cancelling the one running. No
        await before the task is registered: the next message must see it."""
        previous = self.running(chat)
        # Every answer of the chat still ending (a replaced one may still be editing in its
        # "(stopped)"): the new one starts after all of them, never beside one.
        ending = set(self._chats.get(chat, ()))
        self.active += 1  # this answer's place, taken now
        task = asyncio.create_task(self._latest(ending, answer))
        # Released when the task ends, not in its coroutine: a task cancelled before it
        # first ran never runs its `finally`.
        task.add_done_callback(lambda _: self._release())
        task.add_done_callback(lambda done: self._forget(chat, done))
        self._chats.setdefault(chat, []).append(task)
        if previous is not None:
            previous.cancel()  # a new message replaces the answer in progress
            self.counters.tasks_cancelled += 1
        return task

    def _forget(self, chat: str, task: asyncio.Task[None]) -> None:
        tasks = self._chats.get(chat, [])
        if task in tasks:
            tasks.remove(task)
        if not tasks:
            self._chats.pop(chat, None)

    @staticmethod
    async def _latest(ending: set[asyncio.Task[None]], answer: Callable[[], Awaitable[None]]) -> None:
        if ending:
            # Let the replaced answers end cleanly (the "(stopped)" edit; nothing half-done
            # stored). asyncio.wait neither passes a cancellation of this task on to them nor
            # swallows it: when a newer message cancels this task while it waits,
            # CancelledError leaves here and this answer never starts.
            await asyncio.wait(ending)
        await answer()

    def cancel(self, chat: str) -> bool:
        """Stop the chat's running answer (/cancel); whether there was one."""
        task = self.running(chat)
        if task is None:
            return False
        task.cancel()
        self.counters.tasks_cancelled += 1
        return True

    def cancel_all(self, prefix: str = "") -> None:
        """Stop every running answer whose chat starts with `prefix` (a channel stopping)."""
        for chat in [c for c in self._chats if c.startswith(prefix)]:
            self.cancel(chat)

    @staticmethod
    async def wait(task: asyncio.Task[None]) -> None:
        """Wait for a chat's answer. Its cancellation by a newer message ends the wait
        quietly; a cancellation of the waiting task itself is passed on (and, as it
        propagates into `task`, stops the answer too)."""
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves: never swallow that
