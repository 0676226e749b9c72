"""The Anthropic Messages API, mapped to and from openclaw's message format.

The system prompt goes top-level; assistant tool calls become `tool_use` blocks (their
JSON-string arguments parsed into `input`); tool results become `tool_result` blocks in
a user message; consecutive messages of one role are merged, as the API wants turns to
alternate. Streaming reads the event stream: text, thinking and `input_json_delta`
fragments, usage from `message_start` and `message_delta`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from openclaw.chat import Message, Role, ToolCall
from openclaw.llm.http import HttpProvider, estimated_usage, sse_data
from openclaw.llm.types import ChatRequest, ChatResult, OnDelta, ProviderError, Usage

API_VERSION = "2023-06-01"
_STOP_REASONS = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "stop_sequence": "stop",
}


def _arguments(text: str) -> Any:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {"_raw": text}  # keep what the model sent rather than fail the whole history
    return value if isinstance(value, dict) else {"value": value}


def _blocks(m: Message) -> list[dict[str, Any]]:
    if m.role is Role.TOOL:
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content or ""}]
    blocks: list[dict[str, Any]] = []
    if m.content and m.content.strip():
        blocks.append({"type": "text", "text": m.content})
    for call in m.tool_calls or ():
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)}
        )
    return blocks


def request_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    system = "\n\n".join(m.content or "" for m in request.messages if m.role is Role.SYSTEM)
    turns: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role is Role.SYSTEM:
            continue
        role = "assistant" if m.role is Role.ASSISTANT else "user"
        blocks = _blocks(m)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    body: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens, "messages": turns}
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    if stream:
        body["stream"] = True
    return body


def _usage(data: dict[str, Any]) -> Usage:
    prompt = (
        int(data.get("input_tokens") or 0)
        + int(data.get("cache_read_input_tokens") or 0)
        + int(data.get("cache_creation_input_tokens") or 0)
    )
    completion = int(data.get("output_tokens") or 0)
    return Usage(prompt, completion, prompt + completion, int(data.get("cache_read_input_tokens") or 0))


class AnthropicProvider(HttpProvider):
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        client: httpx.AsyncClient,
        *,
        read_timeout_s: float = 120.0,
    ) -> None:
        base = base_url.rstrip("/")
        url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        super().__init__(name, url, api_key, client, read_timeout_s=read_timeout_s)

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    async def _complete(self, request: ChatRequest) -> ChatResult:
        response = await self._post(request_body(request, stream=False))
        try:
            data = response.json()
            blocks = data["content"]
        except (ValueError, KeyError, TypeError):
            raise ProviderError(
                f"invalid response from {self.name}: {response.text[:200]!r}", status=response.status_code
            ) from None
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        thinking = "".join(b.get("thinking", "") for b in blocks if b.get("type") == "thinking")
        calls = tuple(
            ToolCall(b.get("id", ""), b.get("name", ""), json.dumps(b.get("input") or {}))
            for b in blocks
            if b.get("type") == "tool_use"
        )
        reply = Message(
            Role.ASSISTANT, content=text or None, reasoning_content=thinking or None, tool_calls=calls or None
        )
        return ChatResult(
            reply,
            _usage(data.get("usage") or {}),
            _STOP_REASONS.get(data.get("stop_reason") or "", data.get("stop_reason")),
            response.status_code,
        )

    async def _stream(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        started = time.perf_counter()
        first_token_ms: int | None = None
        blocks: dict[int, dict[str, Any]] = {}
        usage_data: dict[str, Any] = {}
        stop_reason: str | None = None
        finished = False
        async with self._open_stream(request_body(request, stream=True)) as response:
            async for payload in sse_data(response):
                try:
                    event = json.loads(payload)
                except json.JSONDecodeError:
                    raise ProviderError(
                        f"invalid stream event from {self.name}: {payload[:200]!r}",
                        status=response.status_code,
                    ) from None
                kind = event.get("type")
                if kind == "message_start":
                    usage_data.update((event.get("message") or {}).get("usage") or {})
                elif kind == "content_block_start":
                    block = dict(event.get("content_block") or {})
                    block["partial_json"] = ""
                    blocks[int(event.get("index", len(blocks)))] = block
                elif kind == "content_block_delta":
                    block = blocks.setdefault(
                        int(event.get("index", 0)), {"type": "text", "partial_json": ""}
                    )
                    delta = event.get("delta") or {}
                    if first_token_ms is None:
                        first_token_ms = round((time.perf_counter() - started) * 1000)
                    if delta.get("type") == "text_delta":
                        block["text"] = block.get("text", "") + delta.get("text", "")
                        await on_delta(delta.get("text", ""))
                    elif delta.get("type") == "thinking_delta":
                        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
                    elif delta.get("type") == "input_json_delta":
                        block["partial_json"] += delta.get("partial_json", "")
                elif kind == "message_delta":
                    stop_reason = (event.get("delta") or {}).get("stop_reason") or stop_reason
                    usage_data.update(event.get("usage") or {})
                elif kind == "message_stop":
                    finished = True
                    break
                elif kind == "error":
                    error = event.get("error") or {}
                    overloaded = error.get("type") in ("overloaded_error", "rate_limit_error")
                    raise ProviderError(
                        f"{self.name} stream error: {error.get('message', payload[:200])}",
                        status=response.status_code,
                        retryable=overloaded,
                    )
            if not finished:
                raise ProviderError(
                    f"stream from {self.name} ended before the answer did",
                    status=response.status_code,
                    transient=True,  # a connection cut off: the next model is asked, and a later try may do
                )
        ordered = [blocks[i] for i in sorted(blocks)]
        text = "".join(b.get("text", "") for b in ordered if b.get("type") == "text")
        thinking = "".join(b.get("thinking", "") for b in ordered if b.get("type") == "thinking")
        calls = tuple(
            ToolCall(
                b.get("id", ""), b.get("name", ""), b["partial_json"] or json.dumps(b.get("input") or {})
            )
            for b in ordered
            if b.get("type") == "tool_use"
        )
        reply = Message(
            Role.ASSISTANT, content=text or None, reasoning_content=thinking or None, tool_calls=calls or None
        )
        usage = _usage(usage_data) if usage_data else estimated_usage(request, reply)
        return ChatResult(
            reply,
            usage,
            _STOP_REASONS.get(stop_reason or "", stop_reason),
            response.status_code,
            first_token_ms,
        )
