from __future__ import annotations

import json
from pathlib import Path

import pytest

from openclaw.app import OUTBOX_HANDLERS as HANDLERS
from openclaw.db import Database
from openclaw.errors import ConfigError
from openclaw.llm.config import Api, ModelRef, load_llm_config
from openclaw.llm.log import LlmLog
from openclaw.llm.records import LlmCall
from openclaw.outbox import Flusher, Spool

MANUAL = {
    "models": {
        "providers": {
            "moonshot": {
                "baseUrl": "https://api.moonshot.ai/v1/",
                "apiKey": "sk-x",
                "models": [{"id": "kimi-k2", "reasoning": True, "contextWindow": 128000}],
            },
            "anthropic": {
                "baseUrl": "https://api.anthropic.com",
                "apiKey": "sk-ant",
                "models": ["claude-sonnet-4"],
            },
            "openrouter": {"baseUrl": "https://openrouter.ai/api/v1", "api": "openai-completions"},
            "local": {"baseUrl": "http://127.0.0.1:11434/v1", "api": "ollama", "models": [{"id": "qwen3"}]},
        },
        "fallbacks": [
            "moonshot/kimi-k2",
            "openrouter/anthropic/claude-3.5-sonnet",
            "anthropic/claude-sonnet-4",
        ],
    },
    "agents": {"defaults": {"timeoutSeconds": 120, "maxConcurrent": 3}},
    "channels": {"telegram": {"botToken": "x"}},
}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "openclaw-manual.json"
    path.write_text(json.dumps(document))
    return path


def test_load_config(tmp_path: Path) -> None:
    config = load_llm_config(write(tmp_path, MANUAL))
    assert config.providers["moonshot"].base_url == "https://api.moonshot.ai/v1"
    assert config.providers["anthropic"].api is Api.ANTHROPIC
    assert config.providers["local"].api is Api.OPENAI
    assert config.fallbacks[1] == ModelRef("openrouter", "anthropic/claude-3.5-sonnet")
    assert config.default_model == ModelRef("moonshot", "kimi-k2")
    assert (config.timeout_s, config.max_concurrent) == (120.0, 3)
    chain = config.chain(ModelRef.parse("local/qwen3"))
    assert [str(m) for m in chain] == [
        "local/qwen3",
        "moonshot/kimi-k2",
        "openrouter/anthropic/claude-3.5-sonnet",
        "anthropic/claude-sonnet-4",
    ]
    assert "sk-x" not in repr(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["models"]["providers"]["moonshot"].pop("baseUrl"),
            "provider 'moonshot' in .* has no baseUrl",
        ),
        (
            lambda d: d["models"]["fallbacks"].append("nobody/x"),
            "names nobody/x, but there is no provider 'nobody'",
        ),
        (
            lambda d: d["models"]["fallbacks"].append("moonshot/kimi-k9"),
            "which provider 'moonshot' does not list",
        ),
        (lambda d: d["models"]["fallbacks"].append("no-slash"), "is not of the form provider/model"),
        (lambda d: d["models"]["providers"]["local"].update(api="grpc"), "unknown api 'grpc'"),
        (
            lambda d: d["agents"]["defaults"].update(timeoutSeconds=-1),
            r"agents\.defaults\.timeoutSeconds must be a positive number, got -1",
        ),
        (lambda d: d.update(models={}), "no providers in"),
    ],
)
def test_bad_config(tmp_path: Path, change: object, message: str) -> None:
    document = json.loads(json.dumps(MANUAL))
    change(document)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        load_llm_config(write(tmp_path, document))


def test_missing_and_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model config not found"):
        load_llm_config(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_llm_config(tmp_path / "bad.json")


async def test_log_ring_buffer_and_persistence(tmp_path: Path, database: Database) -> None:
    spool = Spool(tmp_path / "spool.db")
    llm_log = LlmLog(spool, capacity=3, host="nixos")
    calls = [
        LlmCall(model="kimi-k2", latency_ms=100 * (i + 1), error="boom" if i == 4 else None) for i in range(5)
    ]
    for call in calls:
        llm_log.record(call)
    assert [c.id for c in llm_log.recent()] == [c.id for c in reversed(calls[2:])]
    assert llm_log.get(calls[0].id) is None and llm_log.get(calls[4].id) is calls[4]
    stats = llm_log.stats()
    assert (stats.total_recorded, stats.buffered, stats.errors, stats.avg_latency_ms) == (5, 3, 1, 300.0)
    spool.sync()  # record() hands calls to the spool's writer thread, which commits them shortly
    assert spool.pending() == 5  # every call, not only the buffered ones, is on its way
    assert await Flusher(spool, database, HANDLERS).drain(timeout_s=30)
    async with database.connection() as conn:
        rows = await (
            await conn.execute("SELECT count(*), count(*) FILTER (WHERE host = 'nixos') FROM llm_calls")
        ).fetchone()
    assert rows == (5, 5)


def test_log_capacity_setting() -> None:
    from openclaw.llm.log import configured_capacity

    assert configured_capacity({}) == 256 and configured_capacity({"capacity": 10}) == 10
    for bad in (0, -1, "many", True, 10**9):
        with pytest.raises(ConfigError, match=r"llm_log\.capacity"):
            configured_capacity({"capacity": bad})
