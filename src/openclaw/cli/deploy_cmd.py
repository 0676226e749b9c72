"""`openclaw deploy`: record and list deployments."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import typer

from openclaw import __version__, hostinfo
from openclaw.cli.common import JSON_OPTION, print_json, print_table, run_db, when
from openclaw.context.deployments import NewDeployment, list_deployments, log_deployment
from openclaw.context.models import Deployment, DeploymentStatus

app = typer.Typer(help="Record what is deployed where, and list it.", no_args_is_help=True)


class LoggableStatus(StrEnum):
    """The statuses a new deployment can have (superseded is set by the next one)."""

    ACTIVE = DeploymentStatus.ACTIVE.value
    STOPPED = DeploymentStatus.STOPPED.value
    FAILED = DeploymentStatus.FAILED.value


@app.command("log")
def log_command(
    ctx: typer.Context,
    component: str = typer.Option("gateway", help="What was deployed: gateway, cli, node-gateway..."),
    version: str = typer.Option(__version__, help="Version deployed (default: this openclaw's)."),
    commit: str | None = typer.Option(
        None, help="Git commit (default: HEAD of the current directory, if a repository)."
    ),
    host: str = typer.Option(hostinfo.hostname(), help="Host deployed to (default: this machine)."),
    status: LoggableStatus = typer.Option(
        LoggableStatus.ACTIVE,
        help="active supersedes the host's previous active deployment of the component.",
    ),
    binary_path: str | None = typer.Option(None, help="Installed binary (default: this openclaw command)."),
    service_name: str | None = typer.Option(
        None, help="systemd unit (default: the unit this runs in, if any)."
    ),
    built_at: datetime | None = typer.Option(None, help="When the build was made (ISO 8601)."),
    notes: str | None = typer.Option(None, help="Free text."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a deployment; an active one supersedes the previous active one of HOST+COMPONENT."""
    new = NewDeployment(
        host=host,
        component=component,
        version=version,
        status=status.value,
        binary_path=binary_path or hostinfo.executable_path(),
        service_name=service_name or hostinfo.systemd_unit(),
        git_commit=commit or hostinfo.git_head(),
        built_at=built_at.astimezone() if built_at else None,  # no zone given: local time
        notes=notes,
    )
    row = run_db(ctx, lambda conn: log_deployment(conn, new))
    if as_json:
        print_json(row)
    else:
        commit = f" ({row.git_commit[:12]})" if row.git_commit else ""
        what = f"{row.component} {row.version}{commit}"
        print(f"logged deployment {row.id}: {what} on {row.host}, {row.status}")


def _rows(deployments: list[Deployment]) -> list[tuple[object, ...]]:
    return [
        (
            d.id,
            d.host,
            d.component,
            d.version,
            (d.git_commit or "")[:12],
            d.status,
            when(d.deployed_at),
            d.notes,
        )
        for d in deployments
    ]


@app.command("list")
def list_command(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Show the whole history, superseded rows too."),
    host: str | None = typer.Option(None, help="Only this host."),
    component: str | None = typer.Option(None, help="Only this component."),
    limit: int = typer.Option(50, min=1, max=100_000, help="At most this many rows."),
    as_json: bool = JSON_OPTION,
) -> None:
    """What's deployed where: the active deployment of each host and component."""
    rows = run_db(
        ctx,
        lambda conn: list_deployments(
            conn, current_only=not all_, host=host, component=component, limit=limit
        ),
    )
    if as_json:
        print_json(rows)
    elif not rows:
        print("no deployments recorded" + ("" if all_ else " (active)"))
    else:
        print_table(
            None, ["id", "host", "component", "version", "commit", "status", "deployed", "notes"], _rows(rows)
        )
