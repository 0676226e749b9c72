"""`openclaw migrate-sessions`: openclaw-rs `sessions.db` files into Postgres.

The source is read through a read-only connection. Its own tables are never modified;
the one write is openclaw's identity table (`file_identity`), added the first time a
file is imported (or opened by the sqlite or dual store), then only read. A file that
cannot be written is imported all the same, without it; one on read-only media, where
SQLite cannot make its shared-memory file, is read as immutable (unless a write-ahead
log beside it holds rows that this would miss).

Sessions go in chunks, each in one Postgres transaction: messages of sessions that this
import creates are COPYed straight into `messages`; messages of sessions Postgres already
has go through a staging table and `ON CONFLICT (uid) DO NOTHING`. A message's uid names
the file and the row (`message_uids`), the same uid the dual-mode mirror gives it, so a
re-run, or a run after dual-write, inserts nothing twice, and a second machine's file
never collides with the first's. Messages that an older openclaw stored under uids
naming only the agent and the row are re-keyed first, in the same transaction, when they
are the same message. Rows stream through; the import's memory does not grow with the file.

A session key is unique in Postgres, across agents; in openclaw-rs it is unique per file.
A session whose key Postgres already has for another agent (a free-form webhook key two
agents used, an orphan message's key, a legacy key) is imported under `{key}#{agent}`
(`keys.renamed_key`) and the rename recorded in `session_renames`, where a re-run finds
it again. A message that is not imported (an unknown role; a session no key could be
found for) makes the file's report not ok: nothing is left behind without an error.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psycopg import AsyncConnection, sql

from openclaw.db.batch_insert import insert_batch
from openclaw.db.database import Database
from openclaw.db.sanitize import pg_json_text, pg_text
from openclaw.errors import OpenclawError
from openclaw.sessions.binary_copy import MESSAGE_TYPES, register_message_dumpers
from openclaw.sessions.file_identity import FileIdentity, claim_identity, is_read_only, read_identity
from openclaw.sessions.keys import renamed_key_candidates, rewrite_legacy_key
from openclaw.sessions.message_uids import MessageUids
from openclaw.sessions.pg_writes import MESSAGE_COLUMNS, Rekey, SessionRow, rekey_messages, upsert_sessions
from openclaw.sessions.sqlite_store import from_ms

ROLES = frozenset({"system", "user", "assistant", "tool"})
RENAMED_BEFORE = "renamed by an earlier import"
CHUNK_SESSIONS = 200
BUSY_TIMEOUT_MS = 2000

Progress = Callable[[int], None]  # called with the number of messages just handled


class SourceError(OpenclawError):
    """The file cannot be imported (corrupt, locked, not an openclaw sessions database)."""


@dataclass(slots=True)
class SessionRename:
    """A session of the file imported under another key than its own."""

    original_key: str  # its key in the file (a legacy key rewritten)
    session_key: str  # its key in Postgres
    agent_name: str
    reason: str


@dataclass(slots=True)
class FileReport:
    path: str
    agent: str | None = None
    sessions_found: int = 0
    sessions_inserted: int = 0
    sessions_present: int = 0
    messages_found: int = 0
    messages_inserted: int = 0
    messages_present: int = 0
    orphan_messages: int = 0  # messages whose session row was missing: imported under a rebuilt session
    legacy_keys: int = 0  # 3-part keys rewritten to {p}:{agent}:0:{chat}
    repaired_values: int = 0  # invalid tool_calls JSON kept as a JSON string, NUL characters replaced
    skipped_messages: int = 0  # not imported: the reasons are in `skipped`
    skipped: dict[str, int] = field(default_factory=dict)  # messages not imported, by reason
    rekeyed_messages: int = 0  # stored by an older openclaw under uids naming only agent and row
    renames: list[SessionRename] = field(default_factory=list)
    legacy_kept: list[str] = field(default_factory=list)  # legacy keys whose new form the file has too
    conflicts: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Read, and every message imported (or already there)."""
        return self.error is None and not self.skipped_messages

    def skip(self, reason: str, messages: int) -> None:
        self.skipped_messages += messages
        self.skipped[reason] = self.skipped.get(reason, 0) + messages


def find_session_files(agents_dir: Path) -> list[Path]:
    """`{agents_dir}/*/sessions.db`, sorted."""
    return sorted(p for p in agents_dir.glob("*/sessions.db") if p.is_file())


