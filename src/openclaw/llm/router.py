"""The fallback chain: every model of `models.fallbacks` in turn, each call logged.

- Retries on 429/502/503/504 with backoff (1 s, 2 s, 4 s), then the next model.
- A circuit breaker per provider that lives across turns: after `threshold` consecutive
  failures the provider is skipped until a cool-down has passed, then one call is let
  through (half-open); a success closes it. (openclaw-rs reset it every message, so it
  never tripped.)
- `provider_attempt` is counted per call, so concurrent turns never see each other's.
- A stream that fails after it started calls `on_restart` before the next model speaks:
  one reply never mixes two providers' output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from openclaw.chat import Message
from openclaw.errors import ConfigError, OpenclawError
from openclaw.llm.anthropic import AnthropicProvider
from openclaw.llm.config import Api, LlmConfig, ModelRef
from openclaw.llm.log import LlmLog
from openclaw.llm.openai import OpenAIProvider
from openclaw.llm.records import LlmCall
from openclaw.llm.types import (
    ChatRequest,
    ChatResult,
    OnDelta,
    Provider,
    ProviderError,
    ToolSpec,
    estimate_tokens,
)

RETRY_DELAYS_S = (1.0, 2.0, 4.0)
OnRestart = Callable[[], Awaitable[None]]


class ProviderInitError(ConfigError):
    """No model is configured (openclaw-rs: PROVIDER_INIT_FAILED)."""


class AllModelsFailedError(OpenclawError):
    """Every model of the chain failed or was skipped. `transient` when each of them may
    answer later (a 429, a 5xx, a timeout, an open circuit), not when one refused the
    request or is not configured: waiting will not mend those."""

    def __init__(self, errors: list[str], *, transient: bool = False) -> None:
        super().__init__(
            "every model failed: " + "; ".join(errors) if errors else "no model configured to try"
        )
        self.errors = errors
        self.transient = transient and bool(errors)


@dataclass(slots=True)
class _BreakerState:
    failures: int = 0
    open_until: float = 0.0


@dataclass
class CircuitBreaker:
    threshold: int = 3
    cooldown_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _BreakerState] = field(default_factory=dict)

    def allows(self, provider: str) -> bool:
        state = self._states.get(provider)
        if state is None or state.failures < self.threshold:
            return True
        if self.clock() < state.open_until:
            return False
        state.open_until = self.clock() + self.cooldown_s  # half-open: this one call, nobody else
        return True

    def success(self, provider: str) -> None:
        self._states.pop(provider, None)

    def failure(self, provider: str) -> None:
        state = self._states.setdefault(provider, _BreakerState())
        state.failures += 1
        if state.failures >= self.threshold:
            state.open_until = self.clock() + self.cooldown_s

    def is_open(self, provider: str) -> bool:
        return not self.allows(provider)


@dataclass(slots=True)
class RoutedResult:
    result: ChatResult
    model: ModelRef
    attempts: int


def build_providers(
    config: LlmConfig, client: httpx.AsyncClient, read_timeout_s: float = 120.0
) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for name, p in config.providers.items():
        cls = AnthropicProvider if p.api is Api.ANTHROPIC else OpenAIProvider
        providers[name] = cls(name, p.base_url, p.api_key, client, read_timeout_s=read_timeout_s)
    return providers


class Router:
    def __init__(
        self,
        config: LlmConfig,
        providers: dict[str, Provider],
        llm_log: LlmLog,
        *,
        breaker: CircuitBreaker | None = None,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        use_fallback: bool = True,
    ) -> None:
        self.config = config
        self.use_fallback = use_fallback  # USE_FALLBACK=false: the first model only
        self.providers = providers
        self.log = llm_log
        self.breaker = breaker or CircuitBreaker()
        self.retry_delays_s = tuple(retry_delays_s)
        self.sleep = sleep
        # agents.defaults.maxConcurrent of openclaw-manual.json: the LLM calls in flight at
        # once, across every chat, cron job and webhook of this process; more wait their turn.
        self.slots = asyncio.Semaphore(config.max_concurrent)

    def chain(self, model: ModelRef | None) -> tuple[ModelRef, ...]:
        """The models a turn tries, in order."""
        return self.config.chain(model)[: None if self.use_fallback else 1]

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        model: ModelRef | None = None,
        session_key: str | None = None,
        on_delta: OnDelta | None = None,
        on_restart: OnRestart | None = None,
    ) -> RoutedResult:
        if not self.config.providers:
            raise ProviderInitError(f"no model configured: {self.config.problem or 'no providers'}")
        errors: list[str] = []
        transient = True  # until a model fails in a way that waiting does not mend
        attempt = 0
        chain = self.chain(model)
        if not chain:
            raise AllModelsFailedError([])
        for ref in chain:
            if not self.breaker.allows(ref.provider):
                errors.append(f"{ref}: skipped, {ref.provider} failed repeatedly (circuit open)")
                continue
            provider = self.providers.get(ref.provider)
            if provider is None:
                errors.append(f"{ref}: no provider {ref.provider!r}")
                transient = False
                continue
            for retry in range(len(self.retry_delays_s) + 1):
                attempt += 1
                streamed = False

                async def forward(text: str) -> None:
                    nonlocal streamed
                    streamed = True
                    if on_delta is not None:
                        await on_delta(text)

                request = ChatRequest(ref.model, messages, tools)
                try:
                    result = await self._call(
                        provider,
                        ref,
                        request,
                        attempt,
                        session_key,
                        forward if on_delta is not None else None,
                    )
                except ProviderError as exc:
                    if streamed and on_restart is not None:
                        await on_restart()  # the next answer starts over
                    if exc.retryable and retry < len(self.retry_delays_s):
                        await self.sleep(self.retry_delays_s[retry])
                        continue
                    errors.append(f"{ref}: {exc.message}")
                    transient = transient and exc.transient
                    self.breaker.failure(ref.provider)
                    break
                self.breaker.success(ref.provider)
                return RoutedResult(result, ref, attempt)
        raise AllModelsFailedError(errors, transient=transient)

    async def _call(
        self,
        provider: Provider,
        ref: ModelRef,
        request: ChatRequest,
        attempt: int,
        session_key: str | None,
        on_delta: OnDelta | None,
    ) -> ChatResult:
        entry = LlmCall(
            model=ref.model,
            provider=ref.provider,
            provider_attempt=attempt,
            session_key=session_key,
            created_at=datetime.now(UTC),
            messages_count=len(request.messages),
            request_tokens_est=estimate_tokens(
                "".join((m.content or "") + (m.tool_calls_json() or "") for m in request.messages)
            ),
            streaming=on_delta is not None,
        )
        started = time.perf_counter()
        streamed: list[str] = []  # what the user saw, should the call be cancelled midway

        async def collect(text: str) -> None:
            streamed.append(text)
            if on_delta is not None:
                await on_delta(text)

        try:
            async with self.slots:
                started = time.perf_counter()  # the call's latency, not its wait for a slot
                result = await provider.chat(request, collect if on_delta is not None else None)
        except asyncio.CancelledError:  # Ctrl-C, a newer message, shutdown: the attempt still counts
            entry.error = "cancelled"
            entry.finish_reason = "cancelled"
            entry.response_content = "".join(streamed) or None
            raise
        except ProviderError as exc:
            entry.error = exc.message
            entry.http_status = exc.status
            raise
        except Exception as exc:  # a bug or an unexpected library error: recorded, then let out whole
            entry.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            entry.latency_ms = round((time.perf_counter() - started) * 1000)
            if entry.error is not None:
                self.log.record(entry)
        reply = result.message
        entry.response_content = reply.content
        entry.response_reasoning = reply.reasoning_content
        entry.response_tool_calls = len(reply.tool_calls or ())
        entry.tool_call_names = [c.name for c in reply.tool_calls] if reply.tool_calls else None
        entry.usage_prompt_tokens = result.usage.prompt_tokens
        entry.usage_completion_tokens = result.usage.completion_tokens
        entry.usage_total_tokens = result.usage.total_tokens
        entry.usage_cached_tokens = result.usage.cached_tokens
        entry.usage_reasoning_tokens = result.usage.reasoning_tokens
        entry.finish_reason = result.finish_reason
        entry.http_status = result.http_status
        entry.time_to_first_token_ms = result.time_to_first_token_ms
        self.log.record(entry)
        return result
