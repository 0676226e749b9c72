"""`openclaw migrate-sessions` and `openclaw sessions verify` on Rust-format SQLite files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from openclaw.chat import Message, Role
from openclaw.db import Database
from openclaw.outbox import Flusher, Spool
from openclaw.sessions import importer
from openclaw.sessions.importer import import_file
from openclaw.sessions.mirror import OUTBOX_HANDLERS as HANDLERS
from openclaw.sessions.mirror import DualSessionStore
from openclaw.sessions.postgres_store import PostgresSessionStore
from openclaw.sessions.sqlite_store import SqliteSessionStore, from_ms
from openclaw.sessions.verify import verify_file
from tests.conftest import Cli
from tests.sessions_support import write_rust_db

MS = 1_740_000_000_000  # 2025-02-19
CALLS = json.dumps(
    [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "exec", "arguments": json.dumps({"command": "ls"})},
        }
    ]
)
SESSIONS = [
    ("tg:main:42:100", "main", "kimi-k2", MS, MS + 5000, 1234),
    ("dc:main:7:55", "main", "", MS + 10, MS + 20, 0),
    ("agent:main:cli:empty", "main", "gpt-4o", MS + 30, MS + 30, 0),  # no messages
    ("tg:42:777", "main", "kimi-k2", MS - 999, MS - 500, 10),  # legacy 3-part key
]
MESSAGES = [
    ("tg:main:42:100", "user", "hello 👋 ünïcode", None, None, None, MS + 1000),
    ("tg:main:42:100", "assistant", None, "thinking…", CALLS, None, MS + 2000),
    ("tg:main:42:100", "tool", "a.txt\nb.txt", None, None, "call_9", MS + 3000),
    ("tg:main:42:100", "assistant", "done ✅", None, None, None, MS + 5000),
    ("dc:main:7:55", "user", "", None, None, None, MS + 15),  # empty content
    ("dc:main:7:55", "assistant", "broken tool json", None, "{not json", None, MS + 16),
    ("dc:main:7:55", "assistant", "nul\x00inside", None, None, None, MS + 20),
    ("tg:42:777", "user", "from the old days", None, None, None, MS - 600),
    ("cron:main:gone", "user", "orphan 1", None, None, None, MS + 40),  # no session row
    ("cron:main:gone", "assistant", "orphan 2", None, None, None, MS + 41),
]


def make_home_file(home: Path, agent: str = "main") -> Path:
    """The sample file, as the given agent's (its keys and agent names say so)."""
    path = home / "agents" / agent / "sessions.db"
    sessions = [(key.replace(":main:", f":{agent}:"), agent, *rest) for key, _, *rest in SESSIONS]
    messages = [(key.replace(":main:", f":{agent}:"), *rest) for key, *rest in MESSAGES]
    write_rust_db(path, sessions, messages)
    return path


def file_hashes(path: Path) -> dict[str, str | None]:
    return {
        suffix: hashlib.sha256(Path(f"{path}{suffix}").read_bytes()).hexdigest()
        if Path(f"{path}{suffix}").exists()
        else None
        for suffix in ("", "-wal")
    }


async def test_round_trip_preserves_every_field_and_time(
    database: Database, isolated_environment: Path
) -> None:
    path = make_home_file(isolated_environment)
    report = await import_file(database, path)
    assert report.ok, report.error
    assert (report.agent, report.sessions_found, report.sessions_inserted) == ("main", 5, 5)
    assert (report.messages_found, report.messages_inserted, report.messages_present) == (10, 10, 0)
    assert (report.orphan_messages, report.legacy_keys, report.repaired_values) == (2, 1, 2)
    pg = PostgresSessionStore(database, "main")
    sqlite = SqliteSessionStore(path, "main")
    for key in ("tg:main:42:100", "dc:main:7:55"):
        theirs, ours = await sqlite.load_messages(key), await pg.load_messages(key)
        if key == "dc:main:7:55":  # the two repaired values
            assert ours[1].tool_calls is None and ours[2].content == "nul\ufffdinside"
            theirs, ours = [theirs[0]], [ours[0]]
        assert ours == theirs
    info = await pg.get_session("tg:main:42:100")
    assert info is not None
    assert (info.model, info.total_tokens, info.channel, info.user_id) == ("kimi-k2", 1234, "telegram", "42")
    assert (info.created_at, info.updated_at) == (from_ms(MS), from_ms(MS + 5000))
    legacy = await pg.get_session("tg:main:0:777")
    assert legacy is not None and legacy.message_count == 1 and legacy.created_at == from_ms(MS - 999)
    orphan = await pg.get_session("cron:main:gone")
    assert orphan is not None and orphan.message_count == 2 and orphan.created_at == from_ms(MS + 40)
    empty = await pg.get_session("agent:main:cli:empty")
    assert empty is not None and empty.message_count == 0 and empty.model == "gpt-4o"
    await sqlite.close()
    async with database.connection() as conn:
        raw = await (
            await conn.execute(
                "SELECT m.tool_calls_json FROM messages m JOIN sessions s ON s.id = m.session_id"
                " WHERE s.session_key = 'dc:main:7:55' AND m.content = 'broken tool json'"
            )
        ).fetchone()
    assert raw == ("{not json",)  # kept, as a JSON string

    again = await import_file(database, path)
    assert (again.sessions_inserted, again.sessions_present) == (0, 5)
    assert (again.messages_inserted, again.messages_present) == (0, 10)
    verified = await verify_file(database, path)
    assert verified.ok, verified.differences


