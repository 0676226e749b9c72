"""OpenAI-compatible chat completions: OpenAI, OpenRouter, Ollama's /v1, vLLM, Moonshot...

One `chat()` is one HTTP exchange (retries and fallbacks are the caller's, so that each
attempt is logged). Streaming accumulates `delta.content`, `delta.reasoning_content`
(Moonshot/kimi want it sent back) and `delta.tool_calls[index]` fragments; usage comes
from `stream_options.include_usage`, or is estimated when the server sends none.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from openclaw.chat import Message, Role, ToolCall
from openclaw.llm.http import HttpProvider, estimated_usage, sse_data
from openclaw.llm.types import ChatRequest, ChatResult, OnDelta, ProviderError, Usage


def message_to_openai(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role.value, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [c.to_json() for c in m.tool_calls]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.reasoning_content and m.role is Role.ASSISTANT:
        out["reasoning_content"] = m.reasoning_content
    return out


def request_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_to_openai(m) for m in request.messages],
        "max_tokens": request.max_tokens,
    }
    if request.tools:  # only when there are any: some servers refuse an empty list
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in request.tools
        ]
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _usage(data: dict[str, Any] | None) -> Usage | None:
    if not data:
        return None
    prompt_details = data.get("prompt_tokens_details") or {}
    completion_details = data.get("completion_tokens_details") or {}
    prompt = int(data.get("prompt_tokens") or 0)
    completion = int(data.get("completion_tokens") or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(data.get("total_tokens") or prompt + completion),
        cached_tokens=int(prompt_details.get("cached_tokens") or data.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


class OpenAIProvider(HttpProvider):
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        client: httpx.AsyncClient,
        *,
        read_timeout_s: float = 120.0,
    ) -> None:
        super().__init__(
            name, f"{base_url.rstrip('/')}/chat/completions", api_key, client, read_timeout_s=read_timeout_s
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _complete(self, request: ChatRequest) -> ChatResult:
        response = await self._post(request_body(request, stream=False))
        try:
            data = response.json()
            choice = data["choices"][0]
            raw = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderError(
                f"invalid response from {self.name}: {response.text[:200]!r}", status=response.status_code
            ) from None
        calls = (
            tuple(ToolCall.from_json(c) for c in raw.get("tool_calls") or [] if isinstance(c, dict)) or None
        )
        reply = Message(
            Role.ASSISTANT,
            content=raw.get("content"),
            reasoning_content=raw.get("reasoning_content") or raw.get("reasoning"),
            tool_calls=calls,
        )
        return ChatResult(
            reply,
            _usage(data.get("usage")) or estimated_usage(request, reply),
            choice.get("finish_reason"),
            response.status_code,
        )

    async def _stream(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        started = time.perf_counter()
        first_token_ms: int | None = None
        content: list[str] = []
        reasoning: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: Usage | None = None
        finish_reason: str | None = None
        done = False
        async with self._open_stream(request_body(request, stream=True)) as response:
            async for chunk in sse_data(response):
                if chunk == "[DONE]":
                    done = True
                    break
                try:
                    data = json.loads(chunk)
                except json.JSONDecodeError:
                    raise ProviderError(
                        f"invalid stream chunk from {self.name}: {chunk[:200]!r}", status=response.status_code
                    ) from None
                usage = _usage(data.get("usage")) or usage
                for choice in data.get("choices") or []:
                    delta = choice.get("delta") or {}
                    finish_reason = choice.get("finish_reason") or finish_reason
                    piece = delta.get("content")
                    thought = delta.get("reasoning_content") or delta.get("reasoning")
                    fragments = delta.get("tool_calls") or []
                    if (piece or thought or fragments) and first_token_ms is None:
                        first_token_ms = round((time.perf_counter() - started) * 1000)
                    if thought:
                        reasoning.append(thought)
                    if piece:
                        content.append(piece)
                        await on_delta(piece)
                    for fragment in fragments:
                        slot = calls.setdefault(
                            int(fragment.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                        )
                        function = fragment.get("function") or {}
                        slot["id"] = fragment.get("id") or slot["id"]
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
            if not done and finish_reason is None:
                raise ProviderError(
                    f"stream from {self.name} ended before the answer did",
                    status=response.status_code,
                    transient=True,  # a connection cut off: the next model is asked, and a later try may do
                )
        tool_calls = tuple(
            ToolCall(c["id"], c["name"], c["arguments"] or "{}") for _, c in sorted(calls.items())
        )
        reply = Message(
            Role.ASSISTANT,
            content="".join(content) or None,
            reasoning_content="".join(reasoning) or None,
            tool_calls=tool_calls or None,
        )
        return ChatResult(
            reply,
            usage or estimated_usage(request, reply),
            finish_reason,
            response.status_code,
            first_token_ms,
        )
