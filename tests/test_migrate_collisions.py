"""`openclaw migrate-sessions` when a session key is not the file's alone: another agent's
file has it (a free-form webhook key, orphan messages' key, a legacy key both kept), or
Postgres has it for another agent. The session is imported as KEY#AGENT, the rename is
recorded and listed, `sessions verify` follows it, and a message that is not imported
(for any reason) gives exit code 1. Nothing is left behind quietly."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from openclaw.chat import Message, Role
from openclaw.db import Database
from openclaw.sessions.importer import FileReport, import_file
from openclaw.sessions.postgres_store import PostgresSessionStore
from openclaw.sessions.verify import verify_file
from tests.conftest import Cli
from tests.sessions_support import write_rust_db

MS = 1_750_000_000_000
AGENTS = ("main", "helper")


def sessions_db(home: Path, agent: str) -> Path:
    return home / "agents" / agent / "sessions.db"


def write_shared(home: Path, agent: str) -> Path:
    """An agent's file with a session of its own, the webhook key `order-123` (a session
    row in each agent's file) and orphan messages under `cron:shared:gone`."""
    path = sessions_db(home, agent)
    write_rust_db(
        path,
        [
            (f"tg:{agent}:1:1", agent, "m", MS, MS + 10, 5),
            ("order-123", agent, "m", MS, MS + 20, 7),
        ],
        [
            (f"tg:{agent}:1:1", "user", f"hi from {agent}", None, None, None, MS + 1),
            ("order-123", "user", f"order for {agent}", None, None, None, MS + 2),
            ("order-123", "assistant", f"shipped by {agent}", None, None, None, MS + 3),
            ("cron:shared:gone", "user", f"orphan of {agent}", None, None, None, MS + 4),
        ],
    )
    return path


def renames_of(report: FileReport) -> dict[str, str]:
    return {r.original_key: r.session_key for r in report.renames}


async def contents(database: Database, key: str) -> list[str]:
    async with database.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id"
                " WHERE s.session_key = %s ORDER BY m.id",
                (key,),
            )
        ).fetchall()
    return [row[0] for row in rows]


async def recorded(database: Database) -> set[tuple[str, str, str]]:
    async with database.connection() as conn:
        rows = await (
            await conn.execute("SELECT session_key, original_key, agent_name FROM session_renames")
        ).fetchall()
    return {(a, b, c) for a, b, c in rows}


async def test_orphan_and_webhook_keys_of_two_agents_are_renamed(
    database: Database, isolated_environment: Path
) -> None:
    main = await import_file(database, write_shared(isolated_environment, "main"))
    assert main.ok and main.messages_inserted == 4
    helper = await import_file(database, write_shared(isolated_environment, "helper"))
    # before: 3 of helper's messages were "conflicts", not imported, and the run said ok
    assert helper.skipped_messages == 0 and helper.messages_inserted == 4 and helper.ok
    assert not main.renames
    assert renames_of(helper) == {
        "order-123": "order-123#helper",
        "cron:shared:gone": "cron:shared:gone#helper",
    }
    assert {r.reason for r in helper.renames} == {"key held by agent 'main'"}
    assert not helper.conflicts and helper.sessions_inserted == 3
    assert await contents(database, "order-123") == ["order for main", "shipped by main"]
    assert await contents(database, "order-123#helper") == ["order for helper", "shipped by helper"]
    assert await contents(database, "cron:shared:gone#helper") == ["orphan of helper"]
    assert await recorded(database) == {
        ("order-123#helper", "order-123", "helper"),
        ("cron:shared:gone#helper", "cron:shared:gone", "helper"),
    }
    info = await PostgresSessionStore(database, "helper").get_session("order-123#helper")
    assert info is not None and info.agent_name == "helper" and info.total_tokens == 7


async def test_rerun_stores_nothing_twice_and_keeps_the_renames(
    database: Database, isolated_environment: Path
) -> None:
    paths = {agent: write_shared(isolated_environment, agent) for agent in AGENTS}
    first = {agent: await import_file(database, paths[agent]) for agent in AGENTS}
    # again, the other way round: the renames come from session_renames, not from the order
    again = {agent: await import_file(database, paths[agent]) for agent in reversed(AGENTS)}
    for agent in AGENTS:
        assert (again[agent].messages_inserted, again[agent].messages_present) == (0, 4)
        assert again[agent].sessions_inserted == 0 and again[agent].ok
    for agent in AGENTS:
        assert renames_of(again[agent]) == renames_of(first[agent])
    assert renames_of(again["helper"]) == {
        "order-123": "order-123#helper",
        "cron:shared:gone": "cron:shared:gone#helper",
    }
    async with database.connection() as conn:
        counts = await (
            await conn.execute("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM sessions)")
        ).fetchone()
    assert counts == (8, 6)
    assert len(await recorded(database)) == 2


