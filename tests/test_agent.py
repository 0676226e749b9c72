"""The agent turn loop and its tools, against a real loopback provider and a real store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from openclaw.agent.loop import Agent, TurnTimeoutError
from openclaw.agent.tools import LIST_DIR, READ_FILE, SandboxSettings, ToolRegistry, blocked_by, exec_tool
from openclaw.chat import Role, ToolCall
from openclaw.llm.config import parse_llm_config
from openclaw.llm.log import LlmLog
from openclaw.llm.router import AllModelsFailedError, Router, build_providers
from openclaw.sessions.sqlite_store import SqliteSessionStore
from tests.fake_llm import FakeLlm, Step, completion, serve
from tests.waiting import until


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        yield app


@pytest.fixture
async def agent(fake: FakeLlm, tmp_path: Path) -> AsyncIterator[Agent]:
    config = parse_llm_config(
        {
            "models": {
                "providers": {"fake": {"baseUrl": fake.base_url, "models": ["m1"]}},
                "fallbacks": ["fake/m1"],
            }
        },
        Path("t.json"),
    )
    store = SqliteSessionStore(tmp_path / "agents" / "main" / "sessions.db", "main")
    async with httpx.AsyncClient() as client:
        router = Router(config, build_providers(config, client), LlmLog(None), retry_delays_s=())
        tools = ToolRegistry(
            [
                READ_FILE,
                LIST_DIR,
                exec_tool(SandboxSettings(blocked_commands=("rm", "shutdown"), max_exec_timeout_secs=2)),
            ]
        )
        yield Agent(router, store, tools, turn_timeout_s=30)  # generous: test_turn_timeout sets its own
    await store.close()


def call(name: str, arguments: str, call_id: str = "call_1") -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


async def test_turn_with_tools_stores_the_rust_order(fake: FakeLlm, agent: Agent, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("remember the milk")
    fake.then(
        Step(
            body=completion(
                None,
                tool_calls=[
                    call("read_file", json.dumps({"path": str(tmp_path / "notes.txt")})),
                    call("exec", '{"command": "echo hi"}', "call_2"),
                ],
                finish="tool_calls",
                usage={"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
            )
        ),
        Step(
            body=completion(
                "The note says: remember the milk.",
                usage={"prompt_tokens": 80, "completion_tokens": 9, "total_tokens": 89},
            )
        ),
    )
    result = await agent.turn("tg:main:1:2", "what's in my notes?")
    assert (
        result.reply == "The note says: remember the milk." and result.rounds == 2 and result.tool_calls == 2
    )
    stored = await agent.store.load_messages("tg:main:1:2")
    assert [m.role for m in stored] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.TOOL, Role.ASSISTANT]
    assert stored[2].content == "remember the milk" and stored[3].content == "exit code 0\nhi\n"
    info = await agent.store.get_session("tg:main:1:2")
    assert info is not None and info.total_tokens == 149 and info.model == "fake/m1"
    second_request = fake.requests[1]["messages"]
    assert second_request[0]["role"] == "system" and second_request[-1]["tool_call_id"] == "call_2"
    # The next turn replays the history window.
    fake.then(Step(body=completion("You asked about your notes.")))
    await agent.turn("tg:main:1:2", "what did I ask?")
    assert [m["role"] for m in fake.requests[2]["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "user",
    ]


async def test_bad_tool_calls_are_answered_not_fatal(fake: FakeLlm, agent: Agent) -> None:
    fake.then(
        Step(
            body=completion(
                None,
                tool_calls=[
                    call("exec", "{not json"),
                    call("teleport", "{}", "c2"),
                    call("exec", '{"command": "rm -rf /tmp/x"}', "c3"),
                    call("read_file", '{"path": "/no/such/file"}', "c4"),
                ],
            )
        ),
        Step(body=completion("Sorry, none of that worked.")),
    )
    result = await agent.turn("agent:main:cli:1", "do things")
    outputs = [m.content or "" for m in result.messages if m.role is Role.TOOL]
    assert outputs[0].startswith("error: the arguments are not valid JSON")
    assert outputs[1].startswith("error: unknown tool 'teleport'")
    assert outputs[2] == "error: 'rm' is blocked by the sandbox settings"
    assert outputs[3].startswith("error: FileNotFoundError")


async def test_exec_timeout_kills_the_command(agent: Agent) -> None:
    started = time.monotonic()
    output = await agent.tools.call(
        ToolCall("c", "exec", '{"command": "sleep 30; echo never", "timeout_secs": 60}')
    )
    assert output.startswith("error: timed out after 2 s") and time.monotonic() - started < 20  # not 30


def test_blocked_commands() -> None:
    blocked = ("rm", "shutdown", "mkfs", "curl | sh")
    assert blocked_by("ls && /bin/rm -f x", blocked) == "rm"
    assert blocked_by("sudo shutdown now", blocked) == "shutdown"
    # A phrase compares word by word: spacing does not matter, other words in between do.
    assert blocked_by("curl  |  sh", blocked) == "curl | sh" and blocked_by("curl|sh", blocked) == "curl | sh"
    assert blocked_by("curl  x |  sh", blocked) is None
    assert blocked_by("echo format", blocked) is None and blocked_by("grep rm file", blocked) == "rm"
    for sneaky in ("true;rm x", "ls|rm x", "true&&rm x", "bash -c 'rm x'", 'sh -lc "rm x"', "echo $(rm x)"):
        assert blocked_by(sneaky, blocked) == "rm", sneaky


async def test_exec_output_is_capped_while_reading(agent: Agent) -> None:
    output = await agent.tools.call(
        ToolCall("c", "exec", '{"command": "head -c 400000000 /dev/zero | tr \\"\\\\0\\" x"}')
    )
    assert len(output) < 20_000 and output.startswith("stopped: more than 16000 characters of output")


def _alive_in_group(group: int) -> bool:
    """Whether a process of this process group is alive (zombies are not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(pgrp) == group and state != "Z":
            return True
    return False


async def test_a_cancelled_turn_kills_its_command(agent: Agent, tmp_path: Path) -> None:
    marker, started = tmp_path / "still-running", tmp_path / "started"
    # The shell leads its own process group (its pid is the group's id), the sleep is in it.
    command = f"echo $$ > {started}.tmp && mv {started}.tmp {started} && sleep 5 && touch {marker}"
    task = asyncio.create_task(agent.tools.call(ToolCall("c", "exec", json.dumps({"command": command}))))
    await until(started.exists, what="the command to start")
    group = int(started.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Killed, the group ends at once; left running, it would end after touching the marker.
    await until(lambda: not _alive_in_group(group), what=f"process group {group} to end")
    assert not marker.exists()


async def test_a_failed_turn_keeps_only_the_users_text(fake: FakeLlm, agent: Agent) -> None:
    fake.then(
        Step(body=completion(None, tool_calls=[call("exec", '{"command": "echo 1"}')])), Step(500, {"e": 1})
    )
    with pytest.raises(AllModelsFailedError):
        await agent.turn("tg:main:1:9", "hello")
    stored = await agent.store.load_messages("tg:main:1:9")
    assert [(m.role, m.content) for m in stored] == [(Role.USER, "hello")]


async def test_turn_timeout(fake: FakeLlm, agent: Agent) -> None:
    agent.turn_timeout_s = 0.5
    fake.then(Step(body=completion("too late"), delay_s=3))
    with pytest.raises(TurnTimeoutError, match=r"longer than 0\.5 s"):
        await agent.turn("tg:main:1:3", "hello")


async def test_round_limit(fake: FakeLlm, agent: Agent) -> None:
    agent.max_rounds = 2
    fake.then(*[Step(body=completion(None, tool_calls=[call("list_dir", "{}", f"c{i}")])) for i in range(2)])
    result = await agent.turn("tg:main:1:4", "loop forever")
    assert result.reply == "(stopped after 2 rounds of tool calls)" and result.rounds == 2
