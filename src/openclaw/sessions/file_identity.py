"""A sessions.db file's own identity: what makes its messages' uids its own.

openclaw keeps it in a table of its own in the file, `openclaw_file_identity`. openclaw-rs
reads and writes only its own tables, by name (`sessions`, `messages`, created with IF
NOT EXISTS), so the extra table changes nothing for it; `user_version` is left alone.

Each row of the table is a segment of the file's history: the messages with row ids from
`first_rowid` on (up to the next segment) belong to the file with id `file_id`, a random
UUID. The first segment is made the first time openclaw opens the file for writing (the
sqlite and dual session stores) or imports it (`migrate-sessions`), in one IMMEDIATE
transaction, and starts one past the highest message row id at that moment. The rows
below it are legacy: written before openclaw gave the file an id (by openclaw-rs, or by
an older openclaw that keyed a message by agent and row id alone). `message_uids` keys
them by agent, session, time and row id instead, which needs no id.

A segment also records the host and the inode of the file it was made for. A file whose
host or inode differs from its newest segment's is a copy (or a restore; or the host was
renamed): it gets a new segment, starting past its highest row, the next time openclaw
opens it for writing or imports it. So a copy of a file on another machine never reuses
the original's uids for the rows each of them writes afterwards; the rows they share
keep the uids they had, and are not stored twice.

A file openclaw cannot write (permissions, read-only media) gets no segment. If it has
none yet, all of its rows are legacy, and their uids do not depend on where the file is:
importing it again, from any path or machine, stores nothing twice, and if it becomes
writable later its first segment starts past those rows, so their uids do not change.
If it has segments (a read-only copy of a file openclaw wrote), they are used as they
are: rows its original writes later and rows this copy received since (from openclaw-rs)
may share uids, so import such a copy from a writable place.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from openclaw.hostinfo import hostname

TABLE = "openclaw_file_identity"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    first_rowid   INTEGER PRIMARY KEY,  -- the segment's first message row id
    file_id       TEXT NOT NULL,        -- a random UUID: the messages' uids derive from it
    host          TEXT NOT NULL,        -- where the file was when the segment was made
    inode         INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
)
"""
ALL_ROWS = (1 << 63) - 1  # the legacy bound of a file without segments: every row


@dataclass(frozen=True, slots=True)
class Segment:
    first_rowid: int
    file_id: str
    host: str
    inode: int


@dataclass(frozen=True, slots=True)
class FileIdentity:
    segments: tuple[Segment, ...]  # by first_rowid; empty: the file never had an id

    @property
    def legacy_rowid_max(self) -> int:
        """Rows up to this id are legacy (stored, if at all, before the file had an id)."""
        return self.segments[0].first_rowid - 1 if self.segments else ALL_ROWS

    def is_current(self, path: Path) -> bool:
        """Does the newest segment belong to this file, here? (No: a copy, or no id yet.)"""
        return bool(self.segments) and (self.segments[-1].host, self.segments[-1].inode) == _here(path)


def _here(path: Path) -> tuple[str, int]:
    return hostname(), os.stat(path).st_ino


def read_identity(conn: sqlite3.Connection) -> FileIdentity:
    """The file's identity as stored; never writes (the connection may be read-only)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).fetchone()
    if not exists:
        return FileIdentity(())
    rows = conn.execute(f"SELECT first_rowid, file_id, host, inode FROM {TABLE} ORDER BY first_rowid")
    return FileIdentity(tuple(Segment(*row) for row in rows))


def claim_identity(conn: sqlite3.Connection, path: Path) -> FileIdentity:
    """The identity of the file open on `conn` (read-write, autocommit), given a new segment
    first if it has none or is a copy (see the module docstring). Raises sqlite3.Error when
    the file cannot be written: `is_read_only` tells whether that is why."""
    identity = read_identity(conn)
    if identity.is_current(path):
        return identity  # the usual case: nothing to write
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SCHEMA)
        identity = read_identity(conn)  # another process may have claimed it meanwhile
        if not identity.is_current(path):
            host, inode = _here(path)
            (highest,) = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()
            start = max(int(highest) + 1, 1)
            if identity.segments:
                # Never below the newest segment; a copy that got no row since that segment
                # began takes its place (REPLACE): none of the copy's rows used it.
                start = max(start, identity.segments[-1].first_rowid)
            conn.execute(
                f"INSERT OR REPLACE INTO {TABLE} (first_rowid, file_id, host, inode, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    start,
                    str(uuid.uuid4()),
                    host,
                    inode,
                    round(datetime.now(UTC).timestamp() * 1000),
                ),
            )
            identity = read_identity(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return identity


def is_read_only(exc: sqlite3.Error) -> bool:
    """The error says the file (or its directory) cannot be written, as opposed to busy or corrupt."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "readonly" in str(exc) or "read-only" in str(exc)
    return code & 0xFF in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM)
