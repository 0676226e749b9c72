"""The agent's turn: history, the model, tools, and every message stored in order.

A turn stores what openclaw-rs stored, in its order: the user's text first, then every
message of the turn (assistant with tool calls, tool results, the final answer), then
the tokens. A turn that fails (timeout, cancellation, every model down) keeps the user's
text and stores nothing half-done, so the history never holds a tool call without its
result.

A turn checks what it is given before it writes anything, whoever calls it (the webhook,
a channel, the CLI, cron): a session key Postgres could not index, or text that is not
valid Unicode (a lone surrogate, which UTF-8 cannot encode), is refused with a usage error,
and no session row is left behind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from openclaw.agent.tools import ToolRegistry
from openclaw.chat import Message, Role
from openclaw.errors import TransientError, UsageError
from openclaw.llm.config import ModelRef
from openclaw.llm.router import OnRestart, Router
from openclaw.llm.types import OnDelta
from openclaw.sessions.keys import agent_name_problem, check_session_key
from openclaw.sessions.store import SessionStore

DEFAULT_MAX_ROUNDS = 10


def default_system_prompt(agent: str) -> str:
    return (
        f"You are {agent}, an assistant reached through the openclaw gateway. Answer briefly and "
        "precisely. Use the tools when they help; say so when something failed."
    )


class TurnTimeoutError(TransientError):
    """The turn ran past its time limit and was stopped: later, or shorter, it may succeed."""


class InvalidMessageError(UsageError):
    """A turn's text that cannot be stored (a usage error of whoever sent it)."""


def message_problem(text: str) -> str | None:
    """Why `text` cannot be a message, or None. NUL characters are fine: the stores keep
    them as U+FFFD. A lone surrogate is not: no encoding can store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = f"U+{ord(text[exc.start]):04X} at position {exc.start + 1}"
        return f"the message is not valid Unicode text: a lone surrogate, {bad}"
    return None


def check_turn_input(session_key: str, text: str) -> None:
    """InvalidSessionKeyError or InvalidMessageError for what a turn cannot store."""
    check_session_key(session_key)
    problem = message_problem(text)
    if problem is not None:
        raise InvalidMessageError(problem)


@dataclass(slots=True)
class TurnResult:
    reply: str
    model: ModelRef
    rounds: int
    tool_calls: int
    tokens: int
    messages: list[Message] = field(default_factory=list)  # the turn's messages, as stored


class Agent:
    def __init__(
        self,
        router: Router,
        store: SessionStore,
        tools: ToolRegistry,
        *,
        name: str = "main",
        system_prompt: str | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        turn_timeout_s: float = 300.0,
    ) -> None:
        problem = agent_name_problem(name)
        if problem is not None:
            raise UsageError(problem)
        self.router = router
        self.store = store
        self.tools = tools
        self.name = name
        self.system_prompt = system_prompt or default_system_prompt(name)
        self.max_rounds = max_rounds
        self.turn_timeout_s = turn_timeout_s

    async def turn(
        self,
        session_key: str,
        text: str,
        *,
        model: ModelRef | None = None,
        on_delta: OnDelta | None = None,
        on_restart: OnRestart | None = None,
    ) -> TurnResult:
        check_turn_input(session_key, text)  # before the first write
        try:
            async with asyncio.timeout(self.turn_timeout_s):
                return await self._turn(session_key, text, model, on_delta, on_restart)
        except TimeoutError:
            raise TurnTimeoutError(
                f"the turn took longer than {self.turn_timeout_s:g} s and was stopped"
            ) from None

    async def _turn(
        self,
        key: str,
        text: str,
        model: ModelRef | None,
        on_delta: OnDelta | None,
        on_restart: OnRestart | None,
    ) -> TurnResult:
        chosen = model or self.router.config.default_model
        await self.store.create_session(key, self.name, str(chosen or ""))
        history = await self.store.load_llm_messages(key)
        user = Message.user(text)
        await self.store.append_message(key, user)
        conversation = [Message.system(self.system_prompt), *history, user]
        produced: list[Message] = []
        tokens = tool_calls = 0
        used = chosen
        rounds = 0
        while rounds < self.max_rounds:
            rounds += 1
            routed = await self.router.chat(
                conversation,
                self.tools.specs(),
                model=model,
                session_key=key,
                on_delta=on_delta,
                on_restart=on_restart,
            )
            used = routed.model
            tokens += routed.result.usage.total_tokens
            reply = Message(
                Role.ASSISTANT,
                content=routed.result.message.content,
                reasoning_content=routed.result.message.reasoning_content,
                tool_calls=routed.result.message.tool_calls,
            )
            conversation.append(reply)
            produced.append(reply)
            if not reply.tool_calls:
                break
            for call in reply.tool_calls:
                tool_calls += 1
                result = Message.tool_result(call.id, await self.tools.call(call))
                conversation.append(result)
                produced.append(result)
        if produced[-1].role is not Role.ASSISTANT or produced[-1].tool_calls:
            produced.append(Message.assistant(f"(stopped after {self.max_rounds} rounds of tool calls)"))
        await self.store.append_messages(key, produced)
        await self.store.add_tokens(key, tokens)
        assert used is not None
        return TurnResult(produced[-1].content or "", used, rounds, tool_calls, tokens, [user, *produced])
