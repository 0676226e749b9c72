"""The channel core shared by Telegram and Discord: allowlist, rate limit, concurrency,
cancellation, commands, streamed replies. The agent, the store and the provider are real;
the transport is a recorder (the Telegram adapter gets a fake Bot API server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from openclaw.app import load_settings, open_runtime
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.gateway.app import Gateway
from openclaw.gateway.channel import ChannelCore, Incoming, SlidingWindow
from openclaw.gateway.config import ChannelConfig
from tests.fake_llm import FakeLlm, Step, chunk, serve
from tests.waiting import until


class Recorder:
    def __init__(self) -> None:
        self.messages: list[str] = []  # what the chat shows, message by message

    async def send(self, text: str) -> object:
        self.messages.append(text)
        return len(self.messages) - 1

    async def edit(self, handle: object, text: str) -> None:
        assert isinstance(handle, int)
        self.messages[handle] = text


def answer(text: str, *, delay_s: float = 0.0) -> Step:
    return Step(
        sse=[chunk(text[: len(text) // 2]), chunk(text[len(text) // 2 :]), chunk(finish="stop"), "[DONE]"],
        delay_s=delay_s,
    )


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        yield app


@pytest.fixture
async def core(fake: FakeLlm, db_url: str, isolated_environment: Path) -> AsyncIterator[ChannelCore]:
    (isolated_environment / "openclaw-manual.json").write_text(
        json.dumps(
            {
                "models": {
                    "providers": {"fake": {"baseUrl": fake.base_url, "models": ["m1"]}},
                    "fallbacks": ["fake/m1"],
                }
            }
        )
    )
    runtime = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    config = load_settings().gateway
    config = replace(config, sandbox=replace(config.sandbox, rate_limit_messages=3, max_concurrent=1))
    gateway = Gateway(config, runtime, "h")
    yield ChannelCore(gateway, "telegram", "tg", ChannelConfig("t0ken", (42, 43)))
    await runtime.close()


async def test_a_message_is_answered_in_its_session(core: ChannelCore, fake: FakeLlm) -> None:
    fake.then(answer("Hello there, friend!"))
    chat = Recorder()
    await core.handle(Incoming(42, 1001, "hi"), chat)
    assert chat.messages == ["Hello there, friend!"]
    stored = await core.gateway.runtime.store.load_messages("tg:main:42:1001")
    assert [m.content for m in stored] == ["hi", "Hello there, friend!"]
    c = core.gateway.counters
    assert (c.telegram_requests, c.agent_turns, c.completed_requests, c.telegram_errors) == (1, 1, 1, 0)


async def test_allowlist_rate_limit_and_commands(core: ChannelCore, fake: FakeLlm) -> None:
    stranger = Recorder()
    await core.handle(Incoming(99, 5, "hello"), stranger)
    assert "allowlist" in stranger.messages[0] and not fake.requests
    chat = Recorder()
    for text in ("/ping", "/whoami", "/model", "/nonsense"):
        await core.handle(Incoming(42, 1001, text), chat)
    assert chat.messages[:3] == ["pong", "user 42, chat 1001", "Model: fake/m1"]
    assert chat.messages[3].startswith("Unknown command /nonsense")
    fake.then(*(answer(f"answer {i}") for i in range(3)))
    for i in range(4):
        await core.handle(Incoming(43, 7, f"question {i}"), chat)
    assert chat.messages[-1].startswith("Slow down") and core.gateway.counters.rate_limited == 1


async def test_new_clear_and_history(core: ChannelCore, fake: FakeLlm) -> None:
    chat = Recorder()
    fake.then(answer("first answer"), answer("second answer"))
    await core.handle(Incoming(42, 1, "first"), chat)
    await core.handle(Incoming(42, 1, "/new"), chat)
    await core.handle(Incoming(42, 1, "second"), chat)
    new_key = await core.session_key(Incoming(42, 1, ""))
    assert new_key.startswith("tg:main:42:1:") and new_key != "tg:main:42:1"
    assert [m["role"] for m in fake.requests[1]["messages"]] == ["system", "user"]  # a fresh history
    await core.handle(Incoming(42, 1, "/history 5"), chat)
    assert chat.messages[-1] == "user: second\nassistant: second answer"
    await core.handle(Incoming(42, 1, "/clear"), chat)
    assert await core.gateway.runtime.store.get_session(new_key) is None
    await core.handle(Incoming(42, 1, "/sessions"), chat)
    assert chat.messages[-1].startswith("tg:main:42:1 (2 messages)")


async def test_a_new_message_cancels_the_running_answer(core: ChannelCore, fake: FakeLlm) -> None:
    chat = Recorder()
    fake.then(answer("a slow answer", delay_s=5), answer("the quick one"))
    slow = asyncio.create_task(core.handle(Incoming(42, 1, "slow please"), chat))
    await until(lambda: len(fake.requests) >= 1)
    await core.handle(Incoming(42, 1, "never mind"), chat)
    await slow
    assert chat.messages == ["the quick one"]
    assert core.gateway.counters.tasks_cancelled == 1
    stored = await core.gateway.runtime.store.load_messages("tg:main:42:1")
    assert [m.content for m in stored] == ["slow please", "never mind", "the quick one"]


async def test_busy_is_rejected_not_queued(core: ChannelCore, fake: FakeLlm) -> None:
    first, second = Recorder(), Recorder()
    fake.then(answer("done", delay_s=1))
    running = asyncio.create_task(core.handle(Incoming(42, 1, "long job"), first))
    await until(lambda: len(fake.requests) >= 1)
    await core.handle(Incoming(43, 2, "me too"), second)
    assert second.messages[0].startswith("I'm busy") and core.gateway.counters.concurrency_rejected == 1
    await running
    assert first.messages == ["done"]


async def test_failures_are_told_to_the_user(core: ChannelCore, fake: FakeLlm) -> None:
    chat = Recorder()
    fake.then(Step(400, {"error": "bad"}))
    await core.handle(Incoming(42, 1, "hi"), chat)
    assert chat.messages == ["Sorry, no model could answer just now. Try again in a moment."]
    assert core.gateway.counters.telegram_errors == 1


def test_sliding_window() -> None:
    now = [0.0]
    window = SlidingWindow(2, 10, clock=lambda: now[0])
    assert window.allow(1) and window.allow(1) and not window.allow(1) and window.allow(2)
    now[0] = 10.5
    assert window.allow(1)


async def test_telegram_against_a_fake_bot_api(
    fake: FakeLlm, db_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openclaw.gateway.telegram import TelegramChannel
    from tests.fake_telegram import FakeBotApi

    monkeypatch.setenv("OPENCLAW_SESSIONS_BACKEND", "postgres")
    (isolated_environment / "openclaw-manual.json").write_text(
        json.dumps(
            {
                "models": {
                    "providers": {"fake": {"baseUrl": fake.base_url, "models": ["m1"]}},
                    "fallbacks": ["fake/m1"],
                }
            }
        )
    )
    runtime = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    with serve(FakeBotApi()) as api:  # type: ignore[arg-type]
        core = ChannelCore(
            Gateway(load_settings().gateway, runtime, "h"),
            "telegram",
            "tg",
            ChannelConfig("123:fake", (42,), api.base_url),
        )
        channel = TelegramChannel(core)
        await channel.start()
        try:
            fake.then(answer("Hi from Telegram!"))
            api.user_says(42, 1001, "hello bot")
            api.user_says(42, 1001, "/ping")
            api.user_says(7, 2002, "let me in")  # not on the allowlist
            # The answer, the command's, and the stranger's refusal, in whatever order.
            await until(lambda: len(api.texts(1001)) == 2 and "Hi from Telegram!" in api.texts(1001))
            await until(lambda: api.texts(2002))
            assert sorted(api.texts(1001)) == ["Hi from Telegram!", "pong"]
            assert "allowlist" in api.texts(2002)[0]
        finally:
            await channel.stop()
            await runtime.close()
    assert [m.content for m in await _stored(db_url, "tg:main:42:1001")] == ["hello bot", "Hi from Telegram!"]


async def _stored(db_url: str, key: str) -> list[object]:
    from openclaw.db import Database
    from openclaw.sessions.postgres_store import PostgresSessionStore

    async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=db_url)) as db:
        return list(await PostgresSessionStore(db, "main").load_messages(key))


async def test_cron_command(core: ChannelCore, isolated_environment: Path) -> None:
    from openclaw.cron.jobs import jobs_path
    from openclaw.cron.runner import CronRunner

    path = jobs_path(isolated_environment)
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "jobs": [
                    {
                        "id": "j1",
                        "name": "brief",
                        "schedule": {"kind": "every", "everyMs": 60000},
                        "payload": {"kind": "agentTurn", "message": "hi"},
                    }
                ],
            }
        )
    )
    chat = Recorder()
    await core.handle(Incoming(42, 1, "/cron"), chat)
    assert chat.messages[-1] == "Cron is not running here."
    rt = core.gateway.runtime
    core.cron = CronRunner(path, rt.agent, rt.spool, rt.database, host="h")
    for text in ("/cron", "/cron disable brief", "/cron", "/cron enable nope", "/cron sideways"):
        await core.handle(Incoming(42, 1, text), chat)
    assert chat.messages[-5:] == [
        "on  brief",
        "brief is disabled.",
        "off brief",
        "no cron job 'nope'",
        "Usage: /cron, /cron enable NAME, /cron disable NAME",
    ]
    assert json.loads(path.read_text())["jobs"][0]["enabled"] is False

    # A channel anyone may talk to lists the jobs, but strangers do not switch them.
    open_core = ChannelCore(core.gateway, "telegram", "tg", ChannelConfig("t0ken", ()), core.cron)
    await open_core.handle(Incoming(99, 2, "/cron enable brief"), chat)
    assert chat.messages[-1].startswith("Changing cron jobs is off here")
    assert json.loads(path.read_text())["jobs"][0]["enabled"] is False
    await open_core.handle(Incoming(99, 2, "/cron"), chat)
    assert chat.messages[-1] == "off brief"


async def test_the_limit_holds_for_updates_arriving_together(core: ChannelCore, fake: FakeLlm) -> None:
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, core.gateway.active_turns)
            await asyncio.sleep(0.01)

    fake.then(*(answer("done", delay_s=0.5) for _ in range(3)))
    watcher = asyncio.create_task(watch())
    chats = [Recorder() for _ in range(3)]
    await asyncio.gather(*(core.handle(Incoming(42, 100 + i, "go"), chat) for i, chat in enumerate(chats)))
    watcher.cancel()
    assert peak == 1 and core.gateway.counters.concurrency_rejected == 2
    assert sorted(len(c.messages) for c in chats) == [1, 1, 1]


async def test_one_turn_at_a_time_per_chat(core: ChannelCore, fake: FakeLlm) -> None:
    core.gateway.config = replace(
        core.gateway.config, sandbox=replace(core.gateway.config.sandbox, max_concurrent=5)
    )
    fake.then(answer("first", delay_s=2), answer("second", delay_s=2), answer("third"))
    chat = Recorder()
    first = asyncio.create_task(core.handle(Incoming(42, 1, "one"), chat))
    await until(lambda: len(fake.requests) >= 1)
    second = asyncio.create_task(core.handle(Incoming(42, 1, "two"), chat))
    # The fake answers in the order requests arrive: "two" must be at the provider before
    # "three" comes, or "three" would be handed the answer scripted for "two".
    await until(lambda: len(fake.requests) >= 2)
    await core.handle(Incoming(42, 1, "three"), chat)
    await asyncio.gather(first, second)
    stored = await core.gateway.runtime.store.load_messages("tg:main:42:1")
    assert [m.content for m in stored][-1] == "third" and [m.content for m in stored].count("third") == 1
    assert [m.content for m in stored if m.role.value == "user"] == ["one", "two", "three"]
    assert core.gateway.active_turns == 0
