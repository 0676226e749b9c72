"""The turn runner and the gateway's lifecycle: the latest message of a chat wins, every
component stops (and the outbox is flushed) even when one fails to, and cron runs due jobs
side by side. Real Postgres, a real fake Bot API and a real fake provider on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from openclaw.agent.runtime import AgentRuntime
from openclaw.app import load_settings, open_runtime, serve_gateway
from openclaw.cron.jobs import jobs_path
from openclaw.cron.runner import CronRunner
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.gateway.app import Gateway
from openclaw.gateway.channel import ChannelCore
from openclaw.gateway.config import ChannelConfig
from openclaw.gateway.metrics import Counters
from openclaw.gateway.turns import TurnRunner
from tests.fake_llm import FakeLlm, Step, chunk, completion, serve
from tests.fake_telegram import FakeBotApi
from tests.test_gateway import configured, fake  # noqa: F401  (fixtures)
from tests.waiting import DEADLINE_S, until

STOPPED = " …(stopped)"


class HeldBotApi(FakeBotApi):
    """The fake Bot API, holding the "(stopped)" edit of a cancelled answer until the test
    lets it go: the cancelled answer is then still ending while the next messages come."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    async def answer(self, method: str, params: dict[str, Any]) -> Any:
        if method == "editMessageText" and str(params.get("text", "")).endswith(STOPPED.strip()):
            await asyncio.to_thread(self.release.wait, DEADLINE_S)
        return await super().answer(method, params)


def _manual(home: Path, llm: FakeLlm) -> None:
    (home / "openclaw-manual.json").write_text(
        json.dumps(
            {
                "models": {
                    "providers": {"fake": {"baseUrl": llm.base_url, "models": ["m1"]}},
                    "fallbacks": ["fake/m1"],
                }
            }
        )
    )


