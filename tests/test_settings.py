"""Typed settings (issue 13): the gateway config and openclaw-manual.json are checked by one
model tree (openclaw.config) and the environment by pydantic-settings, once, at the edge.

A wrong type in any section is one line that names its path, exit code 2, no traceback,
and nothing written: not a file under $OPENCLAW_HOME, not a row in Postgres.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from openclaw.chat import Message
from openclaw.llm.config import parse_llm_config
from openclaw.llm.log import LlmLog
from openclaw.llm.router import Router
from openclaw.llm.types import ChatRequest, ChatResult, OnDelta
from tests.conftest import Cli

MANUAL: dict[str, Any] = {
    "models": {
        "providers": {"fake": {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "sk-x", "models": ["m1"]}},
        "fallbacks": ["fake/m1"],
    }
}

# Every section of the gateway config that openclaw reads: a wrong type, and its one line.
GATEWAY_CASES: list[tuple[dict[str, Any], str]] = [
    ({"webhook": "x"}, "webhook must be an object, got a string"),
    ({"telegram": [1, 2]}, "telegram must be an object, got a list"),
    ({"metrics": 5}, "metrics must be an object, got an integer"),
    ({"agent": {"fallback": "false"}}, "agent.fallback must be true or false, got a string"),
    (
        {"telegram": {"allowed_user_ids": [1, 2, "3"]}},
        "telegram.allowed_user_ids[2] must be an integer, got a string",
    ),
    ({"telegram": {"bot_token": 123}}, "telegram.bot_token must be a string, got an integer"),
    ({"discord": "on"}, "discord must be an object, got a string"),
    ({"discord": {"allowed_user_ids": 7}}, "discord.allowed_user_ids must be a list, got an integer"),
    ({"agent": []}, "agent must be an object, got a list"),
    ({"agent": {"name": 5}}, "agent.name must be a string, got an integer"),
    ({"agent": {"model": ["a/b"]}}, "agent.model must be a string, got a list"),
    ({"agent": {"sandbox": "strict"}}, "agent.sandbox must be an object, got a string"),
    (
        {"agent": {"sandbox": {"blocked_commands": ["rm", 1]}}},
        "agent.sandbox.blocked_commands[1] must be a string, got an integer",
    ),
    (
        {"agent": {"sandbox": {"max_concurrent": "5"}}},
        "agent.sandbox.max_concurrent must be an integer, got a string",
    ),
    (
        {"agent": {"sandbox": {"turn_timeout_secs": True}}},
        "agent.sandbox.turn_timeout_secs must be a number, got a boolean",
    ),
    ({"webhook": {"token": 1}}, "webhook.token must be a string, got an integer"),
    ({"webhook": {"body_timeout_s": "10"}}, "webhook.body_timeout_s must be a number, got a string"),
    (
        {"webhook": {"allowed_session_prefixes": ["webhook:", 5]}},
        "webhook.allowed_session_prefixes[1] must be a string, got an integer",
    ),
    (
        {"metrics": {"snapshot_interval_secs": "60"}},
        "metrics.snapshot_interval_secs must be a number, got a string",
    ),
    ({"llm_log": {"capacity": "256"}}, "llm_log.capacity must be an integer, got a string"),
    ({"cron": 120}, "cron must be an object, got an integer"),
    ({"cron": {"lease_s": "120"}}, "cron.lease_s must be a number, got a string"),
    ({"outbox": {"max_entries": 1.5}}, "outbox.max_entries must be an integer, got a number"),
    ({"database": "postgresql://x"}, "database must be an object, got a string"),
    ({"sessions": {"backend": 1}}, "sessions.backend must be a string, got an integer"),
]

# Every section of openclaw-manual.json that openclaw reads.
MANUAL_CASES: list[tuple[Any, str]] = [
    ({"models": []}, "models must be an object, got a list"),
    ({"models": {"providers": []}}, "models.providers must be an object, got a list"),
    ({"models": {"providers": {"fake": "x"}}}, "models.providers.fake must be an object, got a string"),
    (
        {"models": {"providers": {"fake": {"baseUrl": 5}}}},
        "models.providers.fake.baseUrl must be a string, got an integer",
    ),
    (
        {"models": {"providers": {"fake": {"baseUrl": "http://x", "apiKey": ["k"]}}}},
        "models.providers.fake.apiKey must be a string, got a list",
    ),
    (
        {"models": {"providers": {"fake": {"baseUrl": "http://x", "models": ["m1", 2]}}}},
        "models.providers.fake.models[1] must be an object, got an integer",
    ),
    (
        {
            "models": {
                "providers": {"fake": {"baseUrl": "http://x", "models": [{"id": "m", "reasoning": "yes"}]}}
            }
        },
        "models.providers.fake.models[0].reasoning must be true or false, got a string",
    ),
    ({"models": {"fallbacks": "fake/m1"}}, "models.fallbacks must be a list, got a string"),
    ({"agents": {"defaults": []}}, "agents.defaults must be an object, got a list"),
    (
        {"agents": {"defaults": {"timeoutSeconds": "300"}}},
        "agents.defaults.timeoutSeconds must be a number, got a string",
    ),
    (
        {"agents": {"defaults": {"maxConcurrent": 2.5}}},
        "agents.defaults.maxConcurrent must be an integer, got a number",
    ),
    ({"gateway": {"auth": 5}}, "gateway.auth must be a token or an object with a token, got an integer"),
]


def _merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = json.loads(json.dumps(base))
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _rows(db_url: str) -> dict[str, int]:
    """Rows in every table of the test database: what a command wrote."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
        ]
        counts: dict[str, int] = {}
        for table in tables:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            counts[table] = row[0]
        return counts


