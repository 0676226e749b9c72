"""The Anthropic Messages API provider against a real HTTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from openclaw.chat import Message, ToolCall
from openclaw.llm.anthropic import AnthropicProvider
from openclaw.llm.types import ChatRequest, ProviderError, ToolSpec
from tests.fake_llm import FakeLlm, Step, serve

TOOLS = [ToolSpec("exec", "Run a command", {"type": "object", "properties": {"command": {"type": "string"}}})]


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        yield app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def provider(fake: FakeLlm, client: httpx.AsyncClient) -> AnthropicProvider:
    return AnthropicProvider("anthropic", fake.base_url, "sk-ant-test", client)


HISTORY = [
    Message.system("You are openclaw."),
    Message.user("list files"),
    Message.assistant(
        "Let me look.",
        tool_calls=(ToolCall("t1", "exec", '{"command": "ls"}'), ToolCall("t2", "exec", "not json")),
    ),
    Message.tool_result("t1", "a.txt"),
    Message.tool_result("t2", "b.txt"),
    Message.user("and?"),
]


async def test_request_mapping_and_answer(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(
        Step(
            body={
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "Two files."},
                    {"type": "tool_use", "id": "t3", "name": "exec", "input": {"command": "wc"}},
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 50, "output_tokens": 10, "cache_read_input_tokens": 30},
            }
        )
    )
    result = await provider(fake, client).chat(ChatRequest("claude-sonnet-4", HISTORY, TOOLS))
    assert result.message.content == "Two files." and result.message.reasoning_content == "hmm"
    assert result.message.tool_calls == (ToolCall("t3", "exec", '{"command": "wc"}'),)
    assert result.finish_reason == "tool_calls"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.cached_tokens) == (
        80,
        10,
        30,
    )
    sent = fake.requests[0]
    assert sent["system"] == "You are openclaw." and sent["max_tokens"] == 4096
    assert [t["role"] for t in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "t1",
        "name": "exec",
        "input": {"command": "ls"},
    }
    assert sent["messages"][1]["content"][2]["input"] == {"_raw": "not json"}
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "b.txt"},
        {"type": "text", "text": "and?"},
    ]
    assert sent["tools"][0]["input_schema"]["type"] == "object"
    assert (
        fake.headers[0]["x-api-key"] == "sk-ant-test" and fake.headers[0]["anthropic-version"] == "2023-06-01"
    )


def stream_events(*deltas: tuple[str, dict[str, object]]) -> list[tuple[str, object]]:
    return [
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 40}}}),
        *[(kind, {"type": kind, **data}) for kind, data in deltas],
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 25}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


async def test_streaming(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(
        Step(
            events=stream_events(
                ("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
                (
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "thinking_delta", "thinking": "plan"}},
                ),
                ("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "Checking "}}),
                ("ping", {}),
                ("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "now."}}),
                (
                    "content_block_start",
                    {
                        "index": 2,
                        "content_block": {"type": "tool_use", "id": "t9", "name": "exec", "input": {}},
                    },
                ),
                (
                    "content_block_delta",
                    {"index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"comm'}},
                ),
                (
                    "content_block_delta",
                    {"index": 2, "delta": {"type": "input_json_delta", "partial_json": 'and": "ls"}'}},
                ),
            )
        )
    )
    pieces: list[str] = []

    async def on_delta(text: str) -> None:
        pieces.append(text)

    result = await provider(fake, client).chat(ChatRequest("claude", HISTORY, TOOLS), on_delta)
    assert pieces == ["Checking ", "now."]
    assert result.message.content == "Checking now." and result.message.reasoning_content == "plan"
    assert result.message.tool_calls == (ToolCall("t9", "exec", '{"command": "ls"}'),)
    assert json.loads(result.message.tool_calls[0].arguments) == {"command": "ls"}
    assert (result.usage.total_tokens, result.finish_reason) == (65, "tool_calls")
    assert fake.requests[0]["stream"] is True


async def test_stream_errors(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(
        Step(
            events=[
                ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            ]
        ),
        Step(
            events=stream_events(
                ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "x"}})
            ),
            break_after=2,
        ),
        Step(529, {"type": "error", "error": {"type": "overloaded_error"}}),
    )
    p = provider(fake, client)

    async def sink(_: str) -> None:
        pass

    with pytest.raises(ProviderError) as overloaded:
        await p.chat(ChatRequest("claude", HISTORY), sink)
    assert overloaded.value.retryable and "Overloaded" in overloaded.value.message
    with pytest.raises(ProviderError, match=r"broke off|ended before"):
        await p.chat(ChatRequest("claude", HISTORY), sink)
    with pytest.raises(ProviderError, match="HTTP 529"):
        await p.chat(ChatRequest("claude", HISTORY))