def agent_of(path: Path) -> str | None:
    """The agent a file belongs to, from its place: agents/{agent}/sessions.db."""
    if path.name == "sessions.db" and path.parent.parent.name == "agents":
        return path.parent.name
    return None


# ---- the source -----------------------------------------------------------------------------


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"file:{quote(str(path.resolve()))}?mode={mode}",
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
    )
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _table_names(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _open_tables(path: Path) -> tuple[sqlite3.Connection, set[str]]:
    conn = _connect(path, "ro")
    try:
        return conn, _table_names(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if not is_read_only(exc):
            raise
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise SourceError(
                f"cannot be read where it is ({exc}): its write-ahead log needs a writable directory;"
                " copy the file and its -wal file to one"
            ) from None
    # Read-only media: SQLite cannot make the -shm file that reading in WAL mode needs.
    # Nothing can write the file there, and no WAL holds rows: it is immutable.
    conn = _connect(path, "ro&immutable=1")
    try:
        return conn, _table_names(conn)
    except sqlite3.DatabaseError:
        conn.close()
        raise


def open_source(path: Path) -> sqlite3.Connection:
    """Open a sessions.db read-only, and check it is one."""
    if not path.is_file():
        raise SourceError("not a file")
    if path.stat().st_size == 0:
        raise SourceError("empty file (0 bytes): not an openclaw sessions database")
    try:
        conn, tables = _open_tables(path)
    except sqlite3.DatabaseError as exc:
        raise SourceError(_describe(exc)) from None
    missing = {"sessions", "messages"} - tables
    if missing:
        conn.close()
        raise SourceError(f"not an openclaw sessions database (no {' or '.join(sorted(missing))} table)")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise SourceError(_describe(exc)) from None
    needed = {
        "id",
        "session_key",
        "role",
        "content",
        "reasoning_content",
        "tool_calls_json",
        "tool_call_id",
        "timestamp_ms",
    }
    if not needed <= columns:
        conn.close()
        raise SourceError(
            f"not an openclaw sessions database (messages lacks {', '.join(sorted(needed - columns))})"
        )
    return conn


def _describe(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"locked by another process ({text})"
    if "not a database" in text or "malformed" in text:
        return f"corrupt or not a SQLite database ({text})"
    return text


def identity_for_import(path: Path, source: sqlite3.Connection) -> FileIdentity:
    """The file's identity, given to it now if it has none or is a copy (`file_identity`).
    A file that cannot be written keeps what it has (see there what that means)."""
    identity = read_identity(source)
    if identity.is_current(path):
        return identity  # the usual case: nothing to write, the file is not even opened for it
    try:
        conn = _connect(path, "rw")
    except sqlite3.Error as exc:
        if is_read_only(exc):
            return identity
        raise
    try:
        return claim_identity(conn, path)
    except sqlite3.Error as exc:
        if is_read_only(exc):
            return identity
        raise
    finally:
        conn.close()


@dataclass(slots=True)
class SourceSession:
    original_key: str
    session_key: str
    agent_name: str
    model: str
    created_ms: int
    updated_ms: int
    total_tokens: int
    messages: int


def read_sessions(conn: sqlite3.Connection, agent: str, report: FileReport) -> list[SourceSession]:
    """Sessions of the file, with the rebuilt ones for orphan messages, keys rewritten."""
    sessions: list[SourceSession] = []
    counts = dict(conn.execute("SELECT session_key, count(*) FROM messages GROUP BY session_key"))
    existing = set()
    for key, agent_name, model, created, updated, tokens in conn.execute(
        "SELECT session_key, agent_name, model, created_at_ms, updated_at_ms, total_tokens FROM sessions"
    ):
        existing.add(key)
        sessions.append(
            SourceSession(
                key, key, agent_name or agent, model or "", created, updated, tokens or 0, counts.get(key, 0)
            )
        )
    for key, count, first, last in conn.execute(
        "SELECT session_key, count(*), min(timestamp_ms), max(timestamp_ms) FROM messages"
        " WHERE session_key NOT IN (SELECT session_key FROM sessions) GROUP BY session_key"
    ):
        report.orphan_messages += count
        sessions.append(SourceSession(key, key, agent, "", first, last, 0, count))
    keys = {s.original_key for s in sessions}
    for session in sessions:
        new_key = rewrite_legacy_key(session.original_key, agent)
        if new_key != session.original_key:
            if new_key in keys:
                # openclaw-rs kept the old key in this case too: the two stay two sessions,
                # and the legacy one is imported under its key (renamed like any other if
                # another agent has that key in Postgres).
                report.legacy_kept.append(
                    f"{session.original_key}: kept its legacy key, the file has {new_key} too"
                )
            else:
                session.session_key = new_key
                report.legacy_keys += 1
    sessions.sort(key=lambda s: s.session_key)
    return sessions


def _stream_messages(conn: sqlite3.Connection, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    placeholders = ",".join("?" * len(keys))
    cursor = conn.execute(
        "SELECT id, session_key, role, content, reasoning_content, tool_calls_json, tool_call_id,"
        f" timestamp_ms FROM messages WHERE session_key IN ({placeholders}) ORDER BY session_key, id",
        list(keys),
    )
    while rows := cursor.fetchmany(2000):
        yield from rows


# ---- the import -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Target:
    session_id: int
    new: bool  # created by this import


def _tool_calls_json(text: str | None, report: FileReport) -> str | None:
    if text is None:
        return None
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        report.repaired_values += 1
        return json.dumps(text)  # keep what was there, as a JSON string
    cleaned = pg_json_text(text)
    if cleaned != text:
        report.repaired_values += 1
    return cleaned


def _message_rows(
    rows: Iterable[tuple[Any, ...]],
    uids: MessageUids,
    keys: dict[str, str],
    targets: dict[str, _Target],
    report: FileReport,
    progress: Progress | None,
) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(row id, row for `messages`): the row is (uid bytes, session id, role, content,
    reasoning, tool-call JSON text, tool call id, epoch ms); the binary COPY takes it as it is."""
    handled = 0
    uid_of = uids.uid
    for rowid, original_key, role, content, reasoning, tool_calls, tool_call_id, ms in rows:
        handled += 1
        if progress and handled % 1000 == 0:
            progress(1000)
        if role not in ROLES:
            report.skip(f"unknown role {role!r}", 1)
            continue
        if (
            (content and "\x00" in content)
            or (reasoning and "\x00" in reasoning)
            or (tool_call_id and "\x00" in tool_call_id)
        ):
            content, reasoning, tool_call_id = pg_text(content), pg_text(reasoning), pg_text(tool_call_id)
            report.repaired_values += 1
        key = keys[original_key]
        yield (
            rowid,
            (
                uid_of(rowid, key, ms),
                targets[key].session_id,
                role,
                content,
                reasoning,
                _tool_calls_json(tool_calls, report),
                tool_call_id,
                ms,
            ),
        )
    if progress and handled % 1000:
        progress(handled % 1000)


@dataclass(slots=True)
class _Held:
    """A session key Postgres has: whose it is, its id and how many messages it has."""

    agent_name: str
    session_id: int
    messages: int


async def _held(pg: AsyncConnection, keys: Sequence[str]) -> dict[str, _Held]:
    cur = await pg.execute(
        """SELECT s.session_key, s.agent_name, s.id,
                  (SELECT count(*) FROM messages m WHERE m.session_id = s.id)
           FROM sessions s WHERE s.session_key = ANY(%s)""",
        (list(keys),),
    )
    return {key: _Held(agent_name, sid, count) for key, agent_name, sid, count in await cur.fetchall()}


async def recorded_renames(
    pg: AsyncConnection, sessions: Sequence[SourceSession]
) -> dict[tuple[str, str], str]:
    """(key, agent) -> the key an earlier import gave that agent's session, for these sessions."""
    cur = await pg.execute(
        "SELECT original_key, agent_name, session_key FROM session_renames WHERE original_key = ANY(%s)",
        ([s.session_key for s in sessions],),
    )
    wanted = {(s.session_key, s.agent_name) for s in sessions}
    return {(key, agent): new for key, agent, new in await cur.fetchall() if (key, agent) in wanted}


async def _postgres_keys(
    pg: AsyncConnection,
    chunk: Sequence[SourceSession],
    file_keys: AbstractSet[str],
    report: FileReport,
) -> tuple[dict[str, str], dict[str, _Held]]:
    """The key each session of the chunk gets in Postgres (by its key in the file; a session
    that can get none is left out, and counted as skipped), and what Postgres holds of them.

    Its own key, unless Postgres has that for another agent: then the key an earlier import
    renamed it to, or else the first of `renamed_key_candidates` that no session has (in
    Postgres or in this file), recorded in `session_renames` once the session exists."""
    recorded = await recorded_renames(pg, chunk)
    held = await _held(pg, [s.session_key for s in chunk] + list(recorded.values()))
    chosen: dict[str, str] = {}
    clashing: list[SourceSession] = []
    for session in chunk:
        earlier = recorded.get((session.session_key, session.agent_name))
        if earlier is not None:
            chosen[session.session_key] = earlier
            report.renames.append(
                SessionRename(session.session_key, earlier, session.agent_name, RENAMED_BEFORE)
            )
            continue
        found = held.get(session.session_key)
        if found is None or found.agent_name == session.agent_name:
            chosen[session.session_key] = session.session_key
        else:
            clashing.append(session)
    if not clashing:
        return chosen, held
    candidates = {s.session_key: renamed_key_candidates(s.session_key, s.agent_name) for s in clashing}
    held |= await _held(pg, [key for keys in candidates.values() for key in keys])
    for session in clashing:
        holder = held[session.session_key].agent_name
        free = [key for key in candidates[session.session_key] if key not in held and key not in file_keys]
        if not free:
            report.skip("no free key to rename to", session.messages)
            report.conflicts.append(
                f"{session.session_key}: in Postgres for agent {holder!r}, and so are the keys it would"
                f" be renamed to ({', '.join(candidates[session.session_key])}); not imported"
            )
            continue
        chosen[session.session_key] = free[0]
        report.renames.append(
            SessionRename(session.session_key, free[0], session.agent_name, f"key held by agent {holder!r}")
        )
    return chosen, held


async def _record_renames(pg: AsyncConnection, renames: Sequence[SessionRename], path: str) -> None:
    if renames:
        await pg.execute(
            """INSERT INTO session_renames (session_key, original_key, agent_name, source_file)
               SELECT k, o, a, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS x(k, o, a)
               ON CONFLICT DO NOTHING""",
            (
                path,
                [r.session_key for r in renames],
                [r.original_key for r in renames],
                [r.agent_name for r in renames],
            ),
        )


async def _import_chunk(
    pg: AsyncConnection,
    source: sqlite3.Connection,
    uids: MessageUids,
    chunk: Sequence[SourceSession],
    report: FileReport,
    progress: Progress | None,
    file_keys: AbstractSet[str] = frozenset(),
) -> None:
    renames_before = len(report.renames)
    pg_key, held = await _postgres_keys(pg, chunk, file_keys, report)
    importable: list[SourceSession] = []
    for session in chunk:
        key = pg_key.get(session.session_key)
        if key is None:  # counted as skipped
            if progress:
                progress(session.messages)
            continue
        found = held.get(key)
        if found is not None and found.messages > session.messages:
            report.conflicts.append(
                f"{key}: Postgres has {found.messages} messages, this file {session.messages}"
            )
        importable.append(session)
    ids = await upsert_sessions(
        pg,
        [
            SessionRow(
                pg_key[s.session_key],
                s.agent_name,
                from_ms(s.created_ms),
                from_ms(s.updated_ms),
                model=s.model,
                total_tokens=None if pg_key[s.session_key] in held else s.total_tokens,
            )
            for s in importable
        ],
        authoritative=True,
    )
    await _record_renames(
        pg,
        [r for r in report.renames[renames_before:] if r.reason != RENAMED_BEFORE],
        report.path,
    )
    # Targets by the session's key in the file, which its messages' uids keep deriving from
    # (the uid must not depend on which agent's file was imported first).
    targets = {
        s.session_key: _Target(ids[pg_key[s.session_key]], pg_key[s.session_key] not in held)
        for s in importable
    }
    report.sessions_inserted += sum(t.new for t in targets.values())
    report.sessions_present += sum(not t.new for t in targets.values())
    key_of = {s.original_key: s.session_key for s in chunk}
    renamed = {s.session_key for s in importable if pg_key[s.session_key] != s.session_key}
    # A renamed session goes through the merge even when new: a dual-write mirror may have
    # stored its messages (same uids) in the other agent's session, and a COPY would fail.
    new = [s.original_key for s in importable if targets[s.session_key].new and s.session_key not in renamed]
    old = [s.original_key for s in importable if not targets[s.session_key].new or s.session_key in renamed]
    if new:  # sessions new to Postgres: straight COPY into messages, no conflict possible
        columns = sql.SQL(", ").join(map(sql.Identifier, MESSAGE_COLUMNS))
        copy_sql = sql.SQL("COPY messages ({}) FROM STDIN (FORMAT BINARY)").format(columns)
        async with pg.cursor() as cur:
            register_message_dumpers(cur)
            async with cur.copy(copy_sql) as copy:
                copy.set_types(MESSAGE_TYPES)
                for _, row in _message_rows(
                    _stream_messages(source, new), uids, key_of, targets, report, progress
                ):
                    await copy.write_row(row)
                    report.messages_inserted += 1
    if old:  # sessions Postgres already had (a re-run, dual-write), renamed ones: only the missing messages
        merge = _Merge(pg, report)
        for rowid, row in _message_rows(
            _stream_messages(source, old), uids, key_of, targets, report, progress
        ):
            await merge.add(row, uids.earlier_uid(rowid))
        await merge.flush()


class _Merge:
    """Messages of sessions Postgres has, in batches: those an older openclaw stored under
    their earlier uid are re-keyed, then all go in with ON CONFLICT (uid) DO NOTHING."""

    BATCH = 5000

    def __init__(self, pg: AsyncConnection, report: FileReport) -> None:
        self.pg = pg
        self.report = report
        self.rows: list[tuple[Any, ...]] = []
        self.rekeys: list[Rekey] = []

    async def add(self, row: tuple[Any, ...], earlier_uid: bytes | None) -> None:
        uid, session_id, role, content, reasoning, tool_calls, tool_call_id, ms = row
        new_uid, created_at = uuid.UUID(bytes=uid), from_ms(ms)  # the merge takes ordinary values
        self.rows.append(
            (new_uid, session_id, role, content, reasoning, tool_calls, tool_call_id, created_at)
        )
        if earlier_uid is not None:
            self.rekeys.append(Rekey(earlier_uid, new_uid, session_id, role, content, created_at))
        if len(self.rows) >= self.BATCH:
            await self.flush()

    async def flush(self) -> None:
        if self.rekeys:
            self.report.rekeyed_messages += await rekey_messages(self.pg, self.rekeys)
            self.rekeys.clear()
        if self.rows:
            inserted = await insert_batch(
                self.pg, "messages", MESSAGE_COLUMNS, self.rows, on_conflict="(uid) DO NOTHING"
            )
            self.report.messages_inserted += inserted
            self.report.messages_present += len(self.rows) - inserted
            self.rows.clear()


async def import_file(
    database: Database,
    path: Path,
    *,
    agent: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> FileReport:
    """Import one sessions.db. Never raises for a bad file: the report says what went wrong.
    A dry run does not give the file its identity either (it writes nothing anywhere)."""
    report = FileReport(str(path))
    try:
        source = open_source(path)
    except SourceError as exc:
        report.error = str(exc)
        return report
    try:
        agent = report.agent = file_agent(path, source, agent)
        identity = read_identity(source) if dry_run else identity_for_import(path, source)
        uids = MessageUids(identity, agent)
        sessions = read_sessions(source, agent, report)
        report.sessions_found = len(sessions)
        report.messages_found = sum(s.messages for s in sessions)
        file_keys = frozenset(s.session_key for s in sessions)
        for start in range(0, len(sessions), CHUNK_SESSIONS):
            chunk = sessions[start : start + CHUNK_SESSIONS]
            async with database.connection() as pg:
                await _import_chunk(pg, source, uids, chunk, report, progress, file_keys)
                if dry_run:
                    await pg.rollback()
    except sqlite3.DatabaseError as exc:
        report.error = _describe(exc)
    finally:
        source.close()
    return report


def file_agent(path: Path, source: sqlite3.Connection, given: str | None = None) -> str:
    """Whose file it is: as given, else from agents/{agent}/, else its most common agent_name."""
    if given or agent_of(path):
        return given or agent_of(path) or ""
    counts = Counter(row[0] for row in source.execute("SELECT agent_name FROM sessions"))
    return counts.most_common(1)[0][0] if counts else path.stem


def count_messages(path: Path) -> int:
    """Messages in a file, for a progress bar (0 if it cannot be read)."""
    try:
        conn = open_source(path)
    except SourceError:
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0
    finally:
        conn.close()
