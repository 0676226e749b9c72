"""openclaw-rs session files that Postgres does not hold yet.

Sessions live in Postgres by default. A home that still has `agents/*/sessions.db` files
(openclaw-rs's store) whose sessions are not in Postgres is told so, once, by the
gateway at start and by `openclaw db status`, with the command that imports them. Nothing
is imported behind the user's back: `openclaw migrate-sessions` does it when asked.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout

from openclaw.db.database import Database
from openclaw.sessions.importer import FileReport, SourceError, agent_of, find_session_files, open_source
from openclaw.sessions.importer import read_sessions as read_source_sessions

log = logging.getLogger(__name__)

IMPORT_COMMAND = "openclaw migrate-sessions"


@dataclass(frozen=True, slots=True)
class UnimportedFile:
    """A sessions.db with `missing` of its `sessions` absent from Postgres."""

    path: Path
    agent: str
    sessions: int
    missing: int


def _session_keys(path: Path) -> tuple[str, list[str]] | None:
    """The agent and the keys its file's sessions get in Postgres (legacy keys rewritten as
    the importer does); None for a file the importer would refuse (it says why when run)."""
    try:
        source = open_source(path)
    except SourceError:
        return None
    try:
        agent = agent_of(path) or path.parent.name
        sessions = read_source_sessions(source, agent, FileReport(str(path)))
        return agent, [s.session_key for s in sessions]
    except sqlite3.Error:
        return None
    finally:
        source.close()


async def unimported_session_files(conn: AsyncConnection, agents_dir: Path) -> list[UnimportedFile]:
    """The files under `agents_dir` (`$OPENCLAW_HOME/agents`) holding sessions that Postgres
    lacks. Reads the files read-only and asks Postgres one question per file."""
    found = []
    for path in find_session_files(agents_dir):
        keys = await asyncio.to_thread(_session_keys, path)  # a big file takes a moment
        if keys is None or not keys[1]:
            continue
        agent, session_keys = keys
        cur = await conn.execute(
            "SELECT count(*) FROM unnest(%s::text[]) AS k(key)"
            " WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_key = k.key)",
            (session_keys,),
        )
        row = await cur.fetchone()
        missing = int(row[0]) if row else 0
        if missing:
            found.append(UnimportedFile(path, agent, len(session_keys), missing))
    return found


def describe_unimported(files: list[UnimportedFile]) -> str:
    """One line for a person: how much is left behind, and the command that imports it."""
    missing = sum(f.missing for f in files)
    where = ", ".join(str(f.path) for f in files)
    noun = "session" if missing == 1 else "sessions"
    return f"{missing} {noun} in openclaw-rs files are not in Postgres ({where}): run `{IMPORT_COMMAND}`"


async def log_unimported_sessions(database: Database, agents_dir: Path) -> None:
    """Say once, in the log, when openclaw-rs files hold sessions Postgres lacks (the
    gateway at start). Quiet when Postgres cannot be asked now: `db status` says it too."""
    try:
        async with database.connection(wait_s=10) as conn:
            files = await unimported_session_files(conn, agents_dir)
    except (psycopg.Error, PoolTimeout) as exc:
        log.debug("could not look for unimported session files: %s", exc)
        return
    if files:
        log.warning("%s", describe_unimported(files))