async def test_key_already_in_postgres_for_another_agent(
    database: Database, isolated_environment: Path
) -> None:
    other = PostgresSessionStore(database, "other")
    await other.create_session("order-123", "other")
    await other.append_message("order-123", Message(Role.USER, content="the other agent's order"))
    report = await import_file(database, write_shared(isolated_environment, "main"))
    assert report.skipped_messages == 0 and report.messages_inserted == 4 and report.ok
    assert renames_of(report) == {"order-123": "order-123#main"}
    assert [r.reason for r in report.renames] == ["key held by agent 'other'"]
    assert await contents(database, "order-123") == ["the other agent's order"]  # untouched
    assert await contents(database, "order-123#main") == ["order for main", "shipped by main"]
    verified = await verify_file(database, sessions_db(isolated_environment, "main"))
    assert verified.ok and verified.renamed_sessions == 1, verified.differences


async def test_legacy_key_kept_by_two_agents(database: Database, isolated_environment: Path) -> None:
    """Each file has the legacy `tg:42:777` and its new form `tg:{agent}:0:777`: the legacy
    key is kept (openclaw-rs did so) and said so, and the second agent's is renamed."""
    paths = {}
    for i, agent in enumerate(AGENTS):
        paths[agent] = sessions_db(isolated_environment, agent)
        write_rust_db(
            paths[agent],
            [("tg:42:777", agent, "", MS, MS, 0), (f"tg:{agent}:0:777", agent, "", MS, MS, 0)],
            [
                ("tg:42:777", "user", f"old days of {agent}", None, None, None, MS + i),
                (f"tg:{agent}:0:777", "user", f"new days of {agent}", None, None, None, MS + 5),
            ],
        )
    reports = {agent: await import_file(database, paths[agent]) for agent in AGENTS}
    for agent in AGENTS:
        assert reports[agent].skipped_messages == 0 and reports[agent].messages_inserted == 2
    for agent in AGENTS:
        assert reports[agent].ok and not reports[agent].conflicts  # no longer called a conflict
        assert reports[agent].legacy_kept == [
            f"tg:42:777: kept its legacy key, the file has tg:{agent}:0:777 too"
        ]
    assert not reports["main"].renames
    assert renames_of(reports["helper"]) == {"tg:42:777": "tg:42:777#helper"}
    assert await contents(database, "tg:42:777") == ["old days of main"]
    assert await contents(database, "tg:42:777#helper") == ["old days of helper"]
    for agent in AGENTS:
        assert (await verify_file(database, paths[agent])).ok


async def test_verify_follows_renames(database: Database, isolated_environment: Path) -> None:
    paths = {agent: write_shared(isolated_environment, agent) for agent in AGENTS}
    await import_file(database, paths["main"])
    before = await verify_file(database, paths["helper"])  # helper's keys are main's sessions
    assert {d.session_key: d.problem for d in before.differences} == {
        "tg:helper:1:1": "missing in Postgres",
        "order-123": "in Postgres for agent 'main', not 'helper': not imported",
        "cron:shared:gone": "in Postgres for agent 'main', not 'helper': not imported",
    }
    await import_file(database, paths["helper"])
    for agent, renamed in (("main", 0), ("helper", 2)):
        report = await verify_file(database, paths[agent])
        assert report.ok, report.differences
        assert (report.renamed_sessions, report.only_in_postgres, report.messages_only_in_postgres) == (
            renamed,
            0,
            0,
        )
    async with database.connection() as conn:
        await conn.execute("UPDATE messages SET content = 'tampered' WHERE content = 'shipped by helper'")
    report = await verify_file(database, paths["helper"])
    assert {d.session_key: d.problem for d in report.differences} == {
        "order-123#helper": "message 2 differs (content)"
    }
    assert (await verify_file(database, paths["main"])).ok


def test_renamed_keys_are_valid_and_deterministic() -> None:
    from openclaw.sessions.keys import (
        MAX_SESSION_KEY_CHARS,
        hashed_renamed_key,
        renamed_key,
        renamed_key_candidates,
        session_key_problem,
    )

    assert renamed_key("order-123", "helper") == "order-123#helper"
    long = "w" * MAX_SESSION_KEY_CHARS
    for key, agent in ((long, "helper"), ("order-123", "bad\x00agent"), (long[:-3], "a" * 64)):
        new = renamed_key(key, agent)
        assert session_key_problem(new) is None and new == renamed_key(key, agent)
        assert new == hashed_renamed_key(key, agent)
    assert renamed_key(long, "helper") != renamed_key(long, "main")
    assert renamed_key(long, "helper") != renamed_key(long[:-1] + "x", "helper")  # the hash tells them apart
    first, second = renamed_key_candidates("order-123", "helper")
    assert first == "order-123#helper" and second.startswith("order-123#helper~")
    assert session_key_problem(second) is None


