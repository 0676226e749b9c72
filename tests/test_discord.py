"""The Discord channel (discord.py) against a loopback fake Discord: REST and the gateway
websocket are real, as are PostgreSQL, the agent and the (fake) model provider."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from openclaw.agent.runtime import AgentRuntime
from openclaw.app import load_settings, open_runtime
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.gateway.app import Gateway
from openclaw.gateway.channel import ChannelCore
from openclaw.gateway.config import ChannelConfig
from openclaw.gateway.discord import DiscordChannel, DiscordStartError
from openclaw.gateway.metrics import prometheus_text
from tests.fake_discord import MESSAGE_CONTENT_INTENT, FakeDiscord, serve_discord
from tests.fake_llm import FakeLlm, Step, chunk, serve
from tests.test_gateway import start_gateway
from tests.waiting import until, wait_for, wait_for_http


def streamed(*pieces: str) -> Step:
    return Step(sse=[*(chunk(p) for p in pieces), chunk(finish="stop"), "[DONE]"])


def models_config(home: Path, llm: FakeLlm) -> None:
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


def stored(db_url: str, key: str) -> list[str]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id"
            " WHERE s.session_key = %s ORDER BY m.id",
            (key,),
        ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        yield app


@pytest.fixture
def api() -> Iterator[FakeDiscord]:
    with serve_discord() as fake:
        yield fake


@pytest.fixture
async def runtime(
    llm: FakeLlm, db_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AgentRuntime]:
    monkeypatch.setenv("OPENCLAW_SESSIONS_BACKEND", "postgres")
    models_config(isolated_environment, llm)
    runtime = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    yield runtime
    await runtime.close()


def discord_core(runtime: AgentRuntime, config: ChannelConfig) -> ChannelCore:
    return ChannelCore(Gateway(load_settings().gateway, runtime, "h"), "discord", "dc", config)


@pytest.fixture
async def channel(runtime: AgentRuntime, api: FakeDiscord) -> AsyncIterator[DiscordChannel]:
    channel = DiscordChannel(discord_core(runtime, ChannelConfig(api.token, (42,), api.base_url)))
    await channel.start()
    yield channel
    await channel.stop()


async def test_a_dm_gets_a_streamed_answer_in_its_session(
    channel: DiscordChannel, api: FakeDiscord, llm: FakeLlm, db_url: str
) -> None:
    assert api.identifies[0]["intents"] & MESSAGE_CONTENT_INTENT  # else Discord sends empty texts
    llm.then(streamed("Hello from ", "Discord!"))
    api.user_says(42, 500, "hi there")
    c = channel.core.gateway.counters
    # The answer is on screen before the turn is counted: wait for both.
    await until(lambda: api.texts(500) == ["Hello from Discord!"] and c.completed_requests == 1)
    # The first piece is sent as soon as it streams in, then the message is edited to the end.
    assert api.actions_in(500) == [("send", "Hello from "), ("edit", "Hello from Discord!")]
    assert stored(db_url, "dc:main:42:500") == ["hi there", "Hello from Discord!"]
    assert (c.discord_requests, c.completed_requests, c.discord_errors, c.telegram_requests) == (1, 1, 0, 0)


async def test_guild_channel_allowlist_bots_and_commands(
    channel: DiscordChannel, api: FakeDiscord, llm: FakeLlm, db_url: str
) -> None:
    llm.then(streamed("In the guild"))
    api.user_says(42, 600, "hello server", guild_id=77)
    api.user_says(7, 700, "let me in")  # not on the allowlist
    api.user_says(8, 600, "beep", guild_id=77, bot=True)  # another bot: ignored, not counted
    api.user_says(42, 800, "/ping")
    api.user_says(42, 800, "/whoami")
    counters = channel.core.gateway.counters
    # The answer is on screen as soon as it streams in; the turn is stored once it ends.
    await until(
        lambda: len(api.texts(800)) == 2 and bool(api.texts(700)) and counters.completed_requests == 1
    )
    assert api.texts(600) == ["In the guild"]
    assert stored(db_url, "dc:main:42:600") == ["hello server", "In the guild"]
    assert len(api.texts(700)) == 1 and "allowlist" in api.texts(700)[0]
    assert sorted(api.texts(800)) == ["pong", "user 42, chat 800, @user42"]
    assert len(llm.requests) == 1  # neither the stranger, the bot nor the commands reached the model
    assert counters.discord_requests == 4


async def test_a_dropped_websocket_resumes_and_is_counted(
    channel: DiscordChannel, api: FakeDiscord, llm: FakeLlm
) -> None:
    c = channel.core.gateway.counters
    assert (c.gateway_connects, c.gateway_disconnects, c.gateway_resumes) == (1, 0, 0)
    api.drop()
    await until(lambda: c.gateway_resumes == 1)
    assert (c.gateway_connects, c.gateway_disconnects) == (1, 1)
    assert len(api.identifies) == 1 and api.resumes[0]["session_id"] == "session-1"  # resumed, not anew
    llm.then(streamed("still here"))
    api.user_says(42, 500, "are you there?")
    await until(lambda: api.texts(500) == ["still here"] and c.completed_requests == 1)
    metrics = prometheus_text(c, channel.core.gateway.process, "test").decode()
    for line in (
        'openclaw_gateway_ws_events_total{event="connect"} 1.0',
        'openclaw_gateway_ws_events_total{event="disconnect"} 1.0',
        'openclaw_gateway_ws_events_total{event="resume"} 1.0',
        'openclaw_gateway_requests_total{channel="discord"} 1.0',
    ):
        assert line in metrics


async def test_a_close_that_cannot_be_resumed_is_logged(
    channel: DiscordChannel, api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    api.drop(4004)  # Discord's "authentication failed": the token was revoked meanwhile
    await until(lambda: "discord: disconnected for good" in caplog.text)
    assert not api.resumes and channel.core.gateway.counters.gateway_resumes == 0


async def test_a_bad_token_fails_start_in_one_line(
    runtime: AgentRuntime, api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    channel = DiscordChannel(discord_core(runtime, ChannelConfig("wrong-token", (), api.base_url)))
    with caplog.at_level(logging.INFO), pytest.raises(DiscordStartError) as failed:
        await channel.start()
    assert str(failed.value) == "the bot token was refused"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert channel.client.is_closed() and not api.identifies


@pytest.fixture
def gateway_config(tmp_path: Path, isolated_environment: Path, llm: FakeLlm) -> Path:
    models_config(isolated_environment, llm)
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps({"agent": {"name": "main"}, "metrics": {"snapshot_interval_secs": 0.2}}))
    return path


@pytest.mark.slow
def test_gateway_process_serves_discord(
    gateway_config: Path, isolated_environment: Path, db_url: str, llm: FakeLlm, api: FakeDiscord
) -> None:
    config = json.loads(gateway_config.read_text())
    config["discord"] = {"bot_token": api.token, "allowed_user_ids": [42], "api_base": api.base_url}
    gateway_config.write_text(json.dumps(config))
    proc, base = start_gateway(gateway_config, isolated_environment, db_url)  # Discord is ready by then
    try:
        llm.then(streamed("Hello from ", "the gateway"))
        api.user_says(42, 500, "hi")
        wait_for(lambda: api.texts(500) == ["Hello from the gateway"], process=proc)
        # The turn is counted once its answer is on screen: wait for that too.
        metrics = wait_for_http(f"{base}/metrics/json", lambda r: r.json()["completed_requests"] == 1).json()
        assert (
            metrics["discord_requests"] == metrics["completed_requests"] == metrics["gateway_connects"] == 1
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert stored(db_url, "dc:main:42:500") == ["hi", "Hello from the gateway"]


@pytest.mark.slow
def test_gateway_process_with_a_bad_discord_token_still_serves(
    gateway_config: Path, isolated_environment: Path, db_url: str, api: FakeDiscord
) -> None:
    config = json.loads(gateway_config.read_text())
    config["discord"] = {"bot_token": "wrong-token", "api_base": api.base_url}
    gateway_config.write_text(json.dumps(config))
    proc, base = start_gateway(gateway_config, isolated_environment, db_url)
    try:
        assert httpx.get(f"{base}/ping").text == "pong"
        assert httpx.get(f"{base}/health").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [line for line in err.splitlines() if "discord" in line.lower()] == [
        "openclaw: discord: not started: the bot token was refused"
    ], err
    assert "Traceback" not in err
