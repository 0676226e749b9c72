"""What a stranger can reach through the gateway, and what a failed start or a failed turn
leaves behind (issue 10): no shell for open channels, webhook session keys kept to their
own prefix, bind before writing anything, failed webhook turns counted as errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from openclaw.agent.runtime import AgentRuntime
from openclaw.agent.tools import sandbox_from
from openclaw.app import load_settings, open_runtime
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.errors import ConfigError
from openclaw.gateway.app import Gateway, create_app
from openclaw.gateway.channel import ChannelCore, Incoming
from openclaw.gateway.config import ChannelConfig, GatewayConfig
from openclaw.gateway.metrics import snapshot, write_metrics_snapshots
from openclaw.mcp.curated import request_volume
from tests.conftest import Cli
from tests.fake_llm import FakeLlm, Step, chunk, completion, serve
from tests.test_channel_core import Recorder, answer
from tests.test_gateway import AUTH, api, configured, fake, start_gateway  # noqa: F401
from tests.waiting import wait_for

# ---- exec and files for open channels ----------------------------------------------------


def tool_calls_step(*calls: tuple[str, dict[str, Any]]) -> Step:
    """A streamed answer that calls these tools."""
    fragments = [
        {
            "index": i,
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(a)},
        }
        for i, (name, a) in enumerate(calls)
    ]
    return Step(sse=[chunk(tool_calls=fragments), chunk(finish="tool_calls"), "[DONE]"])


def offered(request: dict[str, Any]) -> dict[str, str]:
    return {t["function"]["name"]: t["function"]["description"] for t in request.get("tools", [])}


def tool_results(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


@pytest.fixture
def workspace(configured: Path, tmp_path: Path) -> Path:  # noqa: F811
    """The gateway config names a sandbox root holding one file."""
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "notes.txt").write_text("inside the workspace")
    config = json.loads(configured.read_text())
    config["agent"]["sandbox"]["root"] = str(root)
    configured.write_text(json.dumps(config))
    return root


@pytest.fixture
async def runtime(workspace: Path, db_url: str, isolated_environment: Path) -> AsyncIterator[AgentRuntime]:
    opened = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    yield opened
    await opened.close()


def core_for(runtime: AgentRuntime, allowed: tuple[int, ...], **sandbox: Any) -> ChannelCore:
    config = load_settings().gateway
    config = replace(config, sandbox=replace(config.sandbox, **sandbox))
    return ChannelCore(Gateway(config, runtime, "h"), "telegram", "tg", ChannelConfig("t0ken", allowed))


async def test_an_open_channel_offers_no_exec_and_no_files_outside_the_workspace(
    runtime: AgentRuntime,
    fake: FakeLlm,  # noqa: F811
    workspace: Path,
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the operator's secret")
    (workspace / "link").symlink_to(secret)
    marker = tmp_path / "pwned"
    core = core_for(runtime, ())  # no allowlist: anyone who finds the bot
    fake.then(
        tool_calls_step(
            ("exec", {"command": f"touch {marker}"}),
            ("read_file", {"path": str(secret)}),
            ("read_file", {"path": "notes.txt"}),
            ("read_file", {"path": "link"}),
            ("list_dir", {"path": ".."}),
            ("list_dir", {}),
        ),
        answer("done"),
    )
    chat = Recorder()
    await core.handle(Incoming(7, 1, "hi"), chat)
    assert chat.messages == ["done"]
    tools = offered(fake.requests[0])
    assert "exec" not in tools and {"read_file", "list_dir", "project_context"} <= set(tools)
    assert str(workspace) in tools["read_file"]
    refused_exec, outside, inside, through_link, parent, listing = tool_results(fake.requests[1])
    assert refused_exec.startswith("error: exec is off") and "allowed_user_ids" in refused_exec
    assert not marker.exists()
    for refused in (outside, through_link, parent):
        assert refused.startswith("error:") and "outside the workspace" in refused
        assert "the operator's secret" not in refused
    assert inside == "inside the workspace"
    assert set(listing.splitlines()) == {"link", "notes.txt"}


async def test_an_allowlisted_or_opted_in_channel_keeps_exec(
    runtime: AgentRuntime,
    fake: FakeLlm,  # noqa: F811
) -> None:
    fake.then(answer("one"), answer("two"))
    await core_for(runtime, (42,)).handle(Incoming(42, 1, "hi"), Recorder())
    await core_for(runtime, (), allow_exec_for_everyone=True).handle(Incoming(7, 1, "hi"), Recorder())
    for request in fake.requests:
        tools = offered(request)
        assert "exec" in tools and "workspace" not in tools["read_file"]


async def test_the_webhook_keeps_the_full_tool_set(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
    fake: FakeLlm,  # noqa: F811
) -> None:
    client, _ = api
    fake.then(Step(body=completion("ok")))
    assert (await client.post("/webhook", json={"message": "hi"}, headers=AUTH)).status_code == 200
    assert "exec" in offered(fake.requests[0])


def test_sandbox_settings_validate_the_new_keys(tmp_path: Path) -> None:
    settings = sandbox_from({"allow_exec_for_everyone": True, "root": str(tmp_path)})
    assert settings.allow_exec_for_everyone and settings.workspace == tmp_path
    assert not sandbox_from({}).allow_exec_for_everyone
    with pytest.raises(ConfigError, match="allow_exec_for_everyone must be true or false"):
        sandbox_from({"allow_exec_for_everyone": "yes"})
    with pytest.raises(ConfigError, match="root must be"):
        sandbox_from({"root": 5})


def test_an_open_telegram_gets_one_warning_and_no_exec(
    configured: Path,  # noqa: F811
    db_url: str,
    isolated_environment: Path,
    fake: FakeLlm,  # noqa: F811
) -> None:
    from tests.fake_telegram import FakeBotApi

    with serve(FakeBotApi()) as bot:  # type: ignore[arg-type]
        config = json.loads(configured.read_text())
        config["telegram"] = {"bot_token": "123:fake", "api_base": bot.base_url}  # no allowlist
        configured.write_text(json.dumps(config))
        proc, _ = start_gateway(configured, isolated_environment, db_url)
        try:
            fake.then(answer("hello stranger"))
            bot.user_says(7, 700, "hi")
            wait_for(lambda: "hello stranger" in bot.texts(700), process=proc)  # type: ignore[attr-defined]
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "exec" not in offered(fake.requests[0])
    warnings = [line for line in err.splitlines() if "allow_exec_for_everyone" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith(
        "openclaw: telegram: allowed_user_ids is empty: exec, and read_file/list_dir"
    )
    assert str(isolated_environment / "workspace") in warnings[0]


def test_the_warning_names_the_open_channels_that_run(tmp_path: Path) -> None:
    config = GatewayConfig(
        sandbox=sandbox_from({"root": str(tmp_path)}),
        telegram=ChannelConfig("t", ()),
        discord=ChannelConfig("d", ()),
    )
    both = config.open_channel_warning()
    assert both is not None and both.startswith("telegram and discord: allowed_user_ids is empty")
    assert f"outside {tmp_path}, are off for their chats" in both
    only = config.open_channel_warning(["discord"])
    assert only is not None and only.startswith("discord: ") and "its chats" in only
    assert config.open_channel_warning([]) is None
    assert replace(config, telegram=ChannelConfig("t", (1,))).open_channel_warning(["telegram"]) is None
    opted_in = replace(config, sandbox=replace(config.sandbox, allow_exec_for_everyone=True))
    assert "anyone who finds the bot may run commands" in (opted_in.open_channel_warning() or "")


# ---- webhook session keys ------------------------------------------------------------------


async def test_webhook_session_keys_are_kept_to_their_prefix(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
    fake: FakeLlm,  # noqa: F811
) -> None:
    client, gateway = api
    for key in ("tg:main:42:1001", "dc:main:42:5", "agent:main:cli:x", "webhook", "webhook:" + "k" * 300):
        reply = await client.post("/webhook", json={"message": "hi", "session_key": key}, headers=AUTH)
        body = reply.json()
        assert reply.status_code == 400 and body["error_code"] == "INVALID_SESSION_KEY", key
        assert "webhook:" in body["error"] and "256" in body["error"]
    huge = await client.post(
        "/webhook", json={"message": "hi", "session_key": "webhook:" + "k" * 100_000}, headers=AUTH
    )
    assert huge.status_code == 400 and huge.json()["error_code"] == "INVALID_SESSION_KEY"
    assert not fake.requests and (await gateway.runtime.store.stats()).sessions == 0
    assert gateway.counters.webhook_requests == 0
    fake.then(Step(body=completion("fine")))
    ok = await client.post("/webhook", json={"message": "hi", "session_key": "webhook:ci:1"}, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["session_key"] == "webhook:ci:1"


async def test_webhook_prefixes_come_from_the_config(
    configured: Path,  # noqa: F811
    db_url: str,
    isolated_environment: Path,
    fake: FakeLlm,  # noqa: F811
) -> None:
    config = json.loads(configured.read_text())  # noqa: ASYNC240 - test set-up
    config["webhook"]["allowed_session_prefixes"] = ["webhook:", "ci:"]
    configured.write_text(json.dumps(config))  # noqa: ASYNC240 - test set-up
    runtime = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    app = create_app(Gateway(load_settings().gateway, runtime, "h"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client:
        fake.then(Step(body=completion("fine")))
        ok = await client.post("/webhook", json={"message": "hi", "session_key": "ci:build:9"}, headers=AUTH)
        assert ok.status_code == 200
        refused = await client.post(
            "/webhook", json={"message": "hi", "session_key": "tg:main:1:1"}, headers=AUTH
        )
        assert refused.status_code == 400 and "webhook:, ci:" in refused.json()["error"]
    await runtime.close()
    for bad in ("webhook:", ["tg:", 5], [""]):
        config["webhook"]["allowed_session_prefixes"] = bad
        configured.write_text(json.dumps(config))  # noqa: ASYNC240 - test set-up
        with pytest.raises(ConfigError, match=r"webhook\.allowed_session_prefixes"):
            load_settings()


# ---- bind first ----------------------------------------------------------------------------


def test_a_port_in_use_is_one_line_and_writes_nothing(
    configured: Path,  # noqa: F811
    db_url: str,
    isolated_environment: Path,
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with psycopg.connect(db_url, autocommit=True) as conn:  # a running gateway's row
            conn.execute(
                "INSERT INTO deployments (host, component, version, status, pid)"
                " VALUES (%s, 'gateway', '0.0.1', 'active', 1)",
                (socket.gethostname(),),
            )
        env = {
            **os.environ,
            "OPENCLAW_HOME": str(isolated_environment),
            "DATABASE_URL": db_url,
            "HTTP_PORT": str(port),
            "GATEWAY_CONFIG": str(configured),
        }
        done = subprocess.run(
            [sys.executable, "-m", "openclaw", "gateway"], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"openclaw: error: cannot listen on 127.0.0.1:{port}: address already in use"
    ], done.stderr
    with psycopg.connect(db_url) as conn:
        deployments = conn.execute("SELECT status, pid FROM deployments").fetchall()
        snapshots = conn.execute("SELECT count(*) FROM metrics_snapshots").fetchone()
    assert deployments == [("active", 1)] and snapshots == (0,)


# ---- failed webhook turns are errors -------------------------------------------------------


async def test_failed_webhook_turns_count_as_errors_everywhere(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
    fake: FakeLlm,  # noqa: F811
    cli: Cli,
) -> None:
    client, gateway = api
    runtime = gateway.runtime
    fake.then(Step(400, {"error": "bad"}))
    failed = await client.post("/webhook", json={"message": "hi"}, headers=AUTH)
    assert failed.status_code == 500 and failed.json()["error_code"] == "AGENT_TURN_FAILED"
    assert 'openclaw_gateway_errors_total{channel="webhook"} 1.0' in (await client.get("/metrics")).text
    assert (await client.get("/metrics/summary")).text.startswith("reqs=1 errs=1 err%=100.0")
    assert (await client.get("/metrics/json")).json()["webhook_errors"] == 1
    # A snapshot three hours ago (read through the hourly rollup), another failure, and the
    # gateway's own snapshot now (read from the snapshots themselves).
    earlier = replace(
        snapshot(gateway.counters, gateway.process, "testhost", "t"),
        snapshot_at=datetime.now(UTC) - timedelta(hours=3),
    )
    async with runtime.database.connection() as conn:
        await write_metrics_snapshots(conn, [earlier])
    fake.then(Step(400, {"error": "bad"}))
    assert (await client.post("/webhook", json={"message": "again"}, headers=AUTH)).status_code == 500
    from openclaw.db.records import to_payload
    from openclaw.gateway.metrics import METRICS_SNAPSHOT

    runtime.spool.append(
        METRICS_SNAPSHOT, to_payload(snapshot(gateway.counters, gateway.process, "testhost", "t"))
    )
    assert await runtime.flusher.drain(timeout_s=30)
    async with runtime.database.connection() as conn:
        [volume] = await request_volume(conn, "7d")
        hourly = await (await conn.execute("SELECT sum(webhook_errors) FROM metrics_hourly")).fetchone()
    assert volume["errors"] == 2 and volume["webhook"] == 2 and hourly == (2,)
    [row] = json.loads((await asyncio.to_thread(cli, "metrics", "--json")).stdout)
    assert row["errors"] == 2 and row["error_pct"] == 100


async def test_provider_init_failed_counts_as_an_error(
    configured: Path,  # noqa: F811
    db_url: str,
    isolated_environment: Path,
) -> None:
    (isolated_environment / "openclaw-manual.json").unlink()
    runtime = await open_runtime(
        DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment, require_models=False
    )
    gateway = Gateway(load_settings().gateway, runtime, "h")
    app = create_app(gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client:
        reply = await client.post("/webhook", json={"message": "hi"}, headers=AUTH)
        assert reply.json()["error_code"] == "PROVIDER_INIT_FAILED"
        assert 'openclaw_gateway_errors_total{channel="webhook"} 1.0' in (await client.get("/metrics")).text
    assert gateway.counters.errors == 1
    await runtime.close()
