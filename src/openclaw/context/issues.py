"""Known issues: bugs and their workarounds, most severe first."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import class_row

from openclaw.context.models import Component, IssueStatus, KnownIssue, Severity, parse_choice
from openclaw.context.redact import Redactor, default_redactor
from openclaw.errors import NotFoundError, UsageError

# severity is an enum; psycopg returns it as str. ORDER BY must name the column, never a
# text alias of it, or 'medium' sorts first again.
_COLUMNS = "id, title, description, severity, status, component, workaround, created_at, resolved_at"


async def add_issue(
    conn: AsyncConnection,
    title: str,
    *,
    severity: Severity | str,
    component: Component | str | None,
    description: str | None = None,
    workaround: str | None = None,
    redactor: Redactor | None = None,
) -> KnownIssue:
    """Record a known issue. Title, description and workaround are free text that the
    coding assistant reads: credentials in them are redacted before they are stored
    ("workaround: log in with password hunter2" keeps all but the password)."""
    if not title.strip():
        raise UsageError("issue title must not be empty")
    level = parse_choice(Severity, severity, "severity")
    part = parse_choice(Component, component, "component") if component is not None else None
    scrub = (redactor or default_redactor()).redact_text
    description = scrub(description) if description is not None else None
    workaround = scrub(workaround) if workaround is not None else None
    async with conn.cursor(row_factory=class_row(KnownIssue)) as cur:
        await cur.execute(
            f"""INSERT INTO known_issues (title, description, severity, component, workaround)
                VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
            (scrub(title.strip()), description, level.value, part.value if part else None, workaround),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def get_issue(conn: AsyncConnection, issue_id: int) -> KnownIssue:
    async with conn.cursor(row_factory=class_row(KnownIssue)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM known_issues WHERE id = %s", (issue_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no issue with id {issue_id}")
    return row


async def set_issue_status(
    conn: AsyncConnection, issue_id: int, status: IssueStatus | str
) -> tuple[KnownIssue, bool]:
    """Resolve, mark wontfix or reopen. Returns the issue and whether it changed."""
    new_status = parse_choice(IssueStatus, status, "issue status")
    async with conn.cursor(row_factory=class_row(KnownIssue)) as cur:
        await cur.execute(
            f"""UPDATE known_issues
                   SET status = %(status)s,
                       resolved_at = CASE WHEN %(status)s = 'open' THEN NULL ELSE now() END
                 WHERE id = %(id)s AND status <> %(status)s
                 RETURNING {_COLUMNS}""",
            {"id": issue_id, "status": new_status.value},
        )
        row = await cur.fetchone()
    if row is not None:
        return row, True
    return await get_issue(conn, issue_id), False  # NotFoundError if there is none


async def list_issues(
    conn: AsyncConnection, *, status: IssueStatus | str | None = IssueStatus.OPEN
) -> list[KnownIssue]:
    """Issues with `status` (all if None), most severe first, then newest."""
    wanted = parse_choice(IssueStatus, status, "issue status").value if status else None
    async with conn.cursor(row_factory=class_row(KnownIssue)) as cur:
        await cur.execute(
            f"""SELECT {_COLUMNS} FROM known_issues
                WHERE %(status)s::text IS NULL OR status = %(status)s
                ORDER BY known_issues.severity DESC, created_at DESC, id DESC""",
            {"status": wanted},
        )
        return await cur.fetchall()


async def scrub_issues(conn: AsyncConnection, redactor: Redactor) -> int:
    """Redact the titles, descriptions and workarounds stored before a rule was added.
    Returns how many issues changed."""
    changed = 0
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT id, title, description, workaround FROM known_issues ORDER BY id FOR UPDATE"
        )
        for issue_id, *texts in await cur.fetchall():
            redacted = [redactor.redact_text(t) if t is not None else None for t in texts]
            if redacted != texts:
                await conn.execute(
                    "UPDATE known_issues SET title = %s, description = %s, workaround = %s WHERE id = %s",
                    (*redacted, issue_id),
                )
                changed += 1
    return changed
