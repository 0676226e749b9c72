"""`openclaw issues`: known bugs and their workarounds."""

from __future__ import annotations

from enum import StrEnum

import typer

from openclaw.cli.common import JSON_OPTION, print_json, print_table, run_db, when
from openclaw.context.issues import add_issue, get_issue, list_issues, set_issue_status
from openclaw.context.models import Component, IssueStatus, KnownIssue, Severity

app = typer.Typer(
    help="Track known issues: add, resolve, list (most severe first), show.", no_args_is_help=True
)


class StatusFilter(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    WONTFIX = "wontfix"
    ALL = "all"


@app.command("add")
def add_command(
    ctx: typer.Context,
    title: str = typer.Argument(..., help="One line saying what is wrong."),
    severity: Severity = typer.Option(..., help="How bad it is."),
    component: Component = typer.Option(..., help="Where it is."),
    description: str | None = typer.Option(None, help="Details: symptoms, how to reproduce."),
    workaround: str | None = typer.Option(None, help="What to do meanwhile."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a known issue."""
    issue = run_db(
        ctx,
        lambda conn: add_issue(
            conn,
            title,
            severity=severity,
            component=component,
            description=description,
            workaround=workaround,
        ),
    )
    if as_json:
        print_json(issue)
    else:
        print(f"added issue {issue.id}: [{issue.severity}] {issue.title}")


def _set_status(ctx: typer.Context, issue_id: int, status: IssueStatus, as_json: bool) -> None:
    issue, changed = run_db(ctx, lambda conn: set_issue_status(conn, issue_id, status))
    if as_json:
        print_json({"changed": changed, "issue": issue})
    elif changed:
        print(f"issue {issue.id} is now {issue.status}: {issue.title}")
    else:
        print(f"issue {issue.id} was already {issue.status}; nothing changed")


@app.command("resolve")
def resolve_command(
    ctx: typer.Context,
    issue_id: int = typer.Argument(..., metavar="ID"),
    wontfix: bool = typer.Option(False, "--wontfix", help="Close it as won't fix instead of resolved."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Close an issue as resolved (or won't fix)."""
    _set_status(ctx, issue_id, IssueStatus.WONTFIX if wontfix else IssueStatus.RESOLVED, as_json)


@app.command("reopen")
def reopen_command(
    ctx: typer.Context, issue_id: int = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPTION
) -> None:
    """Open a closed issue again."""
    _set_status(ctx, issue_id, IssueStatus.OPEN, as_json)


@app.command("list")
def list_command(
    ctx: typer.Context,
    status: StatusFilter = typer.Option(StatusFilter.OPEN, help="Which issues."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Issues, most severe first, then newest."""
    wanted = None if status is StatusFilter.ALL else IssueStatus(status.value)
    issues = run_db(ctx, lambda conn: list_issues(conn, status=wanted))
    if as_json:
        print_json(issues)
    elif not issues:
        print(f"no {'' if wanted is None else wanted.value + ' '}issues")
    else:
        print_table(
            None,
            ["id", "severity", "status", "component", "title", "workaround", "created"],
            [
                (i.id, i.severity, i.status, i.component, i.title, i.workaround, when(i.created_at))
                for i in issues
            ],
        )


def _describe(issue: KnownIssue) -> list[str]:
    lines = [
        f"issue {issue.id}: {issue.title}",
        f"severity:    {issue.severity}",
        f"status:      {issue.status}" + (f" ({when(issue.resolved_at)})" if issue.resolved_at else ""),
        f"component:   {issue.component or '-'}",
        f"created:     {when(issue.created_at)}",
    ]
    if issue.description:
        lines += ["", issue.description]
    if issue.workaround:
        lines += ["", f"workaround: {issue.workaround}"]
    return lines


@app.command("show")
def show_command(
    ctx: typer.Context, issue_id: int = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPTION
) -> None:
    """One issue in full."""
    issue = run_db(ctx, lambda conn: get_issue(conn, issue_id))
    if as_json:
        print_json(issue)
    else:
        print("\n".join(_describe(issue)))
