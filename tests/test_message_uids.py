"""Two machines never overwrite each other's messages (issue 11, finding 6).

A message's uid names its file as well as its SQLite row, so the same agent on two
machines (the plan's nixos and g731) keeps every message of both, in dual mode and
through `openclaw migrate-sessions`; a re-import stores nothing twice, messages an older
openclaw stored under uids of agent and row alone are re-keyed, not duplicated; a file
openclaw cannot write is imported all the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from openclaw.chat import Message, Role
from openclaw.db import Database
from openclaw.outbox import Flusher, Spool
from openclaw.sessions.file_identity import FileIdentity, Segment
from openclaw.sessions.importer import FileReport, file_agent, import_file, open_source, read_sessions
from openclaw.sessions.message_uids import MessageUids, anchored_message_uid, old_message_uid
from openclaw.sessions.mirror import OUTBOX_HANDLERS as HANDLERS
from openclaw.sessions.mirror import DualSessionStore
from openclaw.sessions.pg_writes import MessageRow, SessionRow, insert_messages, upsert_sessions
from openclaw.sessions.sqlite_store import SqliteSessionStore, from_ms
from openclaw.sessions.verify import verify_file
from tests.conftest import Cli
from tests.sessions_support import as_a_normal_user, at, write_rust_db

MS = 1_760_000_000_000
SHARED_CHAT = "tg:main:42:42"  # the same Telegram user writes to the bot on both machines


def machine_file(root: Path, machine: str, count: int) -> Path:
    """`machine`'s openclaw-rs file of agent main: `count` messages (row ids 1..count, as on
    every machine), every other one in the chat both machines have."""
    path = root / machine / "agents" / "main" / "sessions.db"
    own = f"webhook:main:{machine}"
    offset = 7 if machine == "g731" else 0  # two machines do not write in the same millisecond
    messages = [
        (
            SHARED_CHAT if i % 2 else own,
            "user" if i % 4 < 2 else "assistant",
            f"{machine} says {i}",
            None,
            None,
            None,
            MS + i * 1000 + offset,
        )
        for i in range(count)
    ]
    last = MS + count * 1000
    write_rust_db(path, [(SHARED_CHAT, "main", "", MS, last, 0), (own, "main", "", MS, last, 0)], messages)
    return path


def the_old_uid(agent: str, rowid: int) -> uuid.UUID:
    """The uid an openclaw before issue 11 gave a row: agent and row id alone."""
    high = int.from_bytes(hashlib.sha256(f"openclaw/sqlite/{agent}".encode()).digest()[:8], "big")
    high = (high & ~0xF000) | 0x8000
    return uuid.UUID(bytes=high.to_bytes(8, "big") + ((0b10 << 62) | rowid).to_bytes(8, "big"))


async def store_the_old_way(database: Database, path: Path) -> None:
    """What an older openclaw left in Postgres after mirroring or importing the file: every
    message under its old uid, and a message whose uid was taken (another machine's row
    with the same id) silently dropped."""
    source = open_source(path)
    try:
        agent = file_agent(path, source)
        sessions = read_sessions(source, agent, FileReport(str(path)))
        rows = source.execute(
            "SELECT id, session_key, role, content, reasoning_content, tool_calls_json, tool_call_id,"
            " timestamp_ms FROM messages ORDER BY id"
        ).fetchall()
    finally:
        source.close()
    async with database.connection() as conn:
        ids = await upsert_sessions(
            conn,
            [
                SessionRow(s.session_key, s.agent_name, from_ms(s.created_ms), from_ms(s.updated_ms))
                for s in sessions
            ],
        )
        await insert_messages(
            conn,
            [
                MessageRow(
                    the_old_uid(agent, rowid), key, role, content, reasoning, calls, call_id, from_ms(ms)
                )
                for rowid, key, role, content, reasoning, calls, call_id, ms in rows
            ],
            ids,
        )


async def message_count(database: Database) -> int:
    async with database.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM messages")).fetchone()
    return int(row[0]) if row else 0


async def test_two_machines_in_dual_mode_keep_every_message(database: Database, tmp_path: Path) -> None:
    machines = {}
    for name in ("nixos", "g731"):
        spool = Spool(tmp_path / name / "outbox" / "spool.db")
        path = tmp_path / name / "agents" / "main" / "sessions.db"
        machines[name] = (DualSessionStore(SqliteSessionStore(path, "main"), spool), spool, path)
    for turn in range(100):  # in lockstep: the same row ids, even the same times, on both
        for name, (store, _, _) in machines.items():
            key = SHARED_CHAT if turn % 2 else f"webhook:main:{name}"
            await store.append_messages(
                key,
                [
                    Message(Role.USER, content=f"{name} asks {turn}", timestamp=at(turn)),
                    Message(Role.ASSISTANT, content=f"{name} answers {turn}", timestamp=at(turn)),
                ],
            )
    for store, spool, _ in machines.values():
        assert await Flusher(spool, database, HANDLERS).drain(timeout_s=30)
        await store.close()
        spool.close()
    assert await message_count(database) == 400
    for _, _, path in machines.values():
        report = await verify_file(database, path)
        assert report.ok, report.differences
        assert report.messages_checked == 200
        assert report.messages_only_in_postgres == 100  # the other machine's half of the shared chat


def test_importing_a_second_machines_file(cli: Cli, tmp_path: Path, db_url: str) -> None:
    nixos, g731 = machine_file(tmp_path, "nixos", 40), machine_file(tmp_path, "g731", 40)
    first = cli("migrate-sessions", str(nixos), "--json")
    assert first.exit_code == 0, first.stderr
    second = cli("migrate-sessions", str(g731), "--json")
    assert second.exit_code == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["files"][0]["messages_inserted"] == 40
    again = cli("migrate-sessions", str(nixos), str(g731), "--json")
    assert [f["messages_inserted"] for f in json.loads(again.stdout)["files"]] == [0, 0]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (80,)
    verified = cli("sessions", "verify", str(nixos), str(g731))
    assert verified.exit_code == 0, verified.stdout


async def test_messages_stored_under_old_uids_are_rekeyed_not_duplicated(
    database: Database, tmp_path: Path
) -> None:
    nixos, g731 = machine_file(tmp_path, "nixos", 40), machine_file(tmp_path, "g731", 40)
    await store_the_old_way(database, nixos)
    await store_the_old_way(database, g731)  # every row id taken: all 40 dropped
    assert await message_count(database) == 40

    report = await import_file(database, nixos)
    assert report.ok, report.error
    assert (report.messages_inserted, report.messages_present, report.rekeyed_messages) == (0, 40, 40)
    report = await import_file(database, g731)  # nixos's messages under g731's old uids stay nixos's
    assert (report.messages_inserted, report.messages_present, report.rekeyed_messages) == (40, 0, 0)
    for path in (nixos, g731):
        again = await import_file(database, path)
        assert (again.messages_inserted, again.messages_present, again.rekeyed_messages) == (0, 40, 0)
        assert (await verify_file(database, path)).ok
    assert await message_count(database) == 80
    async with database.connection() as conn:
        old = [the_old_uid("main", rowid) for rowid in range(1, 41)]
        row = await (
            await conn.execute("SELECT count(*) FROM messages WHERE uid = ANY(%s)", (old,))
        ).fetchone()
    assert row == (0,)  # every message carries its file's uid now


async def test_verify_accepts_old_uids_of_the_same_message_only(database: Database, tmp_path: Path) -> None:
    """Before the re-import, verify recognises a message under its old uid when it is the
    same message, and says that another machine's message there is not this file's."""
    nixos, g731 = machine_file(tmp_path, "nixos", 20), machine_file(tmp_path, "g731", 20)
    await store_the_old_way(database, nixos)
    await store_the_old_way(database, g731)
    assert (await verify_file(database, nixos)).ok
    report = await verify_file(database, g731)
    problems = {d.session_key: d.problem for d in report.differences}
    assert problems == {
        SHARED_CHAT: "message 1 missing in Postgres",
        "webhook:main:g731": "message 1 missing in Postgres",
    }


def test_a_read_only_file_still_imports(cli: Cli, tmp_path: Path, db_url: str) -> None:
    """A file on read-only media (nothing can be created beside it either): imported without
    an id, the same rows again and again; once writable, it gets its id and keeps its uids."""
    path = machine_file(tmp_path, "nixos", 30)
    directory = path.parent
    before = path.read_bytes()
    path.chmod(0o444)
    directory.chmod(0o555)
    command = [
        sys.executable,
        "-m",
        "openclaw",
        "--database-url",
        db_url,
        "migrate-sessions",
        str(path),
        "--json",
    ]
    try:
        for expected in (30, 0):
            result = subprocess.run(
                as_a_normal_user(command), capture_output=True, text=True, timeout=120, check=False
            )
            assert result.returncode == 0, result.stdout + result.stderr
            (report,) = json.loads(result.stdout)["files"]
            assert (report["messages_inserted"], report["messages_present"]) == (expected, 30 - expected)
        assert path.read_bytes() == before and sorted(os.listdir(directory)) == ["sessions.db"]
        verified = cli("sessions", "verify", str(path))
        assert verified.exit_code == 0, verified.stdout
    finally:
        directory.chmod(0o755)
        path.chmod(0o644)
    writable = cli("migrate-sessions", str(path), "--json")
    assert json.loads(writable.stdout)["files"][0]["messages_inserted"] == 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert ("openclaw_file_identity",) in tables
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (30,)


async def test_a_copied_file_gets_its_own_uids_for_what_it_writes_next(
    database: Database, tmp_path: Path
) -> None:
    """A home copied to a second machine carries the file's id: the copy gets an id of its
    own when opened there, so what each writes afterwards keeps distinct uids, and the
    history they share is stored once."""
    original_path = tmp_path / "nixos" / "agents" / "main" / "sessions.db"
    spool = Spool(tmp_path / "nixos" / "outbox" / "spool.db")
    original = DualSessionStore(SqliteSessionStore(original_path, "main"), spool)
    await original.append_messages(SHARED_CHAT, [Message(Role.USER, content=f"shared {i}") for i in range(5)])
    await original.close()
    copy_path = tmp_path / "g731" / "agents" / "main" / "sessions.db"
    copy_path.parent.mkdir(parents=True)
    shutil.copy(original_path, copy_path)  # another inode: another file from now on
    copy_spool = Spool(tmp_path / "g731" / "outbox" / "spool.db")
    copy = DualSessionStore(SqliteSessionStore(copy_path, "main"), copy_spool)
    original = DualSessionStore(SqliteSessionStore(original_path, "main"), spool)
    for i in range(5):  # the same next row ids on both
        await original.append_message(SHARED_CHAT, Message(Role.ASSISTANT, content=f"nixos {i}"))
        await copy.append_message(SHARED_CHAT, Message(Role.ASSISTANT, content=f"g731 {i}"))
    for store, queue in ((original, spool), (copy, copy_spool)):
        assert await Flusher(queue, database, HANDLERS).drain(timeout_s=30)
        await store.close()
        queue.close()
    assert await message_count(database) == 15
    for path in (original_path, copy_path):
        report = await import_file(database, path)
        assert (report.messages_inserted, report.messages_present) == (0, 10)
        assert (await verify_file(database, path)).ok


def test_uid_layouts_never_meet() -> None:
    assert old_message_uid("main", 7) == the_old_uid("main", 7).bytes
    one = MessageUids(FileIdentity((Segment(11, "id-1", "h", 1),)), "main")
    other = MessageUids(FileIdentity((Segment(11, "id-2", "h", 2),)), "main")
    unclaimed = MessageUids(FileIdentity(()), "main")
    # Legacy rows (below the first segment) are anchored on session and time: the same in
    # every copy of the file, and in the file before and after it got its id.
    assert one.uid(3, SHARED_CHAT, MS) == other.uid(3, SHARED_CHAT, MS) == unclaimed.uid(3, SHARED_CHAT, MS)
    assert one.uid(3, SHARED_CHAT, MS) == anchored_message_uid("main", SHARED_CHAT, MS, 3)
    assert one.uid(3, SHARED_CHAT, MS) != one.uid(3, SHARED_CHAT, MS + 1) != one.uid(3, "tg:main:1:1", MS)
    assert one.uid(11, SHARED_CHAT, MS) != other.uid(11, SHARED_CHAT, MS)  # later rows: the file's own
    assert one.earlier_uid(3) == old_message_uid("main", 3) and one.earlier_uid(11) is None
    uids = {one.uid(r, SHARED_CHAT, MS) for r in range(1, 50)} | {
        old_message_uid("main", r) for r in range(1, 50)
    }
    assert len(uids) == 98
    assert all(uuid.UUID(bytes=u).version == 8 and uuid.UUID(bytes=u).variant == uuid.RFC_4122 for u in uids)