@pytest.fixture
async def runtime(
    fake: FakeLlm,  # noqa: F811  (the fixture imported above)
    db_url: str,
    isolated_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[AgentRuntime]:
    monkeypatch.setenv("OPENCLAW_SESSIONS_BACKEND", "postgres")
    _manual(isolated_environment, fake)
    rt = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    yield rt
    await rt.close()


async def test_three_messages_in_a_row_only_the_last_is_answered_and_stored(
    runtime: AgentRuntime,
    fake: FakeLlm,  # noqa: F811
) -> None:
    from openclaw.gateway.telegram import TelegramChannel

    fake.then(
        # The first answer shows its first words, then stalls until it is cancelled.
        Step(sse=[chunk("Thinking"), chunk(" hard"), chunk(finish="stop"), "[DONE]"], stall_after=1),
        Step(sse=[chunk("An answer"), chunk(finish="stop"), "[DONE]"]),
        Step(sse=[chunk("Another answer"), chunk(finish="stop"), "[DONE]"]),
    )
    with serve(HeldBotApi()) as api:  # type: ignore[arg-type]
        assert isinstance(api, HeldBotApi)
        gateway = Gateway(load_settings().gateway, runtime, "h")
        channel = TelegramChannel(
            ChannelCore(gateway, "telegram", "tg", ChannelConfig("123:fake", (42,), api.base_url))
        )
        await channel.start()
        try:
            api.user_says(42, 1001, "first")
            await until(lambda: api.texts(1001) == ["Thinking"])
            # Two more, at once: the second replaces the first, the third the second while
            # the second still waits for the first to end (its "(stopped)" edit is held).
            api.user_says(42, 1001, "second")
            api.user_says(42, 1001, "third")
            await until(lambda: gateway.counters.tasks_cancelled == 2)
            api.release.set()
            await until(lambda: gateway.active_turns == 0 and len(api.texts(1001)) >= 2)
            texts = api.texts(1001)
            stored = [m.content for m in await runtime.store.load_messages("tg:main:42:1001")]
        finally:
            api.release.set()
            await channel.stop()
    assert texts == ["Thinking" + STOPPED, "An answer"]
    assert len(fake.requests) == 2 and fake.requests[1]["messages"][-1]["content"] == "third"
    assert stored == ["first", "third", "An answer"]
    c = gateway.counters
    assert (c.telegram_requests, c.completed_requests, c.telegram_errors) == (3, 1, 0)


@pytest.fixture
def bot_api(configured: Path) -> Iterator[FakeBotApi]:  # noqa: F811
    """A fake Bot API, and the gateway config's telegram section pointing at it."""
    with serve(FakeBotApi()) as api:  # type: ignore[arg-type]
        assert isinstance(api, FakeBotApi)
        config = json.loads(configured.read_text())
        config["telegram"] = {"bot_token": "123:fake", "allowed_user_ids": [42], "api_base": api.base_url}
        configured.write_text(json.dumps(config))
        yield api


async def test_every_component_stops_and_the_outbox_is_flushed_when_one_stop_fails(
    bot_api: FakeBotApi,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from openclaw.gateway import server
    from openclaw.gateway.telegram import TelegramChannel

    original_stop = TelegramChannel.stop

    async def failing_stop(self: TelegramChannel) -> None:
        await original_stop(self)
        raise RuntimeError("telegram would not stop")

    monkeypatch.setattr(TelegramChannel, "stop", failing_stop)
    sock = server.listen("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    stopping = datetime.now(UTC)
    running = asyncio.create_task(
        serve_gateway(DatabaseTarget(TargetSource.OPTION, url=db_url), load_settings(), sock)
    )
    async with httpx.AsyncClient() as client:

        async def serving() -> bool:
            if running.done():
                return True  # the gateway ended: the await below says why
            with contextlib.suppress(httpx.HTTPError):
                return (await client.get(f"{base}/ping")).status_code == 200
            return False

        await until(serving)
    await until(lambda: "getUpdates" in bot_api.calls or running.done())
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn takes it while it serves, as in the service
    with pytest.raises(Exception, match="telegram would not stop"):
        await running
    with psycopg.connect(db_url) as conn:
        deployment = conn.execute("SELECT status FROM deployments WHERE pid = %s", (os.getpid(),)).fetchall()
        snapshots = conn.execute(
            "SELECT count(*) FROM metrics_snapshots WHERE snapshot_at >= %s", (stopping,)
        ).fetchone()
    # The components after the failing one stopped too: the deployment row was marked, the
    # last metrics snapshot was taken, and the outbox was flushed to Postgres.
    assert deployment == [("stopped",)]
    assert snapshots is not None and snapshots[0] >= 1
    assert "telegram would not stop" in caplog.text  # logged, not swallowed


@dataclass
class BarrierLlm(FakeLlm):
    """A fake provider that holds each request until a second one is in flight (or a
    deadline passes): whether two turns ran side by side is in `overlapped`."""

    overlapped: list[bool] = field(default_factory=list)
    _arrived: int = 0
    _both: asyncio.Event | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self._arrived += 1
            if self._both is None:
                self._both = asyncio.Event()
            if self._arrived >= 2:
                self._both.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._both.wait(), DEADLINE_S / 2)
            self.overlapped.append(self._both.is_set())
        await super().__call__(scope, receive, send)


async def test_two_due_cron_jobs_run_side_by_side(
    db_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENCLAW_SESSIONS_BACKEND", "postgres")
    every = {"kind": "every", "everyMs": 60_000}
    jobs = {
        "version": 1,
        "jobs": [
            {
                "id": f"j{i}",
                "name": f"job {i}",
                "schedule": every,
                "payload": {"kind": "agentTurn", "message": "go"},
            }
            for i in (1, 2)
        ],
    }
    path = jobs_path(isolated_environment)
    path.parent.mkdir()
    path.write_text(json.dumps(jobs))
    with serve(BarrierLlm()) as llm:
        assert isinstance(llm, BarrierLlm)
        _manual(isolated_environment, llm)
        llm.then(Step(body=completion("one")), Step(body=completion("two")))
        rt = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
        try:
            now = [datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)]
            turns = TurnRunner(Counters(), lambda: 2)  # the gateway's runner: its limit, its counters
            cron = CronRunner(
                path, rt.agent, rt.spool, rt.database, host="h", clock=lambda: now[0], run_turn=turns.queued
            )
            assert await cron.tick() == []  # first sight: both are due at 12:01
            now[0] += timedelta(minutes=1)
            ran = await cron.tick()
        finally:
            await rt.close()
    assert sorted((r.job_name, r.status) for r in ran) == [("job 1", "success"), ("job 2", "success")]
    assert llm.overlapped == [True, True]  # the second turn began before the first was answered
    # cron's turns go through the gateway's turn runner: counted as turns, not as requests
    assert (turns.counters.agent_turns, turns.counters.completed_requests, turns.active) == (2, 0, 0)


async def test_an_answer_replaced_before_it_ran_gives_its_place_back() -> None:
    runner = TurnRunner(Counters(), lambda: 5)
    started: list[str] = []

    async def answer(name: str) -> None:
        started.append(name)

    # Three messages before the loop runs any of them: the first two are cancelled before
    # their first step, so their coroutines never run a `finally`.
    tasks = [runner.start_latest("tg:1:1", lambda n=name: answer(n)) for name in ("a", "b", "c")]
    for task in tasks:
        await runner.wait(task)
    assert started == ["c"] and runner.active == 0 and runner.running("tg:1:1") is None
    assert runner.counters.tasks_cancelled == 2


async def test_a_cancelled_waiter_is_not_swallowed() -> None:

    runner = TurnRunner(Counters(), lambda: 5)
    entered, never = asyncio.Event(), asyncio.Event()

    async def answer() -> None:
        entered.set()
        await never.wait()

    task = runner.start_latest("tg:1:1", answer)
    handler = asyncio.create_task(runner.wait(task))
    await entered.wait()
    handler.cancel()  # the transport stops its handler: the handler ends cancelled, and so does the answer
    with pytest.raises(asyncio.CancelledError):
        await handler
    await asyncio.wait({task})
    assert task.cancelled() and runner.active == 0
