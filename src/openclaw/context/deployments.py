"""Deployments: what runs where. Logging an active deployment supersedes the previous
active one of the same host and component (a trigger in the schema does it, so every
writer gets the same behaviour)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from openclaw.context.models import Deployment, DeploymentStatus, parse_choice
from openclaw.context.redact import Redactor, default_redactor
from openclaw.errors import UsageError

_COLUMNS = (
    "id, host, component, version, binary_path, service_name, git_commit, pid, built_at,"
    " deployed_at, status, superseded_by, superseded_at, notes"
)


@dataclass(slots=True)
class NewDeployment:
    host: str
    component: str
    version: str
    status: DeploymentStatus | str = DeploymentStatus.ACTIVE
    binary_path: str | None = None
    service_name: str | None = None
    git_commit: str | None = None
    pid: int | None = None
    built_at: datetime | None = None
    notes: str | None = None


async def log_deployment(
    conn: AsyncConnection, new: NewDeployment, *, redactor: Redactor | None = None
) -> Deployment:
    """Record `new`; its notes are free text that the coding assistant reads, so they are
    stored with their secrets redacted, as tasks and issues are. `redactor` defaults to
    this installation's ($OPENCLAW_HOME)."""
    status = parse_choice(DeploymentStatus, new.status, "deployment status")
    if status is DeploymentStatus.SUPERSEDED:
        raise UsageError("a new deployment cannot be logged as superseded")
    for name in ("host", "component", "version"):
        if not str(getattr(new, name)).strip():
            raise UsageError(f"deployment {name} must not be empty")
    async with conn.cursor(row_factory=class_row(Deployment)) as cur:
        await cur.execute(
            f"""INSERT INTO deployments
                    (host, component, version, status, binary_path, service_name,
                     git_commit, pid, built_at, notes)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                RETURNING {_COLUMNS}""",
            (
                new.host.strip(),
                new.component.strip(),
                new.version.strip(),
                status.value,
                new.binary_path,
                new.service_name,
                new.git_commit,
                new.pid,
                new.built_at,
                (redactor or default_redactor()).redact_text(new.notes) if new.notes else new.notes,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def list_deployments(
    conn: AsyncConnection,
    *,
    current_only: bool = True,
    host: str | None = None,
    component: str | None = None,
    limit: int | None = None,
) -> list[Deployment]:
    """Current deployments (active, newest first), or the whole history."""
    async with conn.cursor(row_factory=class_row(Deployment)) as cur:
        await cur.execute(
            f"""SELECT {_COLUMNS} FROM deployments
                WHERE (NOT %(current)s OR status = 'active')
                  AND (%(host)s::text IS NULL OR host = %(host)s)
                  AND (%(component)s::text IS NULL OR component = %(component)s)
                ORDER BY deployed_at DESC, id DESC
                LIMIT %(limit)s""",
            {"current": current_only, "host": host, "component": component, "limit": limit},
        )
        return await cur.fetchall()


async def mark_stopped(conn: AsyncConnection, deployment_id: int) -> bool:
    """A clean shutdown: the active row becomes stopped (a later deployment supersedes it)."""
    cur = await conn.execute(
        "UPDATE deployments SET status = 'stopped' WHERE id = %s AND status = 'active'", (deployment_id,)
    )
    return cur.rowcount > 0
