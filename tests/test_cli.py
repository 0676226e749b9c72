"""Every CLI command: the happy path and its bad-input path, against a real database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from openclaw.db.migrate import load_migrations
from tests.conftest import Cli
from tests.samples import MANUAL, SECRETS


def count(db_url: str, table: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_help_everywhere(cli: Cli) -> None:
    for args in [[], ["db"], ["deploy"], ["config"], ["issues"], ["task"], ["context"]]:
        result = cli(*args, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout


# ---- db ---------------------------------------------------------------------------------


def test_db_migrate_status_url(cli: Cli, empty_db_url: str) -> None:
    cli.database_url = empty_db_url
    status = cli("db", "status", "--json")
    info = json.loads(status.stdout)
    assert info["migrations"]["pending"] and info["tables"]["known_issues"] is None
    first = cli("db", "migrate")
    assert first.exit_code == 0 and "applied 0001_init.sql" in first.stdout
    again = cli("db", "migrate")
    assert f"schema is up to date ({len(load_migrations())} migrations applied)" in again.stdout
    info = json.loads(cli("db", "status", "--json").stdout)
    assert info["server"]["kind"] == "url" and info["server"]["source"] == "option"
    assert info["migrations"]["pending"] == [] and info["tables"]["known_issues"] == 0
    assert info["database"]["size_bytes"] > 0
    human = cli("db", "status").stdout
    assert "up to date" in human and "known_issues" in human
    assert cli("db", "url").stdout.strip() == empty_db_url


def test_status_hides_the_password(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    with_password = db_url + " password=hunter2-secret"
    result = Cli(capsys, with_password)("db", "status", "--json")
    assert result.exit_code == 0, result.stderr  # trust auth ignores the password
    assert "hunter2-secret" not in result.stdout and "password=***" in result.stdout


def test_unreachable_database_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://openclaw:pw-secret@127.0.0.1:1/openclaw"
    result = Cli(capsys, url)("issues", "list")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "openclaw: error: cannot connect to postgresql://openclaw:***@"
    )
    assert "pw-secret" not in result.stderr


def test_database_url_from_the_gateway_config(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"telegram": {"bot_token": "x"}, "database": {"url": db_url}}))
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    info = json.loads(Cli(capsys, None)("db", "status", "--json").stdout)
    assert info["server"]["source"] == "config"
    config.write_text("{not json")
    result = Cli(capsys, None)("db", "status")
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == f"openclaw: error: invalid JSON in {config}: Expecting property name "
        "enclosed in double quotes at line 1 column 2"
    )


def test_db_stop_refuses_a_url_database(cli: Cli) -> None:
    result = cli("db", "stop")
    assert result.exit_code == 2 and "not the embedded server" in result.stderr


# ---- issues -------------------------------------------------------------------------------


def test_issues_commands(cli: Cli) -> None:
    assert (
        cli("issues", "add", "Bot replies twice", "--severity", "medium", "--component", "gateway").exit_code
        == 0
    )
    added = cli(
        "issues",
        "add",
        "DB pool exhausted",
        "--severity",
        "critical",
        "--component",
        "core",
        "--description",
        "under load",
        "--workaround",
        "raise max_size",
        "--json",
    )
    issue = json.loads(added.stdout)
    assert issue["severity"] == "critical" and issue["workaround"] == "raise max_size"
    listed = json.loads(cli("issues", "list", "--json").stdout)
    assert [i["title"] for i in listed] == ["DB pool exhausted", "Bot replies twice"]
    assert "DB pool exhausted" in cli("issues", "list").stdout
    resolved = cli("issues", "resolve", str(issue["id"]))
    assert resolved.exit_code == 0 and "now resolved" in resolved.stdout
    assert "already resolved" in cli("issues", "resolve", str(issue["id"])).stdout
    assert "now wontfix" in cli("issues", "resolve", "1", "--wontfix").stdout
    assert cli("issues", "list").stdout.strip() == "no open issues"
    everything = json.loads(cli("issues", "list", "--status", "all", "--json").stdout)
    assert {i["status"] for i in everything} == {"resolved", "wontfix"}
    shown = cli("issues", "show", str(issue["id"]))
    assert "workaround: raise max_size" in shown.stdout and "under load" in shown.stdout
    assert "now open" in cli("issues", "reopen", "1").stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["issues", "add", "x", "--severity", "urgent", "--component", "core"], 2, "'urgent' is not one of"),
        (["issues", "add", "x", "--severity", "low", "--component", "kernel"], 2, "'kernel' is not one of"),
        (["issues", "add", "  ", "--severity", "low", "--component", "core"], 2, "title must not be empty"),
        (["issues", "add", "x", "--component", "core"], 2, "Missing option '--severity'"),
        (["issues", "list", "--status", "closed"], 2, "'closed' is not one of"),
        (["issues", "resolve", "4242"], 1, "no issue with id 4242"),
        (["issues", "show", "4242"], 1, "no issue with id 4242"),
        (["issues", "resolve", "abc"], 2, "Invalid value for 'ID': Input should be a valid integer"),
    ],
)
def test_issues_bad_input(cli: Cli, db_url: str, args: list[str], code: int, message: str) -> None:
    result = cli(*args)
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert count(db_url, "known_issues") == 0


# ---- task ---------------------------------------------------------------------------------


def test_task_commands(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    logged = cli(
        "task",
        "log",
        "Add Postgres sessions",
        "--category",
        "feature",
        "--files",
        "a.py,b.py",
        "--version",
        "v1.16.0",
        "--json",
    )
    task = json.loads(logged.stdout)
    assert task["git_commit"] == head and task["files_changed"] == ["a.py", "b.py"]
    cli("task", "log", "Fix typo", "--category", "bugfix", "--commit", "abc123")
    tasks = json.loads(cli("task", "list", "--json").stdout)
    assert [t["description"] for t in tasks] == ["Fix typo", "Add Postgres sessions"]
    assert tasks[0]["git_commit"] == "abc123"
    only = json.loads(cli("task", "list", "--category", "feature", "--limit", "5", "--json").stdout)
    assert [t["description"] for t in only] == ["Add Postgres sessions"]
    assert "Fix typo" in cli("task", "list").stdout


def test_task_outside_a_repository_has_no_commit(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    task = json.loads(cli("task", "log", "x", "--json").stdout)
    assert task["git_commit"] is None and task["category"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["task", "log", "x", "--category", "chore"], "'chore' is not one of"),
        (["task", "log", " "], "task description must not be empty"),
        (["task", "list", "--limit", "0"], "Invalid value for '--limit'"),
    ],
)
def test_task_bad_input(cli: Cli, db_url: str, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and message in result.stderr
    assert count(db_url, "task_log") == 0


# ---- context ------------------------------------------------------------------------------


def test_context_commands(cli: Cli) -> None:
    focus = '{"task": "postgres migration", "phase": 3}'
    result = cli("context", "set", "current_focus", focus)
    assert result.exit_code == 0 and result.stderr == ""
    got = cli("context", "get", "current_focus")
    assert json.loads(got.stdout) == {"task": "postgres migration", "phase": 3}
    plain = cli("context", "set", "note", "remember the milk")
    assert "not valid JSON" in plain.stderr and '"remember the milk"' in plain.stderr
    assert json.loads(cli("context", "get", "note").stdout) == "remember the milk"
    entries = json.loads(cli("context", "list", "--json").stdout)
    assert [e["key"] for e in entries] == ["current_focus", "note"]
    assert cli("context", "delete", "note").exit_code == 0
    missing = cli("context", "get", "note")
    assert missing.exit_code == 1 and "no context value under key 'note'" in missing.stderr
    assert cli("context", "delete", "note").exit_code == 1


# ---- deploy -------------------------------------------------------------------------------


def test_deploy_commands(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = json.loads(cli("deploy", "log", "--version", "1.15.0", "--host", "nixos", "--json").stdout)
    assert first["component"] == "gateway" and first["status"] == "active" and first["git_commit"] is None
    cli("deploy", "log", "--version", "1.16.0", "--host", "nixos", "--commit", "abc", "--notes", "pg")
    cli(
        "deploy", "log", "--version", "1.16.0", "--host", "g731", "--service-name", "openclaw-gateway.service"
    )
    cli("deploy", "log", "--version", "1.17.0", "--host", "g731", "--status", "failed")
    current = json.loads(cli("deploy", "list", "--json").stdout)
    assert sorted((d["host"], d["version"], d["status"]) for d in current) == [
        ("g731", "1.16.0", "active"),
        ("nixos", "1.16.0", "active"),
    ]
    history = json.loads(cli("deploy", "list", "--all", "--host", "nixos", "--json").stdout)
    assert [d["status"] for d in history] == ["active", "superseded"]
    assert "openclaw-gateway.service" not in cli("deploy", "list").stdout  # not a column
    assert "1.16.0" in cli("deploy", "list").stdout
    default = json.loads(cli("deploy", "log", "--component", "cli", "--json").stdout)
    assert default["host"] and default["version"]


def test_deploy_bad_status(cli: Cli, db_url: str) -> None:
    result = cli("deploy", "log", "--status", "superseded")
    assert result.exit_code == 2 and "'superseded' is not one of" in result.stderr
    assert count(db_url, "deployments") == 0


# ---- config -------------------------------------------------------------------------------


def test_config_snapshot_history_diff(cli: Cli, db_url: str, isolated_environment: Path) -> None:
    manual = isolated_environment / "openclaw-manual.json"
    manual.write_text(json.dumps(MANUAL))
    first = cli("config", "snapshot")
    assert first.exit_code == 0 and "first snapshot" in first.stdout
    assert "unchanged since snapshot" in cli("config", "snapshot").stdout
    changed = json.loads(json.dumps(MANUAL))
    changed["models"]["providers"]["moonshot"]["apiKey"] = "sk-new-secret"
    changed["models"]["fallbacks"].append("openrouter/x")
    changed["agents"] = {"defaults": {"timeoutSeconds": 300}}
    manual.write_text(json.dumps(changed))
    second = json.loads(cli("config", "snapshot", "--source", "watchdog", "--json").stdout)
    assert second["created"] and second["snapshot"]["changed_keys"] == ["models", "agents"]
    forced = json.loads(cli("config", "snapshot", "--force", "--json").stdout)
    assert forced["created"] and forced["snapshot"]["changed_keys"] == []
    history = json.loads(cli("config", "history", "--json").stdout)
    assert [h["change_source"] for h in history] == ["cli", "watchdog", "cli"]
    diff = cli("config", "diff", str(history[2]["id"]), str(history[1]["id"]))
    assert "~ models.providers.moonshot.apiKey: (secret changed)" in diff.stdout
    assert '+ models.fallbacks[1]: "openrouter/x"' in diff.stdout
    assert "+ agents: " in diff.stdout
    assert "(no differences)" in cli("config", "diff").stdout  # latest (forced) vs the one before
    one = cli("config", "diff", str(history[1]["id"]), "--json")
    assert json.loads(one.stdout)["from"] == history[2]["id"]
    with psycopg.connect(db_url) as conn:
        dump = "".join(r[0] for r in conn.execute("SELECT config_json::text FROM config_snapshots"))
    for secret in [*SECRETS, "sk-new-secret"]:
        assert secret not in dump


def test_config_snapshot_of_another_path(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "gateway.json"
    other.write_text('{"webhook": {"token": "t"}}')
    result = json.loads(cli("config", "snapshot", "--path", str(other), "--json").stdout)
    assert result["snapshot"]["config_path"] == str(other.resolve())
    history = json.loads(cli("config", "history", "--path", str(other), "--json").stdout)
    assert len(history) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "config file not found: "),
        ('{"a": 1,}', "invalid JSON in "),
        ("[1, 2]", "must hold a JSON object, not list"),
    ],
)
def test_config_snapshot_bad_file(
    cli: Cli, db_url: str, isolated_environment: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (isolated_environment / "openclaw-manual.json").write_text(content)
    result = cli("config", "snapshot")
    assert result.exit_code == 1 and message in result.stderr and result.stderr.count("\n") == 1
    assert count(db_url, "config_snapshots") == 0


def test_config_bad_source_and_diff_errors(cli: Cli) -> None:
    assert cli("config", "snapshot", "--source", "robot").exit_code == 2
    nothing = cli("config", "diff")
    assert nothing.exit_code == 0 and nothing.stdout.startswith("no snapshots of")
    assert cli("config", "diff", "1", "2", "3").exit_code == 2
    missing = cli("config", "diff", "77", "78")
    assert missing.exit_code == 1 and "no config snapshot with id 77" in missing.stderr


def test_dump_and_restore(cli: Cli, db_url: str, tmp_path: Path) -> None:
    cli("issues", "add", "survives a restore", "--severity", "high", "--component", "infra")
    backup = tmp_path / "openclaw.dump"
    dumped = cli("db", "dump", "--output", str(backup))
    assert dumped.exit_code == 0 and backup.stat().st_size > 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM known_issues")
    restored = cli("db", "restore", str(backup))
    assert restored.exit_code == 0, restored.stderr
    assert "survives a restore" in cli("issues", "list").stdout
    garbage = tmp_path / "garbage.dump"
    garbage.write_text("not a dump")
    bad = cli("db", "restore", str(garbage))
    assert bad.exit_code == 1 and "pg_restore failed" in bad.stderr
    assert "survives a restore" in cli("issues", "list").stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"a": NaN}', "is not valid JSON"),
        ('{"a": 1e400}', "is not valid JSON"),
        ('{"a": "x\\u0000y"}', "is not valid JSON"),
        ("[" * 5000 + "]" * 5000, "is not valid JSON"),
    ],
)
def test_context_values_postgres_cannot_store_become_strings(cli: Cli, value: str, message: str) -> None:
    result = cli("context", "set", "k", value)
    assert result.exit_code == 0 and message in result.stderr
    assert json.loads(cli("context", "get", "k").stdout) == value


def test_config_files_postgres_cannot_store(cli: Cli, isolated_environment: Path, db_url: str) -> None:
    manual = isolated_environment / "openclaw-manual.json"
    for content, message in [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": "x\\u0000"}', "NUL character"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ]:
        manual.write_text(content)
        result = cli("config", "snapshot")
        assert result.exit_code == 1 and message in result.stderr, result.stderr
    assert count(db_url, "config_snapshots") == 0


def test_unreadable_gateway_config_directory(tmp_path: Path, isolated_environment: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    (locked / "config.json").write_text("{}")
    locked.chmod(0)
    capsh = shutil.which("capsh")
    if capsh is None:
        pytest.skip("capsh is needed to drop root's right to read any file")
    env = {
        **os.environ,
        "GATEWAY_CONFIG": str(locked / "config.json"),
        "OPENCLAW_HOME": str(isolated_environment),
    }
    # As root, drop the capability that ignores file permissions, as for a normal user.
    result = subprocess.run(
        [
            capsh,
            "--drop=cap_dac_override,cap_dac_read_search",
            "--",
            "-c",
            f"{sys.executable} -m openclaw db status",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    locked.chmod(0o700)
    assert "Traceback" not in result.stderr
    assert result.returncode == 1 and "cannot read gateway config" in result.stderr, result.stderr


def test_password_in_url_query_is_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    result = Cli(capsys, "postgresql://u@127.0.0.1:1/db?password=s3cret-query")("issues", "list")
    assert result.exit_code == 1 and "s3cret-query" not in result.stderr and "password=***" in result.stderr


def test_built_at_without_zone_is_local_time(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    import time

    time.tzset()
    try:
        row = json.loads(cli("deploy", "log", "--built-at", "2024-01-01T12:00:00", "--json").stdout)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert row["built_at"].startswith("2024-01-01T17:00:00")
