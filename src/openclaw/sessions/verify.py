"""`openclaw sessions verify`: does Postgres hold what each SQLite file holds? The cutover check.

Every message of a file is looked up in Postgres by its uid, the one the importer and the
dual-mode mirror give it (`message_uids`; a message an older openclaw stored under the
uid that named only agent and row counts when it is the same message, as the importer
would re-key it). It must be there, in its session, with the same content (role, texts,
tool calls as parsed JSON, tool call id, time to the millisecond), and a session's
messages must be in the file's order. The first problem of a session is named.

Messages of these sessions that Postgres has and the file has not (another machine's,
sharing a session key; ones written in postgres mode after the cutover) are counted,
not held against the file. Nothing is written: not Postgres, not the file (a file that
has no identity yet is checked against the uids its first import would give it).

A session the importer renamed, its key being another agent's in Postgres, is compared
with the session it was imported into (`session_renames`); one whose key is another
agent's with no rename recorded was not imported, and is a difference.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openclaw.db.database import Database
from openclaw.db.sanitize import pg_text
from openclaw.sessions.file_identity import read_identity
from openclaw.sessions.importer import (
    CHUNK_SESSIONS,
    FileReport,
    SourceError,
    file_agent,
    open_source,
    read_sessions,
    recorded_renames,
)
from openclaw.sessions.message_uids import MessageUids
from openclaw.sessions.sqlite_store import to_ms

Normalised = tuple[Any, ...]


@dataclass(slots=True)
class SessionDifference:
    session_key: str
    problem: str


@dataclass(slots=True)
class VerifyReport:
    path: str
    agent: str | None = None
    sessions_checked: int = 0
    messages_checked: int = 0
    differences: list[SessionDifference] = field(default_factory=list)
    only_in_postgres: int = 0  # sessions of this agent that Postgres has and the file has not
    renamed_sessions: int = 0  # checked under the key the importer renamed them to
    messages_only_in_postgres: int = 0  # in this file's sessions: another machine's, or later ones
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.differences


def _tool_calls(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return value  # the importer keeps unreadable JSON as a JSON string


def _sqlite_message(row: Sequence[Any]) -> Normalised:
    role, content, reasoning, tool_calls, tool_call_id, ms = row
    texts = (pg_text(content), pg_text(reasoning))
    return (role, *texts, _tool_calls(pg_text(tool_calls)), pg_text(tool_call_id), ms)


def _pg_message(row: Sequence[Any]) -> Normalised:
    role, content, reasoning, tool_calls, tool_call_id, created_at = row
    return (role, content, reasoning, _tool_calls(tool_calls), tool_call_id, to_ms(created_at))


FIELDS = ("role", "content", "reasoning_content", "tool_calls", "tool_call_id", "time")


def _same_message(local: Normalised, stored: Normalised) -> bool:
    """What the importer requires to re-key a message from its earlier uid: the same role,
    content and time (the session is the same: only its messages are looked at)."""
    return (local[0], local[1], local[5]) == (stored[0], stored[1], stored[5])


Stored = dict[bytes, tuple[int, Normalised]]  # a session's messages in Postgres: uid -> (id, message)


def _session_problem(
    uids: MessageUids, session_key: str, local: Sequence[tuple[int, Normalised]], stored: Stored
) -> tuple[str | None, int]:
    """The first problem of a session (None if none), and how many of its messages in
    Postgres are not the file's. `local`: (row id, message) in the file's order."""
    matched: set[bytes] = set()
    problem = None
    last_id: int | None = None  # of the file's previous message found in Postgres
    for i, (rowid, message) in enumerate(local, start=1):
        uid = uids.uid(rowid, session_key, message[5])
        found = stored.get(uid)
        if found is None and (earlier := uids.earlier_uid(rowid)) is not None:
            candidate = stored.get(earlier)
            if candidate is not None and _same_message(message, candidate[1]):
                found, uid = candidate, earlier
        if found is None:
            problem = problem or f"message {i} missing in Postgres"
            continue
        matched.add(uid)
        pg_id, theirs = found
        if theirs != message:
            which = [name for name, a, b in zip(FIELDS, message, theirs, strict=True) if a != b]
            problem = problem or f"message {i} differs ({', '.join(which)})"
        elif last_id is not None and pg_id < last_id:
            problem = problem or f"message {i} is out of order in Postgres"
        last_id = pg_id if last_id is None else max(last_id, pg_id)
    return problem, len(stored) - len(matched)


_SQLITE_MESSAGES = (
    "SELECT id, role, content, reasoning_content, tool_calls_json, tool_call_id, timestamp_ms"
    " FROM messages WHERE session_key = ? ORDER BY id"
)
_PG_SESSIONS = "SELECT session_key, agent_name FROM sessions WHERE session_key = ANY(%s)"
_PG_MESSAGES = """
    SELECT s.session_key, m.id, m.uid, m.role, m.content, m.reasoning_content, m.tool_calls_json::text,
           m.tool_call_id, m.created_at
    FROM messages m JOIN sessions s ON s.id = m.session_id
    WHERE s.session_key = ANY(%s)
