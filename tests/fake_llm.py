"""A real HTTP server on loopback standing in for LLM providers, scripted per test.

Each request takes the next `Step` of the script: a JSON answer, a server-sent event
stream (optionally breaking off after some chunks), an error status, or a delay."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.waiting import wait_for


@dataclass
class Step:
    status: int = 200
    body: Any = None  # JSON answer
    sse: list[str] | None = None  # data payloads of a stream
    events: list[tuple[str, Any]] | None = None  # (event, data) pairs: Anthropic-style stream
    break_after: int | None = None  # close the connection after this many chunks
    stall_after: int | None = None  # after this many chunks, send nothing more until the client leaves
    delay_s: float = 0.0
    text: str | None = None  # raw body (garbage)


@dataclass
class FakeLlm:
    script: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""

    def then(self, *steps: Step) -> FakeLlm:
        self.script.extend(steps)
        return self

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append(json.loads(body or b"{}"))
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        step = self.script.pop(0) if self.script else Step(500, {"error": "script exhausted"})
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        if step.sse is not None or step.events is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": step.status,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            chunks = (
                [f"data: {c}\n\n" for c in step.sse]
                if step.sse is not None
                else [f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in step.events or []]
            )
            if step.stall_after is not None and step.stall_after >= len(chunks):
                chunks = [*chunks, ""]  # a place to stall after the last chunk
            for i, chunk in enumerate(chunks):
                if step.break_after is not None and i == step.break_after:
                    raise ConnectionAbortedError("the fake provider breaks the stream off")
                if step.stall_after is not None and i == step.stall_after:
                    await asyncio.Event().wait()  # cancelled when the client disconnects
                await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b""})
            return
        payload = step.text.encode() if step.text is not None else json.dumps(step.body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": step.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@contextmanager
def serve(app: FakeLlm) -> Iterator[FakeLlm]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), interval_s=0.01, what="the server to start")
    assert server.started, "the fake server's thread ended before it started"
    try:
        yield app
    finally:
        server.should_exit = True
        server.force_exit = True  # answers still streaming or delayed are cut, not awaited
        thread.join(timeout=5)
        sock.close()


def chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
) -> str:
    """One OpenAI streaming chunk."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    data: dict[str, Any] = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        data = {"choices": [], "usage": usage}
    return json.dumps(data)


def completion(
    content: str | None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    finish: str = "stop",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
