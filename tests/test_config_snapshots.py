from __future__ import annotations

import json
from pathlib import Path

import psycopg

from openclaw.context.config_snapshots import (
    config_history,
    previous_snapshot,
    scrub_snapshots,
    snapshot_config,
)
from openclaw.context.redact import Redactor
from openclaw.db.tables import TABLES
from tests.samples import MANUAL, SECRETS


async def _all_text(conn: psycopg.AsyncConnection) -> str:
    parts = []
    for table in TABLES:
        rows = await (await conn.execute(f"SELECT t::text FROM {table} t")).fetchall()
        parts += [r[0] for r in rows]
    return "\n".join(parts)


async def test_secrets_appear_nowhere_in_the_database(conn: psycopg.AsyncConnection, tmp_path: Path) -> None:
    redactor = Redactor.for_home(tmp_path)
    await snapshot_config(conn, path="/c.json", config=MANUAL, redactor=redactor, host="nixos")
    rotated = json.loads(json.dumps(MANUAL))
    rotated["models"]["providers"]["moonshot"]["apiKey"] = "sk-moonshot-rotated"
    result = await snapshot_config(conn, path="/c.json", config=rotated, redactor=redactor, host="nixos")
    text = await _all_text(conn)
    for secret in [*SECRETS, "sk-moonshot-rotated"]:
        assert secret not in text
    assert result.created and result.snapshot.changed_keys == ["models"]  # a rotated key shows as a change


async def test_unchanged_config_adds_no_row_unless_forced(
    conn: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    redactor = Redactor.for_home(tmp_path)
    first = await snapshot_config(conn, path="/c.json", config={"a": 1, "b": 2}, redactor=redactor, host="h")
    assert first.created and first.previous is None and first.snapshot.changed_keys == ["a", "b"]
    same = await snapshot_config(conn, path="/c.json", config={"b": 2, "a": 1}, redactor=redactor, host="h")
    assert not same.created and same.snapshot.id == first.snapshot.id
    forced = await snapshot_config(
        conn,
        path="/c.json",
        config={"a": 1, "b": 2},
        redactor=redactor,
        host="h",
        force=True,
        source="watchdog",
    )
    assert (
        forced.created and forced.snapshot.changed_keys == [] and forced.snapshot.change_source == "watchdog"
    )
    assert len(await config_history(conn, path="/c.json")) == 2


async def test_changed_keys_follow_each_path_and_host(conn: psycopg.AsyncConnection, tmp_path: Path) -> None:
    redactor = Redactor.for_home(tmp_path)

    async def snap(path: str, host: str, config: dict[str, object]) -> list[str] | None:
        result = await snapshot_config(conn, path=path, config=config, redactor=redactor, host=host)
        return result.snapshot.changed_keys

    assert await snap("/manual.json", "nixos", {"models": 1, "agents": 1}) == ["models", "agents"]
    assert await snap("/gateway.json", "nixos", {"telegram": 1}) == ["telegram"]
    # Compared with the previous snapshot of the same file, not the newest of any file.
    assert await snap("/manual.json", "nixos", {"models": 2, "agents": 1}) == ["models"]
    # Same path on another machine has a history of its own.
    assert await snap("/manual.json", "g731", {"models": 2, "agents": 1}) == ["models", "agents"]
    assert await snap("/gateway.json", "nixos", {"telegram": 1, "discord": 1}) == ["discord"]
    latest = (await config_history(conn, path="/manual.json", host="nixos"))[0]
    previous = await previous_snapshot(conn, latest)
    assert previous is not None and previous.config_json == {"models": 1, "agents": 1}


async def test_header_secrets_never_reach_a_snapshot(conn: psycopg.AsyncConnection, tmp_path: Path) -> None:
    """Issue 12: a provider's `X-Custom-Auth` header was stored in plain text."""
    redactor = Redactor.for_home(tmp_path)
    provider = {
        "baseUrl": "https://llm.example/v1",
        "headers": {"X-Custom-Auth": "custom-SECRET-1", "Content-Type": "application/json"},
    }
    config = {"models": {"providers": {"custom": provider}}, "notes": "the staging password is hunter2"}
    first = await snapshot_config(conn, path="/c.json", config=config, redactor=redactor, host="h")
    provider["headers"] = {"X-Custom-Auth": "custom-SECRET-2", "Content-Type": "application/json"}
    second = await snapshot_config(conn, path="/c.json", config=config, redactor=redactor, host="h")
    text = await _all_text(conn)
    assert "custom-SECRET" not in text and "hunter2" not in text
    assert second.created and second.snapshot.changed_keys == ["models"]  # the rotation shows
    stored = first.snapshot.config_json["models"]["providers"]["custom"]["headers"]
    assert stored == {"X-Custom-Auth": redactor.marker("custom-SECRET-1"), "Content-Type": "application/json"}
    assert first.snapshot.config_json["notes"] == f"the staging password is {redactor.marker('hunter2')}"


async def test_scrub_applies_the_new_rules_to_old_rows(conn: psycopg.AsyncConnection, tmp_path: Path) -> None:
    await conn.execute(
        "INSERT INTO config_snapshots (config_path, config_json) VALUES ('/c.json', %s)",
        (json.dumps({"p": {"headers": {"X-Custom-Auth": "custom-SECRET-9", "Accept": "*/*"}}}),),
    )
    assert await scrub_snapshots(conn, Redactor.for_home(tmp_path)) == 1
    text = await _all_text(conn)
    assert "custom-SECRET" not in text and "*/*" in text
