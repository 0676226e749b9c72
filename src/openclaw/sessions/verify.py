"""`openclaw sessions verify`: does Postgres hold what each SQLite file holds? The cutover check.

For every session of a file: the number of messages and a checksum of their content
(role, texts, tool calls as parsed JSON, tool call id, time to the millisecond) on both
sides, in order. Where they differ, the first differing message is named.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openclaw.db.database import Database
from openclaw.db.sanitize import pg_text
from openclaw.sessions.importer import (
    CHUNK_SESSIONS,
    FileReport,
    SourceError,
    file_agent,
    open_source,
    read_sessions,
)
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


def _digest(messages: Iterable[Normalised]) -> tuple[int, str]:
    h = hashlib.sha256()
    count = 0
    for message in messages:
        h.update(json.dumps(message, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
        count += 1
    return count, h.hexdigest()


def _first_difference(a: Sequence[Normalised], b: Sequence[Normalised]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            fields = ("role", "content", "reasoning_content", "tool_calls", "tool_call_id", "time")
            which = [name for name, u, v in zip(fields, x, y, strict=True) if u != v]
            return f"message {i + 1} differs ({', '.join(which)})"
    return f"{len(a)} messages in SQLite, {len(b)} in Postgres"


_SQLITE_MESSAGES = (
    "SELECT role, content, reasoning_content, tool_calls_json, tool_call_id, timestamp_ms"
    " FROM messages WHERE session_key = ? ORDER BY id"
)
_PG_MESSAGES = """
    SELECT s.session_key, m.role, m.content, m.reasoning_content, m.tool_calls_json::text, m.tool_call_id,
           m.created_at
    FROM messages m JOIN sessions s ON s.id = m.session_id
    WHERE s.session_key = ANY(%s) ORDER BY s.session_key, m.id
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
        sessions = read_sessions(source, agent, FileReport(str(path)))
        for start in range(0, len(sessions), CHUNK_SESSIONS):
            chunk = sessions[start : start + CHUNK_SESSIONS]
            pg_side: dict[str, list[Normalised]] = {s.session_key: [] for s in chunk}
            async with database.connection() as pg:
                keys = list(pg_side)
                present = {
                    row[0]
                    for row in await (
                        await pg.execute(
                            "SELECT session_key FROM sessions WHERE session_key = ANY(%s)", (keys,)
                        )
                    ).fetchall()
                }
                for row in await (await pg.execute(_PG_MESSAGES, (keys,))).fetchall():
                    pg_side[row[0]].append(_pg_message(row[1:]))
            for session in chunk:
                rows = source.execute(_SQLITE_MESSAGES, (session.original_key,))
                local = [_sqlite_message(r) for r in rows]
                report.sessions_checked += 1
                report.messages_checked += len(local)
                remote = pg_side[session.session_key]
                if session.session_key not in present:
                    report.differences.append(SessionDifference(session.session_key, "missing in Postgres"))
                elif _digest(local) != _digest(remote):
                    report.differences.append(
                        SessionDifference(session.session_key, _first_difference(local, remote))
                    )
        async with database.connection() as pg:
            extra = await (
                await pg.execute(
                    "SELECT count(*) FROM sessions WHERE agent_name = %s AND NOT (session_key = ANY(%s))",
                    (agent, [s.session_key for s in sessions]),
                )
            ).fetchone()
            report.only_in_postgres = extra[0] if extra else 0
    except sqlite3.DatabaseError as exc:
        report.error = str(exc)
    finally:
        source.close()
    return report
