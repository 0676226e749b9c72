"""The context data layer against a real database."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from openclaw.context.deployments import NewDeployment, list_deployments, log_deployment
from openclaw.context.issues import add_issue, get_issue, list_issues, set_issue_status
from openclaw.context.kv import delete_value, get_value, list_values, set_value
from openclaw.context.models import IssueStatus, Severity
from openclaw.context.tasks import list_tasks, log_task
from openclaw.errors import NotFoundError, UsageError
from tests.conftest import Cli


async def test_issues_sort_most_severe_first(conn: psycopg.AsyncConnection) -> None:
    for title, severity in [("m", "medium"), ("c", "critical"), ("l", "low"), ("h", "high")]:
        await add_issue(conn, title, severity=severity, component="core")
    issues = await list_issues(conn)
    assert [i.severity for i in issues] == ["critical", "high", "medium", "low"]


async def test_issue_lifecycle(conn: psycopg.AsyncConnection) -> None:
    issue = await add_issue(
        conn,
        "  leaks sockets ",
        severity=Severity.HIGH,
        component="gateway",
        description="after reconnect",
        workaround="restart nightly",
    )
    assert issue.title == "leaks sockets" and issue.status == "open" and issue.resolved_at is None
    resolved, changed = await set_issue_status(conn, issue.id, IssueStatus.RESOLVED)
    assert changed and resolved.status == "resolved" and resolved.resolved_at is not None
    again, changed = await set_issue_status(conn, issue.id, "resolved")
    assert not changed and again.resolved_at == resolved.resolved_at
    reopened, _ = await set_issue_status(conn, issue.id, "open")
    assert reopened.resolved_at is None
    assert [i.id for i in await list_issues(conn, status="open")] == [issue.id]
    assert await list_issues(conn, status="wontfix") == []
    assert (await get_issue(conn, issue.id)).workaround == "restart nightly"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"title": "x", "severity": "urgent", "component": "core"}, "unknown severity 'urgent'"),
        ({"title": "x", "severity": "low", "component": "kernel"}, "unknown component 'kernel'"),
        ({"title": "  ", "severity": "low", "component": "core"}, "title must not be empty"),
    ],
)
async def test_bad_issue_is_refused_and_writes_nothing(
    conn: psycopg.AsyncConnection, kwargs: dict[str, str], message: str
) -> None:
    title = kwargs.pop("title")
    with pytest.raises(UsageError, match=message):
        await add_issue(conn, title, **kwargs)
    assert await list_issues(conn, status=None) == []


async def test_unknown_issue_id(conn: psycopg.AsyncConnection) -> None:
    with pytest.raises(NotFoundError, match="no issue with id 404"):
        await set_issue_status(conn, 404, "resolved")


async def test_tasks_newest_first_and_filtered(conn: psycopg.AsyncConnection) -> None:
    await log_task(conn, "first", category="feature", files_changed=["a.py", " ", "b.py"])
    await log_task(conn, "second", category="bugfix", version="v1.16.0", git_commit="abc")
    await log_task(conn, "third")
    assert [t.description for t in await list_tasks(conn)] == ["third", "second", "first"]
    assert [t.description for t in await list_tasks(conn, category="feature")] == ["first"]
    assert (await list_tasks(conn, limit=1))[0].description == "third"
    first = (await list_tasks(conn, category="feature"))[0]
    assert first.files_changed == ["a.py", "b.py"]
    with pytest.raises(UsageError, match="unknown category 'chore'"):
        await log_task(conn, "x", category="chore")


async def test_project_context_roundtrip(conn: psycopg.AsyncConnection) -> None:
    focus = {"task": "postgres migration", "phase": 3, "tags": ["db", "ünïcode"]}
    await set_value(conn, "current_focus", focus)
    await set_value(conn, "flag", True)
    assert (await get_value(conn, "current_focus")).value == focus
    await set_value(conn, "current_focus", {"task": "mcp"})
    assert (await get_value(conn, "current_focus")).value == {"task": "mcp"}
    assert [e.key for e in await list_values(conn)] == ["current_focus", "flag"]
    await delete_value(conn, "flag")
    with pytest.raises(NotFoundError):
        await get_value(conn, "flag")
    with pytest.raises(NotFoundError):
        await delete_value(conn, "flag")


async def test_context_values_lose_their_secrets_not_their_sentences(conn: psycopg.AsyncConnection) -> None:
    """Issue 12: "the staging password is hunter2" was stored and readable."""
    await set_value(conn, "staging", "the staging password is hunter2")
    await set_value(conn, "focus", "reset your password in settings; the token bucket refills")
    stored = {e.key: e.value for e in await list_values(conn)}
    assert (
        stored["staging"].startswith("the staging password is [redacted:")
        and "hunter2" not in stored["staging"]
    )
    assert stored["focus"] == "reset your password in settings; the token bucket refills"


async def test_deployment_supersedes_previous_active(conn: psycopg.AsyncConnection) -> None:
    first = await log_deployment(conn, NewDeployment("nixos", "gateway", "1.0"))
    other_host = await log_deployment(conn, NewDeployment("g731", "gateway", "1.0"))
    failed = await log_deployment(conn, NewDeployment("nixos", "gateway", "1.2", status="failed"))
    second = await log_deployment(conn, NewDeployment("nixos", "gateway", "1.1", git_commit="deadbeef"))
    current = await list_deployments(conn)
    assert {(d.host, d.version) for d in current} == {("nixos", "1.1"), ("g731", "1.0")}
    history = {d.id: d for d in await list_deployments(conn, current_only=False)}
    assert history[first.id].status == "superseded"
    assert history[first.id].superseded_by == second.id
    assert history[failed.id].status == "failed"
    assert history[other_host.id].status == "active"


async def test_concurrent_deployments_of_one_component_leave_one_active(db_url: str) -> None:
    async def deploy(version: str) -> None:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            await log_deployment(c, NewDeployment("nixos", "gateway", version))

    await asyncio.gather(*(deploy(f"1.{i}") for i in range(8)))
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
        active = await list_deployments(c, host="nixos", component="gateway")
        history = await list_deployments(c, current_only=False)
    assert len(active) == 1 and len(history) == 8
    assert sum(d.status == "superseded" for d in history) == 7


async def test_deployment_validation(conn: psycopg.AsyncConnection) -> None:
    with pytest.raises(UsageError, match="cannot be logged as superseded"):
        await log_deployment(conn, NewDeployment("h", "gateway", "1", status="superseded"))
    with pytest.raises(UsageError, match="unknown deployment status 'running'"):
        await log_deployment(conn, NewDeployment("h", "gateway", "1", status="running"))
    with pytest.raises(UsageError, match="host must not be empty"):
        await log_deployment(conn, NewDeployment(" ", "gateway", "1"))
    assert await list_deployments(conn, current_only=False) == []


def test_deployment_notes_and_old_rows_lose_their_secrets(cli: Cli, db_url: str) -> None:
    """Deployment notes are free text the assistant reads, as tasks and issues are; and
    `config scrub` redacts what an older version stored in every context table."""
    logged = cli("deploy", "log", "--host", "h", "--version", "1", "--notes", "staging password is hunter2x")
    assert logged.exit_code == 0
    with psycopg.connect(db_url) as conn:
        notes = conn.execute("SELECT notes FROM deployments").fetchone()
        assert notes is not None and "hunter2x" not in notes[0] and notes[0].startswith("staging password is")
        # Rows an older version stored as they were written.
        conn.execute(
            "INSERT INTO project_context (key, value) VALUES ('notes', '\"the db password is hunter2x\"')"
        )
        conn.execute("INSERT INTO task_log (description) VALUES ('rotated: token is Zq8pLm2vXw')")
        conn.execute("INSERT INTO known_issues (title) VALUES ('db password: hunter2x')")
    scrub = cli("config", "scrub")
    assert scrub.exit_code == 0 and "1 context value, 1 task, 1 issue" in scrub.stdout
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT value::text FROM project_context UNION ALL SELECT description FROM task_log"
            " UNION ALL SELECT title FROM known_issues"
        ).fetchall()
    assert len(stored) == 3 and not any("hunter2x" in s or "Zq8pLm2vXw" in s for (s,) in stored)
    result = cli("context", "set", "notes", "the db password is hunter2x")
    assert result.exit_code == 0 and "stored as [redacted:…] markers" in result.stderr
