"""What a provider takes and gives back, and how it fails."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from openclaw.chat import Message
from openclaw.errors import OpenclawError

# Called with each piece of streamed answer text, as it arrives.
OnDelta = Callable[[str], Awaitable[None]]

MAX_TOKENS = 4096
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    max_tokens: int = MAX_TOKENS


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False  # the provider sent none: characters / 4


@dataclass(slots=True)
class ChatResult:
    message: Message  # the assistant's reply: text, reasoning, tool calls
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    http_status: int | None = None
    time_to_first_token_ms: int | None = None


class ProviderError(OpenclawError):
    """A call that failed: `message` is what the log shows (openclaw-rs: "HTTP {status}: {body}").

    `retryable`: the router asks the same model again (429, 502, 503, 504). `transient`:
    a later try may succeed, which is so whenever it is retryable, and also for a timeout or
    a broken connection, after which the router goes on to the next model instead."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.transient = retryable if transient is None else transient


class Provider(Protocol):
    name: str

    async def chat(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        """One completion; streams (calling `on_delta`) when `on_delta` is given."""
        ...


def estimate_tokens(text: str) -> int:
    """openclaw-rs's estimate: characters / 4, at least 1."""
    return max(1, len(text) // 4)
