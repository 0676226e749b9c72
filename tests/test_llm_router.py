"""The fallback chain and circuit breaker, against two real loopback providers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from openclaw.chat import Message
from openclaw.llm.config import ModelRef, parse_llm_config
from openclaw.llm.log import LlmLog
from openclaw.llm.router import AllModelsFailedError, CircuitBreaker, Router, build_providers
from tests.fake_llm import FakeLlm, Step, chunk, completion, serve


@pytest.fixture
def servers() -> Iterator[tuple[FakeLlm, FakeLlm]]:
    with serve(FakeLlm()) as first, serve(FakeLlm()) as second:
        yield first, second


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_router(
    servers: tuple[FakeLlm, FakeLlm],
    client: httpx.AsyncClient,
    *,
    clock: Clock | None = None,
    sleeps: list[float] | None = None,
    use_fallback: bool = True,
) -> Router:
    first, second = servers
    config = parse_llm_config(
        {
            "models": {
                "providers": {
                    "alpha": {"baseUrl": first.base_url, "models": ["a1"]},
                    "beta": {"baseUrl": second.base_url, "models": ["b1"]},
                },
                "fallbacks": ["alpha/a1", "beta/b1"],
            }
        },
        Path("test.json"),
    )

    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return Router(
        config,
        build_providers(config, client),
        LlmLog(None),
        breaker=CircuitBreaker(threshold=3, cooldown_s=60, clock=clock or Clock()),
        sleep=sleep,
        use_fallback=use_fallback,
    )


HI = [Message.user("hi")]


async def test_429_is_retried_with_backoff_and_each_try_is_logged(
    servers: tuple[FakeLlm, FakeLlm], client: httpx.AsyncClient
) -> None:
    first, _ = servers
    first.then(
        Step(429, {"error": "slow down"}), Step(429, {"error": "slow down"}), Step(body=completion("hello"))
    )
    sleeps: list[float] = []
    router = make_router(servers, client, sleeps=sleeps)
    routed = await router.chat(HI, session_key="tg:main:1:2")
    assert routed.result.message.content == "hello" and routed.model == ModelRef("alpha", "a1")
    assert sleeps == [1.0, 2.0]
    entries = list(reversed(router.log.recent()))
    assert [(e.provider_attempt, e.http_status, e.error is not None) for e in entries] == [
        (1, 429, True),
        (2, 429, True),
        (3, 200, False),
    ]
    assert entries[0].error == 'HTTP 429: {"error": "slow down"}'
    assert all(e.session_key == "tg:main:1:2" and e.model == "a1" for e in entries)
    assert entries[2].usage_total_tokens == 15 and entries[2].response_content == "hello"


async def test_500_falls_back_to_the_next_model(
    servers: tuple[FakeLlm, FakeLlm], client: httpx.AsyncClient
) -> None:
    first, second = servers
    first.then(Step(500, {"error": "boom"}))
    second.then(Step(body=completion("from beta")))
    router = make_router(servers, client)
    routed = await router.chat(HI)
    assert routed.result.message.content == "from beta" and routed.model == ModelRef("beta", "b1")
    assert [(e.provider, e.provider_attempt) for e in reversed(router.log.recent())] == [
        ("alpha", 1),
        ("beta", 2),
    ]


async def test_without_fallback_only_the_first_model_is_tried(
    servers: tuple[FakeLlm, FakeLlm], client: httpx.AsyncClient
) -> None:
    first, second = servers
    first.then(Step(500, {"error": "boom"}))
    second.then(Step(body=completion("from beta")))
    router = make_router(servers, client, use_fallback=False)  # USE_FALLBACK=false
    assert router.chain(None) == (ModelRef("alpha", "a1"),)
    with pytest.raises(AllModelsFailedError) as failure:
        await router.chat(HI)
    assert len(failure.value.errors) == 1 and second.requests == []


async def test_breaker_opens_across_turns_and_half_opens_after_cooldown(
    servers: tuple[FakeLlm, FakeLlm], client: httpx.AsyncClient
) -> None:
    first, second = servers
    clock = Clock()
    router = make_router(servers, client, clock=clock)
    for _ in range(3):
        first.then(Step(500, {"error": "down"}))
        second.then(Step(body=completion("beta")))
        await router.chat(HI)
    assert router.breaker.is_open("alpha")
    second.then(Step(body=completion("beta again")))
    await router.chat(HI)
    assert len(first.requests) == 3  # alpha was skipped
    clock.now += 61
    first.then(Step(body=completion("alpha is back")))
    routed = await router.chat(HI)  # half-open: one try goes through, and closes the breaker
    assert routed.result.message.content == "alpha is back" and not router.breaker.is_open("alpha")


async def test_a_broken_stream_never_mixes_two_answers(
    servers: tuple[FakeLlm, FakeLlm], client: httpx.AsyncClient
) -> None:
    first, second = servers
    first.then(
        Step(
            sse=[chunk("Half an ans"), chunk("wer from alpha"), chunk(finish="stop"), "[DONE]"], break_after=1
        )
    )
    second.then(Step(sse=[chunk("Beta's "), chunk("answer."), chunk(finish="stop"), "[DONE]"]))
    shown: list[str] = []

    async def on_delta(text: str) -> None:
        shown.append(text)

    async def on_restart() -> None:
        shown.clear()

    routed = await make_router(servers, client).chat(HI, on_delta=on_delta, on_restart=on_restart)
    assert "".join(shown) == routed.result.message.content == "Beta's answer."


async def test_concurrent_turns_count_their_own_attempts(
    servers: tuple[FakeLlm, FakeLlm], client: httpx.AsyncClient
) -> None:
    first, second = servers
    first.then(Step(500, {"e": 1}), Step(body=completion("ok", usage=None), delay_s=0.2))
    second.then(Step(body=completion("beta")))
    router = make_router(servers, client)
    slow, failing = await asyncio.gather(router.chat(HI, session_key="s1"), router.chat(HI, session_key="s2"))
    attempts = {(e.session_key, e.provider, e.provider_attempt) for e in router.log.recent()}
    assert len(attempts) == 3 and all(a[2] in (1, 2) for a in attempts)
    assert {slow.attempts, failing.attempts} == {1, 2}


async def test_everything_fails(servers: tuple[FakeLlm, FakeLlm], client: httpx.AsyncClient) -> None:
    first, second = servers
    first.then(Step(400, {"error": "bad request"}))
    second.then(Step(text="garbage"))
    with pytest.raises(AllModelsFailedError) as failure:
        await make_router(servers, client).chat(HI)
    assert failure.value.errors[0].startswith("alpha/a1: HTTP 400")
    assert failure.value.errors[1].startswith("beta/b1: invalid response")
