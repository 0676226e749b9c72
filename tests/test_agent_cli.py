"""`openclaw agent`, `models list` and `logs` end to end, including calls made while
Postgres was down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.fake_llm import FakeLlm, Step, chunk, serve
from tests.test_outbox_target import unavailable


def answer(text: str) -> list[str]:
    return [chunk(text), chunk(finish="stop"), "[DONE]"]


@pytest.fixture
def fake(isolated_environment: Path) -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        (isolated_environment / "openclaw-manual.json").write_text(
            json.dumps(
                {
                    "models": {
                        "providers": {
                            "fake": {"baseUrl": app.base_url + "/v1", "apiKey": "sk-x", "models": ["m1"]}
                        },
                        "fallbacks": ["fake/m1"],
                    }
                }
            )
        )
        yield app


def test_agent_streams_and_logs_the_call(cli: Cli, fake: FakeLlm) -> None:
    fake.then(
        Step(
            sse=[
                chunk("Hello "),
                chunk("there!"),
                chunk(finish="stop"),
                chunk(usage={"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23}),
                "[DONE]",
            ]
        )
    )
    result = cli("agent", "-m", "hi")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Hello there!\n"
    assert "fake/m1 · 23 tokens · 1 round" in result.stderr
    calls = json.loads(cli("logs", "--json").stdout)
    assert len(calls) == 1 and calls[0]["model"] == "m1" and calls[0]["usage_total_tokens"] == 23
    assert calls[0]["session_key"].startswith("agent:main:cli:") and calls[0]["streaming"] is True
    shown = cli("logs", "show", calls[0]["id"][:8])
    assert "response_content:" in shown.stdout and "Hello there!" in shown.stdout


def test_models_list(cli: Cli, fake: FakeLlm) -> None:
    listed = json.loads(cli("models", "list", "--json").stdout)
    assert listed["fallbacks"] == ["fake/m1"] and listed["providers"][0]["models"] == ["m1"]
    assert "fallback chain: fake/m1" in cli("models", "list").stdout


@pytest.mark.slow
def test_calls_made_while_postgres_was_down_arrive_later(
    capsys: pytest.CaptureFixture[str], db_url: str, pg_server_url: str, fake: FakeLlm
) -> None:
    down = Cli(capsys, db_url)
    fake.then(Step(503, {"error": "first provider trouble"}), Step(sse=answer("still answered")))
    with unavailable(pg_server_url, db_url):
        result = down("agent", "-m", "hello while the database is down", "--model", "fake/m1")
    assert result.exit_code == 0, result.stderr
    assert "still answered" in result.stdout and "wait in the outbox" in result.stderr
    up = Cli(capsys, db_url)
    fake.then(Step(sse=answer("and now it is back")))
    assert up("agent", "-m", "hello again").exit_code == 0  # its flusher ships the backlog
    calls = json.loads(up("logs", "--json").stdout)
    assert len(calls) == 3  # the failed attempt, the answer while down, the answer now
    errors = json.loads(up("logs", "--errors", "--since", "1h", "--json").stdout)
    assert [e["error"] for e in errors] == ['HTTP 503: {"error": "first provider trouble"}']


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["agent", "-m", "  "], 2, "the message is empty"),
        (["agent", "-m", "x", "--model", "nonsense"], 2, "is not of the form provider/model"),
        (["logs", "--since", "yesterday"], 2, "give a number and a unit"),
        (["logs", "show", "zzz"], 2, "is not a call id"),
        (["logs", "show", "abcdef12"], 1, "no LLM call abcdef12"),
    ],
)
def test_bad_input(cli: Cli, fake: FakeLlm, args: list[str], code: int, message: str) -> None:
    result = cli(*args)
    assert result.exit_code == code and message in result.stderr


def test_missing_model_config(cli: Cli, isolated_environment: Path) -> None:
    result = cli("agent", "-m", "hi")
    assert result.exit_code == 1 and "model config not found" in result.stderr


def test_every_model_failing_is_one_line(cli: Cli, fake: FakeLlm) -> None:
    fake.then(Step(400, {"error": "bad"}))
    result = cli("agent", "-m", "hi")
    assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1].startswith(
        "openclaw: error: every model failed: fake/m1: HTTP 400"
    )


def test_chat_in_a_real_process(isolated_environment: Path, db_url: str, fake: FakeLlm) -> None:
    import os
    import subprocess
    import sys

    fake.then(Step(sse=answer("Hi! How can I help?")), Step(sse=answer("You said hello first.")))
    env = {**os.environ, "OPENCLAW_HOME": str(isolated_environment), "DATABASE_URL": db_url}
    result = subprocess.run(
        [sys.executable, "-m", "openclaw", "chat"],
        input="hello\n\nwhat did I say?\n/exit\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Hi! How can I help?" in result.stdout and "You said hello first." in result.stdout
    second = fake.requests[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]  # one session, replayed


@pytest.mark.slow
def test_postgres_backend_answers_while_postgres_is_down(
    capsys: pytest.CaptureFixture[str],
    db_url: str,
    pg_server_url: str,
    fake: FakeLlm,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENCLAW_SESSIONS_BACKEND", "postgres")
    down = Cli(capsys, db_url)
    fake.then(Step(sse=answer("answered anyway")))
    with unavailable(pg_server_url, db_url):  # the same database: its entries wait for it
        result = down("agent", "-m", "hello", "--session", "agent:main:cli:outage")
    assert result.exit_code == 0, result.stderr
    assert "answered anyway" in result.stdout and "wait in the outbox" in result.stderr
    up = Cli(capsys, db_url)
    fake.then(Step(sse=answer("and remembered")))
    assert up("agent", "-m", "again", "--session", "agent:main:cli:outage").exit_code == 0
    shown = json.loads(up("sessions", "show", "agent:main:cli:outage", "--from", "postgres", "--json").stdout)
    assert [m["content"] for m in shown] == ["hello", "answered anyway", "again", "and remembered"]
