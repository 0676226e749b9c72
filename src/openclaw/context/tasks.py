"""The task log: what was done and when, for session continuity."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection
from psycopg.rows import class_row

from openclaw.context.models import Task, TaskCategory, parse_choice
from openclaw.context.redact import Redactor, default_redactor
from openclaw.errors import UsageError

_COLUMNS = "id, description, category, files_changed, version, git_commit, completed_at"


async def log_task(
    conn: AsyncConnection,
    description: str,
    *,
    category: TaskCategory | str | None = None,
    files_changed: Sequence[str] | None = None,
    version: str | None = None,
    git_commit: str | None = None,
    redactor: Redactor | None = None,
) -> Task:
    """Record a task. Its description is free text that the coding assistant reads (and,
    with --allow-writes, writes): credentials in it are redacted before it is stored
    (`Redactor.redact_text`: "deployed with password hunter2" keeps its words but the
    password), as in the key-value store and known issues."""
    if not description.strip():
        raise UsageError("task description must not be empty")
    text = (redactor or default_redactor()).redact_text(description.strip())
    kind = parse_choice(TaskCategory, category, "category") if category is not None else None
    files = [f.strip() for f in files_changed or () if f.strip()] or None
    async with conn.cursor(row_factory=class_row(Task)) as cur:
        await cur.execute(
            f"""INSERT INTO task_log (description, category, files_changed, version, git_commit)
                VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
            (text, kind.value if kind else None, files, version, git_commit),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def list_tasks(
    conn: AsyncConnection, *, limit: int = 10, category: TaskCategory | str | None = None
) -> list[Task]:
    """The latest tasks, newest first."""
    if limit < 1:
        raise UsageError("limit must be at least 1")
    kind = parse_choice(TaskCategory, category, "category").value if category else None
    async with conn.cursor(row_factory=class_row(Task)) as cur:
        await cur.execute(
            f"""SELECT {_COLUMNS} FROM task_log
                WHERE %(category)s::text IS NULL OR category = %(category)s
                ORDER BY completed_at DESC, id DESC LIMIT %(limit)s""",
            {"category": kind, "limit": limit},
        )
        return await cur.fetchall()


async def scrub_tasks(conn: AsyncConnection, redactor: Redactor) -> int:
    """Redact the descriptions stored before a rule was added. Returns how many changed."""
    changed = 0
    async with conn.transaction():
        cur = await conn.execute("SELECT id, description FROM task_log ORDER BY id FOR UPDATE")
        for task_id, description in await cur.fetchall():
            redacted = redactor.redact_text(description)
            if redacted != description:
                await conn.execute("UPDATE task_log SET description = %s WHERE id = %s", (redacted, task_id))
                changed += 1
    return changed
