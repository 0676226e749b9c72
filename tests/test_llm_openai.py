"""The OpenAI-compatible provider against a real HTTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from openclaw.chat import Message, Role, ToolCall
from openclaw.llm.openai import OpenAIProvider
from openclaw.llm.types import ChatRequest, OnDelta, ProviderError, ToolSpec
from tests.fake_llm import FakeLlm, Step, chunk, completion, serve

TOOLS = [ToolSpec("exec", "Run a command", {"type": "object", "properties": {"command": {"type": "string"}}})]


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        yield app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def provider(fake: FakeLlm, client: httpx.AsyncClient, **kwargs: float) -> OpenAIProvider:
    return OpenAIProvider("fake", fake.base_url + "/v1", "sk-test", client, **kwargs)


def request(*messages: Message, tools: list[ToolSpec] | None = None) -> ChatRequest:
    return ChatRequest("kimi-k2", messages or (Message.user("hi"),), tools or ())


async def test_non_streaming_with_tools_and_usage(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "exec", "arguments": '{"command":"ls"}'}}
    fake.then(
        Step(
            body=completion(
                None,
                tool_calls=[call],
                finish="tool_calls",
                usage={
                    "prompt_tokens": 100,
                    "completion_tokens": 20,
                    "total_tokens": 120,
                    "prompt_tokens_details": {"cached_tokens": 64},
                    "completion_tokens_details": {"reasoning_tokens": 7},
                },
            )
        )
    )
    history = [
        Message.system("be brief"),
        Message.user("list"),
        Message.assistant(None, tool_calls=(ToolCall("c0", "exec", "{}"),), reasoning="prior thought"),
        Message.tool_result("c0", "ok"),
    ]
    result = await provider(fake, client).chat(request(*history, tools=TOOLS))
    assert result.message.tool_calls == (ToolCall("call_1", "exec", '{"command":"ls"}'),)
    assert (result.finish_reason, result.http_status) == ("tool_calls", 200)
    assert (result.usage.total_tokens, result.usage.cached_tokens, result.usage.reasoning_tokens) == (
        120,
        64,
        7,
    )
    sent = fake.requests[0]
    assert (
        sent["max_tokens"] == 4096 and sent["tools"][0]["function"]["name"] == "exec" and "stream" not in sent
    )
    assert sent["messages"][2] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "prior thought",
        "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "exec", "arguments": "{}"}}],
    }
    assert sent["messages"][3] == {"role": "tool", "content": "ok", "tool_call_id": "c0"}
    assert fake.headers[0]["authorization"] == "Bearer sk-test"


async def test_no_tools_field_without_tools(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(Step(body=completion("hello")))
    result = await provider(fake, client).chat(request())
    assert result.message.content == "hello" and "tools" not in fake.requests[0]


async def test_streaming_accumulates_content_reasoning_and_split_tool_calls(
    fake: FakeLlm, client: httpx.AsyncClient
) -> None:
    fake.then(
        Step(
            sse=[
                chunk(reasoning="Let me "),
                chunk(reasoning="think."),
                chunk("Here "),
                chunk("you go: "),
                chunk(
                    tool_calls=[
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "ex", "arguments": ""},
                        }
                    ]
                ),
                chunk(tool_calls=[{"index": 0, "function": {"name": "ec", "arguments": '{"comm'}}]),
                chunk(
                    tool_calls=[
                        {"index": 1, "id": "call_b", "function": {"name": "read_file", "arguments": "{}"}}
                    ]
                ),
                chunk(tool_calls=[{"index": 0, "function": {"arguments": 'and": "ls"}'}}]),
                chunk(finish="tool_calls"),
                chunk(usage={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}),
                "[DONE]",
            ]
        )
    )
    pieces: list[str] = []

    async def on_delta(text: str) -> None:
        pieces.append(text)

    result = await provider(fake, client).chat(request(tools=TOOLS), on_delta)
    assert pieces == ["Here ", "you go: "]
    assert result.message.content == "Here you go: " and result.message.reasoning_content == "Let me think."
    assert result.message.tool_calls == (
        ToolCall("call_a", "exec", '{"command": "ls"}'),
        ToolCall("call_b", "read_file", "{}"),
    )
    assert result.usage.total_tokens == 42 and not result.usage.estimated
    assert result.time_to_first_token_ms is not None and result.finish_reason == "tool_calls"
    assert fake.requests[0]["stream"] is True and fake.requests[0]["stream_options"] == {
        "include_usage": True
    }


async def test_stream_without_usage_is_estimated(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(Step(sse=[chunk("x" * 400), chunk(finish="stop"), "[DONE]"]))

    async def ignore(_: str) -> None:
        pass

    result = await provider(fake, client).chat(request(Message.user("y" * 80)), ignore)
    assert (
        result.usage.estimated and result.usage.completion_tokens == 100 and result.usage.prompt_tokens == 20
    )


@pytest.mark.parametrize(
    ("step", "message", "retryable"),
    [
        (
            Step(429, {"error": {"message": "rate limited"}}),
            'HTTP 429: {"error": {"message": "rate limited"}}',
            True,
        ),
        (Step(503, {"error": "overloaded"}), "HTTP 503", True),
        (Step(400, {"error": "bad model"}), "HTTP 400", False),
        (Step(text="<html>oops</html>"), "invalid response from fake", False),
        (Step(body={"no": "choices"}), "invalid response from fake", False),
    ],
)
async def test_errors_non_streaming(
    fake: FakeLlm, client: httpx.AsyncClient, step: Step, message: str, retryable: bool
) -> None:
    fake.then(step)
    with pytest.raises(ProviderError) as failure:
        await provider(fake, client).chat(request())
    assert failure.value.message.startswith(message) and failure.value.retryable is retryable


async def test_long_error_bodies_are_cut_at_500(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(Step(500, {"error": "e" * 2000}))
    with pytest.raises(ProviderError) as failure:
        await provider(fake, client).chat(request())
    assert len(failure.value.message) == len("HTTP 500: ") + 500


async def test_stream_that_breaks_midway(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(Step(sse=[chunk("partial "), chunk("answer"), chunk(finish="stop"), "[DONE]"], break_after=2))
    with pytest.raises(ProviderError, match=r"unreachable or broke off|ended before"):
        await provider(fake, client).chat(request(), _sink())


async def test_garbage_in_a_stream(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(Step(sse=["{not json"]))
    with pytest.raises(ProviderError, match="invalid stream chunk"):
        await provider(fake, client).chat(request(), _sink())


async def test_timeout(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(Step(body=completion("late"), delay_s=2))
    with pytest.raises(ProviderError, match="timeout"):
        await provider(fake, client, read_timeout_s=0.3).chat(request())


def _sink() -> OnDelta:
    async def on_delta(_: str) -> None:
        pass

    return on_delta


def test_request_is_json_serialisable() -> None:
    from openclaw.llm.openai import request_body

    body = request_body(request(Message(Role.USER, content="ünïcode 🚀")), stream=True)
    assert json.loads(json.dumps(body))["messages"][0]["content"] == "ünïcode 🚀"


async def test_json_of_the_wrong_shape_is_a_provider_error(fake: FakeLlm, client: httpx.AsyncClient) -> None:
    fake.then(Step(body={"choices": [{"message": "not an object"}]}))
    with pytest.raises(ProviderError, match="invalid response from fake"):
        await provider(fake, client).chat(request())