async def test_long_key_and_a_taken_rename(database: Database, isolated_environment: Path) -> None:
    from openclaw.sessions.keys import MAX_SESSION_KEY_CHARS, hashed_renamed_key, renamed_key

    long = "webhook-" + "k" * (MAX_SESSION_KEY_CHARS - len("webhook-"))
    async with database.connection() as conn:
        await conn.execute(
            "INSERT INTO sessions (session_key, agent_name) VALUES (%s, 'other'), ('order-123', 'other'),"
            " ('order-123#main', 'someone')",
            (long,),
        )
    path = sessions_db(isolated_environment, "main")
    write_rust_db(
        path,
        [(long, "main", "", MS, MS, 0), ("order-123", "main", "", MS, MS, 0)],
        [
            (long, "user", "long key", None, None, None, MS),
            ("order-123", "user", "taken twice", None, None, None, MS + 1),
        ],
    )
    report = await import_file(database, path)
    assert report.skipped_messages == 0 and report.messages_inserted == 2 and report.ok
    assert renames_of(report) == {
        long: renamed_key(long, "main"),
        "order-123": hashed_renamed_key("order-123", "main"),  # its first choice is someone's
    }
    assert len(renamed_key(long, "main")) == MAX_SESSION_KEY_CHARS
    assert await contents(database, hashed_renamed_key("order-123", "main")) == ["taken twice"]
    again = await import_file(database, path)
    assert renames_of(again) == renames_of(report) and again.messages_inserted == 0
    assert (await verify_file(database, path)).ok


def test_cli_exit_code_0_with_renames_only(
    capsys: pytest.CaptureFixture[str], db_url: str, isolated_environment: Path
) -> None:
    for agent in AGENTS:
        write_shared(isolated_environment, agent)
    cli = Cli(capsys, db_url)
    result = cli("migrate-sessions")
    assert result.exit_code == 0, result.stdout + result.stderr  # renames only: everything imported
    main = sessions_db(isolated_environment, "main")  # files go in their agents' order: helper first
    assert f"renamed in {main}: order-123 -> order-123#main (key held by agent 'helper')" in result.stdout
    assert "not imported" not in result.stderr
    as_json = cli("migrate-sessions", "--json")
    assert as_json.exit_code == 0
    files = {Path(f["path"]).parent.name: f for f in json.loads(as_json.stdout)["files"]}
    assert {r["original_key"]: r["session_key"] for r in files["main"]["renames"]} == {
        "order-123": "order-123#main",
        "cron:shared:gone": "cron:shared:gone#main",
    }
    assert files["helper"]["renames"] == [] and files["main"]["messages_present"] == 4
    verify = cli("sessions", "verify")
    assert verify.exit_code == 0 and "verified" in verify.stdout
    assert "2 sessions compared under the key migrate-sessions renamed them to" in verify.stdout


def test_cli_exit_code_1_when_a_message_is_not_imported(
    capsys: pytest.CaptureFixture[str], db_url: str, isolated_environment: Path
) -> None:
    cli = Cli(capsys, db_url)
    odd = sessions_db(isolated_environment, "odd")  # a message of a role openclaw has not
    write_rust_db(
        odd,
        [("tg:odd:1:1", "odd", "", MS, MS, 0)],
        [
            ("tg:odd:1:1", "user", "call it", None, None, None, MS),
            ("tg:odd:1:1", "function", "a role of old", None, None, None, MS + 1),
        ],
    )
    result = cli("migrate-sessions", str(odd))
    assert result.exit_code == 1
    assert "error: 1 message of 1 file was not imported" in result.stderr
    assert "incomplete: 1 not imported" in result.stdout
    assert "1 messages NOT imported (unknown role 'function': 1)" in result.stdout
    as_json = cli("migrate-sessions", "--json", str(odd))
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["files"][0]["skipped"] == {"unknown role 'function'": 1}
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (1,)


async def test_messages_a_mirror_put_in_the_other_agents_session(
    database: Database, isolated_environment: Path
) -> None:
    """Dual-write mirrored helper's `order-123` into main's session of that key (same uids):
    the renamed session takes them through the merge, which finds them present, where a
    COPY into the new session would have failed on their uids. Verify says where they are."""
    from openclaw.outbox import Flusher, Spool
    from openclaw.sessions.mirror import OUTBOX_HANDLERS, DualSessionStore
    from openclaw.sessions.sqlite_store import SqliteSessionStore

    await import_file(database, write_shared(isolated_environment, "main"))
    spool = Spool(isolated_environment / "outbox" / "spool.db")
    path = sessions_db(isolated_environment, "helper")
    store = DualSessionStore(SqliteSessionStore(path, "helper"), spool)
    await store.create_session("order-123", "helper")
    await store.append_messages("order-123", [Message(Role.USER, content=f"mirrored {i}") for i in range(2)])
    assert await Flusher(spool, database, OUTBOX_HANDLERS).drain(timeout_s=30)
    await store.close()
    spool.close()
    assert await contents(database, "order-123") == [
        "order for main",
        "shipped by main",
        "mirrored 0",
        "mirrored 1",
    ]
    report = await import_file(database, path)
    assert report.ok and (report.messages_inserted, report.messages_present) == (0, 2)
    assert renames_of(report) == {"order-123": "order-123#helper"}
    verified = await verify_file(database, path)
    assert {d.session_key: d.problem for d in verified.differences} == {
        "order-123#helper": "message 1 missing in Postgres"
    }