def _files(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def _refused(cli: Cli, db_url: str, home: Path, *args: str) -> str:
    """Run a command that must stop on its configuration: exit code 2, one line on stderr,
    no traceback (the fixture checks), and nothing written. Returns the line."""
    files, rows = _files(home), _rows(db_url)
    result = cli(*args)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert _files(home) == files
    assert _rows(db_url) == rows
    return lines[0]


@pytest.fixture(autouse=True)
def busy_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """HTTP_PORT is a port this test holds: a gateway that started despite a wrong value
    would fail to listen there (exit code 1) instead of serving until killed."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port: int = held.getsockname()[1]
        monkeypatch.setenv("HTTP_PORT", str(port))
        yield port


def _gateway_config(home: Path) -> Path:
    # isolated_environment's empty file: next to the home
    return home.parent / "gateway-config.json"


@pytest.mark.parametrize(("document", "message"), GATEWAY_CASES, ids=[m.split()[0] for _, m in GATEWAY_CASES])
def test_a_wrong_type_in_the_gateway_config_stops_the_gateway_in_one_line(
    cli: Cli, db_url: str, isolated_environment: Path, document: dict[str, Any], message: str
) -> None:
    (isolated_environment / "openclaw-manual.json").write_text(json.dumps(MANUAL))
    _gateway_config(isolated_environment).write_text(json.dumps(document))
    line = _refused(cli, db_url, isolated_environment, "gateway")
    assert line == f"openclaw: error: gateway config: {message}"


@pytest.mark.parametrize(
    ("document", "message"), GATEWAY_CASES[:5], ids=[m.split()[0] for _, m in GATEWAY_CASES[:5]]
)
def test_a_wrong_type_in_the_gateway_config_stops_agent_before_any_write(
    cli: Cli, db_url: str, isolated_environment: Path, document: dict[str, Any], message: str
) -> None:
    (isolated_environment / "openclaw-manual.json").write_text(json.dumps(MANUAL))
    _gateway_config(isolated_environment).write_text(json.dumps(document))
    line = _refused(cli, db_url, isolated_environment, "agent", "-m", "hi")
    assert line == f"openclaw: error: gateway config: {message}"


@pytest.mark.parametrize(("change", "message"), MANUAL_CASES, ids=[m.split()[0] for _, m in MANUAL_CASES])
@pytest.mark.parametrize("command", [("agent", "-m", "hi"), ("gateway",)], ids=["agent", "gateway"])
def test_a_wrong_type_in_openclaw_manual_json_is_one_line(
    cli: Cli,
    db_url: str,
    isolated_environment: Path,
    change: dict[str, Any],
    message: str,
    command: tuple[str, ...],
) -> None:
    (isolated_environment / "openclaw-manual.json").write_text(json.dumps(_merged(MANUAL, change)))
    line = _refused(cli, db_url, isolated_environment, *command)
    assert line == f"openclaw: error: openclaw-manual.json: {message}"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HTTP_PORT", "web", "HTTP_PORT must be an integer, got a string"),
        ("HTTP_PORT", "70000", "HTTP_PORT must be at most 65535, got 70000"),
        ("USE_FALLBACK", "maybe", "USE_FALLBACK must be true or false, got a string"),
        ("ALLOWED_USER_IDS", "12,bob", "ALLOWED_USER_IDS must be comma-separated numbers, not '12,bob'"),
    ],
)
def test_a_wrong_environment_variable_is_one_line(
    cli: Cli,
    db_url: str,
    isolated_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    (isolated_environment / "openclaw-manual.json").write_text(json.dumps(MANUAL))
    monkeypatch.setenv(variable, value)
    line = _refused(cli, db_url, isolated_environment, "gateway")
    assert line == f"openclaw: error: environment: {message}"


def test_fallback_false_is_false_and_the_environment_applies_without_the_file(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openclaw.app import load_settings

    config = _gateway_config(isolated_environment)
    config.write_text(json.dumps({"agent": {"fallback": False}}))
    assert load_settings().gateway.use_fallback is False
    config.write_text("{}")
    assert load_settings().gateway.use_fallback is True
    for off in ("false", "0", "no", "off"):
        monkeypatch.setenv("USE_FALLBACK", off)
        assert load_settings().gateway.use_fallback is False
    monkeypatch.setenv("USE_FALLBACK", "false")
    config.write_text(json.dumps({"agent": {"fallback": True}}))  # the file wins, as openclaw-rs
    assert load_settings().gateway.use_fallback is True


def test_overrides_and_defaults(isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openclaw.app import load_settings

    monkeypatch.delenv("HTTP_PORT")  # the default, 3100
    config = _gateway_config(isolated_environment)
    config.write_text(
        json.dumps(
            {
                "telegram": {"bot_token": "file-token", "allowed_user_ids": "1, 2"},
                "discord": {"bot_token": "", "api_base": "https://d.example/api/"},
                "database": {"url": " postgresql://c@h/db "},
                "sessions": {"backend": "dual"},
                "outbox": {"memory_entries": 5},
            }
        )
    )
    settings = load_settings()
    gateway = settings.gateway
    assert gateway.telegram.bot_token == "file-token" and gateway.telegram.allowed_user_ids == (1, 2)
    assert not gateway.discord.enabled and gateway.discord.api_base == "https://d.example/api"
    assert (gateway.bind, gateway.port, gateway.agent_name) == ("127.0.0.1", 3100, "main")
    assert settings.config_database_url == "postgresql://c@h/db" and settings.sessions_backend == "dual"
    assert settings.outbox_limits == {"max_entries": 1_000_000, "memory_entries": 5}
    assert settings.llm.problem is not None  # no openclaw-manual.json: the gateway serves without
    for name, value in {
        "TELEGRAM_BOT_TOKEN": "env-token",
        "ALLOWED_USER_IDS": "7,8",
        "HTTP_PORT": "4100",
        "HTTP_BIND": "0.0.0.0",
        "AGENT_NAME": "ops",
        "MODEL": "fake/m1",
        "DATABASE_URL": "postgresql://e@h/db",
        "OPENCLAW_SESSIONS_BACKEND": "sqlite",
        "DISCORD_API_BASE": "https://ignored.example",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    gateway = settings.gateway
    assert gateway.telegram.bot_token == "env-token" and gateway.telegram.allowed_user_ids == (7, 8)
    assert (gateway.bind, gateway.port, gateway.agent_name, str(gateway.model)) == (
        "0.0.0.0",
        4100,
        "ops",
        "fake/m1",
    )
    assert gateway.discord.api_base == "https://d.example/api"  # the file's api_base wins
    assert settings.env_database_url == "postgresql://e@h/db" and settings.sessions_backend == "sqlite"


def test_unknown_keys_are_ignored_as_openclaw_rs_ignores_them(isolated_environment: Path) -> None:
    """openclaw-rs's own sections and keys, and a newer openclaw-rs's, are no error here."""
    from openclaw.app import load_settings

    _gateway_config(isolated_environment).write_text(
        json.dumps(
            {
                "telegram": {"bot_token": "t", "parse_mode": "HTML"},
                "agent": {"sandbox": {"future_limit": 3}, "temperature": 0.2},
                "memory": {"backend": "sqlite"},
                "webhook": None,
            }
        )
    )
    (isolated_environment / "openclaw-manual.json").write_text(
        json.dumps(_merged(MANUAL, {"meta": {"lastTouchedVersion": "1"}, "agents": {"list": []}}))
    )
    settings = load_settings(require_models=True)
    assert settings.gateway.telegram.bot_token == "t" and settings.llm.fallbacks[0].model == "m1"


async def test_settings_are_read_once_and_passed_down(
    isolated_environment: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the edge loaded the settings, nothing below it reads a config file or the
    environment again: with both files broken afterwards, the runtime opens from the
    settings it was given, sandbox, outbox and LLM log included."""
    from openclaw.app import load_settings, open_runtime
    from openclaw.db.target import TargetSource

    config = _gateway_config(isolated_environment)
    config.write_text(
        json.dumps(
            {
                "agent": {"sandbox": {"max_exec_timeout_secs": 7, "turn_timeout_secs": 9}},
                "llm_log": {"capacity": 3},
                "database": {"url": db_url},
            }
        )
    )
    (isolated_environment / "openclaw-manual.json").write_text(json.dumps(MANUAL))
    settings = load_settings(require_models=True)
    config.write_text('{"agent": "broken", "database": 5}')
    (isolated_environment / "openclaw-manual.json").write_text("[")
    monkeypatch.setenv("OPENCLAW_SESSIONS_BACKEND", "nonsense")
    target = settings.database_target()
    assert target.source is TargetSource.CONFIG and target.url == db_url
    runtime = await open_runtime(target, home=isolated_environment, settings=settings)
    try:
        assert runtime.llm_log._entries.maxlen == 3
        assert runtime.agent.turn_timeout_s == 9
        exec_spec = next(spec for spec in runtime.agent.tools.specs() if spec.name == "exec")
        assert "at most 7 s" in exec_spec.description
    finally:
        await runtime.close()


class _Gated:
    """A provider whose calls wait for `release`: it counts the calls in flight."""

    name = "fake"

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.release = asyncio.Event()

    async def chat(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return ChatResult(Message("assistant", "ok"), finish_reason="stop")


@pytest.mark.parametrize("limit", [1, 2])
async def test_max_concurrent_limits_the_llm_calls_in_flight(limit: int) -> None:
    """agents.defaults.maxConcurrent is a real limit: more calls wait for a slot."""
    config = parse_llm_config(
        _merged(MANUAL, {"agents": {"defaults": {"maxConcurrent": limit}}}), Path("m.json")
    )
    provider = _Gated()
    router = Router(config, {"fake": provider}, LlmLog(None))
    calls = [asyncio.create_task(router.chat([Message("user", "hi")])) for _ in range(3)]
    for _ in range(20):  # let every call start that may
        await asyncio.sleep(0)
    assert provider.in_flight == limit
    provider.release.set()
    results = await asyncio.gather(*calls)
    assert [r.result.message.content for r in results] == ["ok"] * 3
    assert provider.most == limit
