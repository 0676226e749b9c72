"""The openclaw-rs session store: `$OPENCLAW_HOME/agents/{agent}/sessions.db`.

Same file format as the Rust gateway (reference §1), so a file written by either program
is readable by the other: WAL mode, busy_timeout 5000, `PRAGMA user_version = 1`, times
in epoch milliseconds, `tool_calls_json` as a JSON array. sqlite3 calls run in a worker
thread so a busy file never stalls the event loop. The one addition is a table of
openclaw's own, the file's identity (`file_identity`), made when the store first opens
the file: its messages' uids in Postgres derive from it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from openclaw.chat import Message, Role, parse_tool_calls
from openclaw.errors import ConfigError
from openclaw.sessions.file_identity import FileIdentity, claim_identity, is_read_only, read_identity
from openclaw.sessions.keys import like_prefix, parse_key
from openclaw.sessions.models import SessionInfo, SessionStats
from openclaw.sessions.store import SessionStore

T = TypeVar("T")

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_key TEXT PRIMARY KEY,
    agent_name  TEXT NOT NULL,
    model       TEXT NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    total_tokens  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    session_key     TEXT NOT NULL,
    role            TEXT NOT NULL,
    content         TEXT,
    reasoning_content TEXT,
    tool_calls_json TEXT,
    tool_call_id    TEXT,
    timestamp_ms    INTEGER NOT NULL,
    FOREIGN KEY (session_key) REFERENCES sessions(session_key)
);

CREATE INDEX IF NOT EXISTS idx_messages_session
    ON messages(session_key, id);
"""

MESSAGE_COLUMNS = "role, content, reasoning_content, tool_calls_json, tool_call_id, timestamp_ms"
_SESSION_SELECT = """
    SELECT s.session_key, s.agent_name, s.model, s.created_at_ms, s.updated_at_ms, s.total_tokens,
           (SELECT count(*) FROM messages m WHERE m.session_key = s.session_key)
    FROM sessions s
"""


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def sessions_db_path(home: Path, agent: str) -> Path:
    return home / "agents" / agent / "sessions.db"


def message_from_row(row: Sequence[Any]) -> Message | None:
    """A stored row as a Message; None for a role openclaw does not know (skipped, as in Rust)."""
    role, content, reasoning, tool_calls_json, tool_call_id, timestamp_ms = row
    try:
        known = Role(role)
    except ValueError:
        return None
    return Message(
        known,
        content=content,
        reasoning_content=reasoning,
        tool_calls=parse_tool_calls(tool_calls_json),
        tool_call_id=tool_call_id,
        timestamp=from_ms(timestamp_ms),
    )


def _session_from_row(row: Sequence[Any]) -> SessionInfo:
    key, agent, model, created_ms, updated_ms, tokens, count = row
    info = parse_key(key)
    return SessionInfo(
        key, agent, model, info.channel, info.user_id, from_ms(created_ms), from_ms(updated_ms), tokens, count
    )


