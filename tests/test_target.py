from __future__ import annotations

import json
from pathlib import Path

import pytest

from openclaw.db.target import TargetSource, redact_url, resolve_target
from openclaw.errors import ConfigError


def test_resolution_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated_environment: Path
) -> None:
    config = tmp_path / "gateway.json"
    config.write_text("{}")
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    embedded = resolve_target(None)
    assert embedded.source is TargetSource.EMBEDDED and embedded.pgdata == isolated_environment / "pgdata"
    config.write_text(json.dumps({"database": {"url": "postgresql://c@h/db"}}))
    assert resolve_target(None).source is TargetSource.CONFIG
    monkeypatch.setenv("DATABASE_URL", "postgresql://e@h/db")
    assert resolve_target(None).url == "postgresql://e@h/db"
    option = resolve_target("postgresql://o:pw@h/db")
    assert (
        option.source is TargetSource.OPTION
        and option.describe() == "postgresql://o:***@h/db (from --database-url)"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"database": "postgresql://x"}', "^gateway config: database must be an object, got a string$"),
        ('{"database": {"url": 5}}', "^gateway config: database.url must be a string, got an integer$"),
        ('{"database": {"url": " "}}', "^gateway config: database.url must not be empty$"),
        ("{", "invalid JSON in"),
    ],
)
def test_bad_gateway_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "gateway.json"
    config.write_text(content)
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    with pytest.raises(ConfigError, match=message):
        resolve_target(None)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://openclaw:openclaw-local@192.168.50.3:5432/openclaw",
            "postgresql://openclaw:***@192.168.50.3:5432/openclaw",
        ),
        ("postgresql://openclaw@127.0.0.1/openclaw", "postgresql://openclaw@127.0.0.1/openclaw"),
        (
            "postgresql://u:p%40ss@[::1]:5432/db?sslmode=require",
            "postgresql://u:***@[::1]:5432/db?sslmode=require",
        ),
        ("host=db user=u password='se cret' dbname=x", "host=db user=u password=*** dbname=x"),
        ("host=db password=secret", "host=db password=***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