def rust_tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """What openclaw-rs has in a file: its tables' rows and the schema version."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "user_version": conn.execute("PRAGMA user_version").fetchall(),
            "sessions": conn.execute("SELECT * FROM sessions ORDER BY session_key").fetchall(),
            "messages": conn.execute("SELECT * FROM messages ORDER BY id").fetchall(),
            "sqlite_sequence": conn.execute("SELECT * FROM sqlite_sequence").fetchall(),
        }
    finally:
        conn.close()


async def test_source_is_never_modified(database: Database, isolated_environment: Path) -> None:
    """openclaw-rs's tables are never touched. The first import adds openclaw's identity
    table (the file's id, which its messages' uids derive from); later ones write nothing."""
    path = make_home_file(isolated_environment)
    # A live writer keeps un-checkpointed rows in the WAL, as a running openclaw-rs would.
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute(
        "INSERT INTO messages (session_key, role, content, timestamp_ms) VALUES ('tg:main:42:100',"
        " 'user', 'only in the WAL', ?)",
        (MS + 6000,),
    )
    writer.commit()
    before = rust_tables(path)
    assert file_hashes(path)["-wal"] is not None
    report = await import_file(database, path)
    assert report.ok and report.messages_inserted == 11  # the WAL's row too
    assert rust_tables(path) == before
    hashes = file_hashes(path)
    again = await import_file(database, path)
    assert again.ok and (again.messages_inserted, again.messages_present) == (0, 11)
    assert file_hashes(path) == hashes  # from now on the id is only read
    # openclaw-rs goes on as before beside the extra table
    writer.execute(
        "INSERT INTO messages (session_key, role, content, timestamp_ms) VALUES ('tg:main:42:100',"
        " 'assistant', 'after the import', ?)",
        (MS + 7000,),
    )
    writer.commit()
    writer.close()
    third = await import_file(database, path)
    assert (third.messages_inserted, third.messages_present) == (1, 11)


async def test_dual_write_then_import_duplicates_nothing(
    database: Database, isolated_environment: Path
) -> None:
    spool = Spool(isolated_environment / "outbox" / "spool.db")
    store = DualSessionStore(
        SqliteSessionStore(isolated_environment / "agents" / "main" / "sessions.db", "main"), spool
    )
    await store.create_session("tg:main:1:1", "main", "kimi-k2")
    await store.append_messages("tg:main:1:1", [Message(Role.USER, content=f"m{i}") for i in range(5)])
    await store.add_tokens("tg:main:1:1", 77)
    assert await Flusher(spool, database, HANDLERS).drain(timeout_s=30)
    await store.append_message(
        "tg:main:1:1", Message(Role.ASSISTANT, content="written while the flusher slept")
    )
    await store.close()
    report = await import_file(database, isolated_environment / "agents" / "main" / "sessions.db")
    assert (report.messages_found, report.messages_inserted, report.messages_present) == (6, 1, 5)
    assert (await verify_file(database, isolated_environment / "agents" / "main" / "sessions.db")).ok
    spool.close()


async def test_verify_finds_deleted_and_altered_messages(
    database: Database, isolated_environment: Path
) -> None:
    path = make_home_file(isolated_environment)
    await import_file(database, path)
    async with database.connection() as conn:
        await conn.execute("""DELETE FROM messages WHERE content = 'a.txt\nb.txt'""")
        await conn.execute("UPDATE messages SET content = 'tampered' WHERE content = 'from the old days'")
        await conn.execute("DELETE FROM sessions WHERE session_key = 'agent:main:cli:empty'")
    report = await verify_file(database, path)
    problems = {d.session_key: d.problem for d in report.differences}
    assert problems == {
        "tg:main:42:100": "message 3 missing in Postgres",
        "tg:main:0:777": "message 1 differs (content)",
        "agent:main:cli:empty": "missing in Postgres",
    }
    assert not report.ok


async def test_verify_checks_order_and_counts_what_is_not_the_files(
    database: Database, isolated_environment: Path
) -> None:
    path = make_home_file(isolated_environment)
    await import_file(database, path)
    pg = PostgresSessionStore(database, "main")
    await pg.append_message("tg:main:42:100", Message(Role.USER, content="written in Postgres since"))
    report = await verify_file(database, path)
    assert report.ok and report.messages_only_in_postgres == 1
    async with database.connection() as conn:  # the first two messages of the session swap places
        await conn.execute(
            """UPDATE messages SET id = CASE WHEN content = 'hello 👋 ünïcode' THEN -1 ELSE -2 END
               WHERE content = 'hello 👋 ünïcode' OR reasoning_content = 'thinking…'"""
        )
    report = await verify_file(database, path)
    problems = {d.session_key: d.problem for d in report.differences}
    assert problems == {"tg:main:42:100": "message 2 is out of order in Postgres"}


async def test_key_of_another_agent_is_imported_renamed(
    database: Database, isolated_environment: Path
) -> None:
    """A key Postgres has for another agent no longer leaves the file's session behind: it
    is imported as KEY#AGENT (tests/test_migrate_collisions.py has the other cases)."""
    async with database.connection() as conn:
        await conn.execute(
            "INSERT INTO sessions (session_key, agent_name) VALUES ('tg:main:42:100', 'other')"
        )
    report = await import_file(database, make_home_file(isolated_environment))
    assert report.skipped_messages == 0 and report.messages_inserted == 10 and report.ok
    assert [(r.original_key, r.session_key) for r in report.renames] == [
        ("tg:main:42:100", "tg:main:42:100#main")
    ]
    assert not report.conflicts