"""


async def verify_file(database: Database, path: Path, *, agent: str | None = None) -> VerifyReport:
    report = VerifyReport(str(path))
    try:
        source = open_source(path)
    except SourceError as exc:
        report.error = str(exc)
        return report
    try:
        agent = report.agent = file_agent(path, source, agent)
        uids = MessageUids(read_identity(source), agent)
        sessions = read_sessions(source, agent, FileReport(str(path)))
        pg_keys: list[str] = []
        for start in range(0, len(sessions), CHUNK_SESSIONS):
            chunk = sessions[start : start + CHUNK_SESSIONS]
            async with database.connection() as pg:
                renames = await recorded_renames(pg, chunk)
                # the key in Postgres of each session, by its key in the file
                pg_key = {
                    s.session_key: renames.get((s.session_key, s.agent_name), s.session_key) for s in chunk
                }
                pg_side: dict[str, Stored] = {key: {} for key in pg_key.values()}
                keys = list(pg_side)
                holders = dict(await (await pg.execute(_PG_SESSIONS, (keys,))).fetchall())
                for key, pg_id, uid, *values in await (await pg.execute(_PG_MESSAGES, (keys,))).fetchall():
                    pg_side[key][uid.bytes] = (pg_id, _pg_message(values))
            for session in chunk:
                key = pg_key[session.session_key]
                pg_keys.append(key)
                report.renamed_sessions += key != session.session_key
                rows = source.execute(_SQLITE_MESSAGES, (session.original_key,))
                local = [(r[0], _sqlite_message(r[1:])) for r in rows]
                report.sessions_checked += 1
                report.messages_checked += len(local)
                holder = holders.get(key)
                if holder is None:
                    report.differences.append(SessionDifference(key, "missing in Postgres"))
                    continue
                if holder != session.agent_name:
                    report.differences.append(
                        SessionDifference(
                            key, f"in Postgres for agent {holder!r}, not {session.agent_name!r}: not imported"
                        )
                    )
                    continue
                # uids derive from the key in the file, whatever key the session got
                problem, foreign = _session_problem(uids, session.session_key, local, pg_side[key])
                report.messages_only_in_postgres += foreign
                if problem:
                    report.differences.append(SessionDifference(key, problem))
        async with database.connection() as pg:
            extra = await (
                await pg.execute(
                    "SELECT count(*) FROM sessions WHERE agent_name = %s AND NOT (session_key = ANY(%s))",
                    (agent, pg_keys),
                )
            ).fetchone()
            report.only_in_postgres = extra[0] if extra else 0
    except sqlite3.DatabaseError as exc:
        report.error = str(exc)
    finally:
        source.close()
    return report
