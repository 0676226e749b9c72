"""What the HTTP providers share: the client, timeouts, error translation, SSE reading."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from openclaw.chat import Message
from openclaw.errors import is_transient
from openclaw.llm.types import (
    RETRY_STATUSES,
    ChatRequest,
    ChatResult,
    OnDelta,
    ProviderError,
    Usage,
    estimate_tokens,
)


def http_error(status: int, body: str) -> ProviderError:
    """openclaw-rs's error text: "HTTP {status}: {body, first 500 characters}"."""
    return ProviderError(f"HTTP {status}: {body[:500]}", status=status, retryable=status in RETRY_STATUSES)


def estimated_usage(request: ChatRequest, reply: Message) -> Usage:
    """Usage when the server sends none: characters / 4."""
    prompt = sum(estimate_tokens((m.content or "") + (m.tool_calls_json() or "")) for m in request.messages)
    completion = estimate_tokens((reply.content or "") + (reply.tool_calls_json() or ""))
    return Usage(prompt, completion, prompt + completion, estimated=True)


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent event stream."""
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


class HttpProvider(ABC):
    """One `chat()` is one HTTP exchange; retries and fallbacks are the router's, so that
    each attempt is logged."""

    def __init__(
        self,
        name: str,
        url: str,
        api_key: str | None,
        client: httpx.AsyncClient,
        *,
        read_timeout_s: float = 120.0,
    ) -> None:
        self.name = name
        self.url = url
        self.api_key = api_key
        self.client = client
        self.timeout = httpx.Timeout(connect=10.0, read=read_timeout_s, write=30.0, pool=10.0)

    async def chat(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        """One completion; streams (calling `on_delta`) when `on_delta` is given."""
        try:
            if on_delta is None:
                return await self._complete(request)
            return await self._stream(request, on_delta)
        except httpx.TimeoutException as exc:
            raise ProviderError(
                f"timeout: no answer from {self.name} ({type(exc).__name__})", transient=True
            ) from None
        except httpx.HTTPError as exc:  # not retried here (the next model is): a later try may do
            raise ProviderError(
                f"{self.name} unreachable or broke off: {type(exc).__name__}: {exc}",
                transient=is_transient(exc),
            ) from None
        except (
            TypeError,
            AttributeError,
            KeyError,
            IndexError,
            ValueError,
        ) as exc:  # JSON of the wrong shape
            raise ProviderError(f"invalid response from {self.name}: {type(exc).__name__}: {exc}") from None

    @abstractmethod
    def _headers(self) -> dict[str, str]: ...

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        """POST `body` for a whole answer; an error status becomes a ProviderError."""
        response = await self.client.post(self.url, json=body, headers=self._headers(), timeout=self.timeout)
        if response.status_code >= 400:
            raise http_error(response.status_code, response.text)
        return response

    @asynccontextmanager
    async def _open_stream(self, body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST `body` for a streamed answer; an error status becomes a ProviderError."""
        async with self.client.stream(
            "POST", self.url, json=body, headers=self._headers(), timeout=self.timeout
        ) as response:
            if response.status_code >= 400:
                raise http_error(response.status_code, (await response.aread()).decode(errors="replace"))
            yield response

    @abstractmethod
    async def _complete(self, request: ChatRequest) -> ChatResult: ...

    @abstractmethod
    async def _stream(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult: ...