async def test_dry_run_writes_nothing(database: Database, isolated_environment: Path) -> None:
    path = make_home_file(isolated_environment)
    report = await import_file(database, path, dry_run=True)
    assert report.ok and report.messages_inserted == 10
    async with database.connection() as conn:
        assert await (await conn.execute("SELECT count(*) FROM sessions")).fetchone() == (0,)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert ("openclaw_file_identity",) not in tables  # not even the file's id


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"this is not sqlite at all" * 100, "corrupt or not a SQLite database"),
    ],
)
async def test_bad_files(database: Database, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "sessions.db"
    path.write_bytes(content)
    report = await import_file(database, path)
    assert report.error is not None and message in report.error


async def test_other_sqlite_and_locked_files(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (x)").connection.commit()
    report = await import_file(database, other)
    assert report.error == "not an openclaw sessions database (no messages or sessions table)"
    locked = tmp_path / "locked" / "sessions.db"
    write_rust_db(locked, SESSIONS, MESSAGES)
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(importer, "BUSY_TIMEOUT_MS", 100)
    report = await import_file(database, locked)
    holder.close()
    assert report.error is not None and report.error.startswith("locked by another process")


def test_cli_cutover(capsys: pytest.CaptureFixture[str], db_url: str, isolated_environment: Path) -> None:
    make_home_file(isolated_environment, "main")
    make_home_file(isolated_environment, "helper")
    (isolated_environment / "agents" / "broken").mkdir()
    (isolated_environment / "agents" / "broken" / "sessions.db").write_bytes(b"garbage" * 200)
    cli = Cli(capsys, db_url)
    result = cli("migrate-sessions", "--json")
    assert result.exit_code == 1  # one file failed; the others were imported
    files = {Path(f["path"]).parent.name: f for f in json.loads(result.stdout)["files"]}
    assert files["broken"]["error"].startswith("corrupt")
    assert files["main"]["messages_inserted"] == files["helper"]["messages_inserted"] == 10
    human = cli("migrate-sessions", str(isolated_environment / "agents" / "main" / "sessions.db"))
    assert human.exit_code == 0 and "nothing new" in human.stdout
    verify = cli("sessions", "verify", str(isolated_environment / "agents" / "main" / "sessions.db"))
    assert verify.exit_code == 0 and "verified" in verify.stdout
    everything = cli("sessions", "verify")
    assert everything.exit_code == 1 and "failed: corrupt" in everything.stdout  # the broken file
    listed = json.loads(cli("sessions", "list", "--from", "postgres", "--json").stdout)
    assert {s["session_key"] for s in listed} >= {"tg:main:42:100", "cron:main:gone", "tg:main:0:777"}
    shown = cli("sessions", "show", "tg:main:42:100", "--from", "postgres")
    assert "hello 👋 ünïcode" in shown.stdout and "exec" in shown.stdout
    lines = cli("sessions", "export", "tg:main:42:100", "--format", "jsonl", "--from", "postgres").stdout
    assert [json.loads(line)["role"] for line in lines.splitlines()] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    markdown = cli("sessions", "export", "tg:main:42:100", "--format", "md", "--from", "sqlite").stdout
    assert markdown.startswith("# tg:main:42:100") and "done ✅" in markdown
    missing = cli("sessions", "show", "tg:nope:1:1", "--from", "postgres")
    assert missing.exit_code == 1 and "no session 'tg:nope:1:1'" in missing.stderr
    with psycopg.connect(db_url) as conn:
        before = conn.execute("SELECT count(*) FROM messages").fetchone()
    assert cli("migrate-sessions", "--dry-run").exit_code == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == before
