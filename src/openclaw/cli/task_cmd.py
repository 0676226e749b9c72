"""`openclaw task`: the log of work done."""

from __future__ import annotations

import typer

from openclaw import hostinfo
from openclaw.cli.common import JSON_OPTION, print_json, print_table, run_db, when
from openclaw.context.models import TaskCategory
from openclaw.context.tasks import list_tasks, log_task

app = typer.Typer(help="Log what was done, list recent work.", no_args_is_help=True)


@app.command("log")
def log_command(
    ctx: typer.Context,
    description: str = typer.Argument(..., help="What was done."),
    category: TaskCategory | None = typer.Option(None, help="Kind of work."),
    files: str | None = typer.Option(None, help="Files changed, comma-separated: a.py,b.py"),
    version: str | None = typer.Option(None, help="Version the work went into."),
    commit: str | None = typer.Option(
        None, help="Git commit (default: HEAD of the current directory, if a repository)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a piece of work."""
    file_list = files.split(",") if files else None
    task = run_db(
        ctx,
        lambda conn: log_task(
            conn,
            description,
            category=category,
            files_changed=file_list,
            version=version,
            git_commit=commit or hostinfo.git_head(),
        ),
    )
    if as_json:
        print_json(task)
    else:
        print(f"logged task {task.id}: {task.description}")


@app.command("list")
def list_command(
    ctx: typer.Context,
    limit: int = typer.Option(10, min=1, max=100_000, help="At most this many tasks."),
    category: TaskCategory | None = typer.Option(None, help="Only this kind of work."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Recent work, newest first."""
    tasks = run_db(ctx, lambda conn: list_tasks(conn, limit=limit, category=category))
    if as_json:
        print_json(tasks)
    elif not tasks:
        print("no tasks logged")
    else:
        print_table(
            None,
            ["id", "completed", "category", "description", "version", "commit", "files"],
            [
                (
                    t.id,
                    when(t.completed_at),
                    t.category,
                    t.description,
                    t.version,
                    (t.git_commit or "")[:12],
                    ", ".join(t.files_changed or []),
                )
                for t in tasks
            ],
        )