class SqliteSessionStore(SessionStore):
    """One agent's sessions.db, created in the Rust format if it does not exist."""

    def __init__(self, path: Path, agent: str) -> None:
        self.path = path
        self.agent = agent
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute("PRAGMA journal_mode=WAL")
            (version,) = self._conn.execute("PRAGMA user_version").fetchone()
            if version < SCHEMA_VERSION:
                self._conn.executescript(SCHEMA)
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.identity = self._claim_identity()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open session store {path}: {exc}") from None

    def _claim_identity(self) -> FileIdentity:
        """The file's id, given to it now if it has none (see `file_identity`); a file that
        cannot be written (only read here) keeps what it has."""
        try:
            return claim_identity(self._conn, self.path)
        except sqlite3.Error as exc:
            if not is_read_only(exc):
                raise
            return read_identity(self._conn)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self._conn)

        return await asyncio.to_thread(locked)

    def _write(self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def create_session(self, session_key: str, agent: str, model: str = "") -> None:
        now = to_ms(datetime.now(UTC))
        await self._run(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO sessions"
                " (session_key, agent_name, model, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?)",
                (session_key, agent, model, now, now),
            )
        )

    async def append_messages(self, session_key: str, messages: Sequence[Message]) -> None:
        await self.append_returning_ids(session_key, messages)

    async def append_returning_ids(self, session_key: str, messages: Sequence[Message]) -> list[int]:
        """Append and return the new rows' ids (the dual store derives mirror keys from them)."""
        if not messages:
            return []

        times = [to_ms(m.timestamp) for m in messages]
        agent = parse_key(session_key).agent or self.agent

        def work(conn: sqlite3.Connection) -> list[int]:
            # openclaw-rs never checked that the session exists; create it, so that every
            # message belongs to a listed session (as in the Postgres store).
            conn.execute(
                "INSERT OR IGNORE INTO sessions"
                " (session_key, agent_name, model, created_at_ms, updated_at_ms) VALUES (?, ?, '', ?, ?)",
                (session_key, agent, min(times), max(times)),
            )
            ids = []
            for m in messages:
                cur = conn.execute(
                    f"INSERT INTO messages (session_key, {MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        session_key,
                        m.role.value,
                        m.content,
                        m.reasoning_content,
                        m.tool_calls_json(),
                        m.tool_call_id,
                        to_ms(m.timestamp),
                    ),
                )
                ids.append(int(cur.lastrowid or 0))
            conn.execute(
                "UPDATE sessions SET updated_at_ms = max(updated_at_ms, ?) WHERE session_key = ?",
                (max(times), session_key),
            )
            return ids

        return await self._run(lambda c: self._write(c, work))

    async def add_tokens(self, session_key: str, tokens: int) -> None:
        await self.add_tokens_returning_total(session_key, tokens)

    async def add_tokens_returning_total(self, session_key: str, tokens: int) -> int | None:
        def work(conn: sqlite3.Connection) -> int | None:
            conn.execute(
                "UPDATE sessions SET total_tokens = total_tokens + ? WHERE session_key = ?",
                (tokens, session_key),
            )
            row = conn.execute(
                "SELECT total_tokens FROM sessions WHERE session_key = ?", (session_key,)
            ).fetchone()
            return int(row[0]) if row else None

        return await self._run(lambda c: self._write(c, work))

    async def load_messages(self, session_key: str) -> list[Message]:
        rows = await self._run(
            lambda c: c.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? ORDER BY id", (session_key,)
            ).fetchall()
        )
        return [m for m in map(message_from_row, rows) if m is not None]

    async def load_recent_messages(self, session_key: str, limit: int) -> list[Message]:
        rows = await self._run(
            lambda c: c.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? ORDER BY id DESC LIMIT ?",
                (session_key, limit),
            ).fetchall()
        )
        return [m for m in map(message_from_row, reversed(rows)) if m is not None]

    async def list_sessions(self, agent: str | None = None, limit: int = 50) -> list[SessionInfo]:
        rows = await self._run(
            lambda c: c.execute(
                _SESSION_SELECT
                + " WHERE ?1 IS NULL OR s.agent_name = ?1 ORDER BY s.updated_at_ms DESC LIMIT ?2",
                (agent, limit),
            ).fetchall()
        )
        return [_session_from_row(r) for r in rows]

    async def get_session(self, session_key: str) -> SessionInfo | None:
        row = await self._run(
            lambda c: c.execute(_SESSION_SELECT + " WHERE s.session_key = ?", (session_key,)).fetchone()
        )
        return _session_from_row(row) if row else None

    async def find_latest_session(self, prefix: str) -> SessionInfo | None:
        row = await self._run(
            lambda c: c.execute(
                _SESSION_SELECT + " WHERE s.session_key = ? OR s.session_key LIKE ? ESCAPE '\\'"
                " ORDER BY s.updated_at_ms DESC LIMIT 1",
                (prefix, like_prefix(prefix)),
            ).fetchone()
        )
        return _session_from_row(row) if row else None

    async def delete_session(self, session_key: str) -> bool:
        return bool(await self.delete_sessions([session_key]))

    async def delete_sessions(self, keys: Sequence[str]) -> int:
        def work(conn: sqlite3.Connection) -> int:
            deleted = 0
            for key in keys:
                conn.execute("DELETE FROM messages WHERE session_key = ?", (key,))
                deleted += conn.execute("DELETE FROM sessions WHERE session_key = ?", (key,)).rowcount
            return deleted

        return await self._run(lambda c: self._write(c, work))

    async def stats(self) -> SessionStats:
        def work(conn: sqlite3.Connection) -> SessionStats:
            stats = SessionStats()
            stats.sessions, stats.total_tokens = conn.execute(
                "SELECT count(*), coalesce(sum(total_tokens), 0) FROM sessions"
            ).fetchone()
            (stats.messages,) = conn.execute("SELECT count(*) FROM messages").fetchone()
            for key, agent in conn.execute("SELECT session_key, agent_name FROM sessions"):
                stats.sessions_by_agent[agent] = stats.sessions_by_agent.get(agent, 0) + 1
                channel = parse_key(key).channel or "other"
                stats.sessions_by_channel[channel] = stats.sessions_by_channel.get(channel, 0) + 1
            return stats

        return await self._run(work)

    async def prune(self, older_than: timedelta, agent: str | None = None) -> int:
        return len(await self.prune_returning_keys(older_than, agent))

    async def prune_returning_keys(self, older_than: timedelta, agent: str | None = None) -> list[str]:
        cutoff = to_ms(datetime.now(UTC) - older_than)

        def work(conn: sqlite3.Connection) -> list[str]:
            keys = [
                r[0]
                for r in conn.execute(
                    "SELECT session_key FROM sessions"
                    " WHERE updated_at_ms < ?1 AND (?2 IS NULL OR agent_name = ?2)",
                    (cutoff, agent),
                )
            ]
            for key in keys:
                conn.execute("DELETE FROM messages WHERE session_key = ?", (key,))
                conn.execute("DELETE FROM sessions WHERE session_key = ?", (key,))
            return keys

        return await self._run(lambda c: self._write(c, work))

    async def close(self) -> None:
        await self._run(lambda c: c.close())
