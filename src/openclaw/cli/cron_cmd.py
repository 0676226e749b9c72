"""`openclaw cron`: the jobs of jobs.json, running one now, their history, and which
gateway runs each job's slots (the leases)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import typer
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from openclaw import hostinfo
from openclaw.app import load_settings, open_runtime
from openclaw.cli.common import JSON_OPTION, note, print_json, print_table, run_db, state, when
from openclaw.cron.jobs import CronSchedule, jobs_path, load_jobs
from openclaw.cron.runner import CronRunner
from openclaw.errors import NotFoundError
from openclaw.home import openclaw_home

app = typer.Typer(
    help="Cron jobs ($OPENCLAW_HOME/cron/jobs.json): list, run one now, history, leases.",
    no_args_is_help=True,
)


@app.command("list")
def list_command(as_json: bool = JSON_OPTION) -> None:
    """The jobs, their schedules, next and last runs; and the ones that cannot run, with why."""
    path = jobs_path(openclaw_home())
    if not path.exists():  # no jobs.json yet: an answer, not an error
        if as_json:
            print_json({"jobs": [], "skipped": []})
        else:
            print(f"no jobs ({path} does not exist)")
        return
    loaded = load_jobs(path)
    if not loaded.jobs and not loaded.skipped and not as_json:
        print(f"no jobs in {path}")
        return
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for job in loaded.jobs:
        schedule = (
            f"{job.schedule.expr} ({job.schedule.tz.key})"
            if isinstance(job.schedule, CronSchedule)
            else f"every {job.schedule.every_ms // 1000} s"
        )
        rows.append(
            {
                "id": job.id,
                "name": job.name,
                "enabled": job.enabled,
                "schedule": schedule,
                "next_run": job.schedule.next_after(now) if job.enabled else None,
                "last_status": job.state.get("lastStatus"),
                "model": str(job.model) if job.model else None,
            }
        )
    if as_json:
        print_json({"jobs": rows, "skipped": loaded.skipped})
        return
    print_table(
        None,
        ["name", "enabled", "schedule", "next run", "last", "model"],
        [
            (
                r["name"],
                "yes" if r["enabled"] else "no",
                r["schedule"],
                when(r["next_run"]),
                r["last_status"],
                r["model"],
            )
            for r in rows
        ],
    )
    for reason in loaded.skipped:
        note(f"skipped: {reason}")


@app.command("run")
def run_command(ctx: typer.Context, name: str = typer.Argument(..., help="Job name or id.")) -> None:
    """Run a job now, once, and record it like a scheduled run."""
    path = jobs_path(openclaw_home())
    loaded = load_jobs(path)
    job = next((j for j in loaded.jobs if name in (j.name, j.id)), None)
    if job is None:
        raise NotFoundError(f"no runnable job {name!r} in {path}")

    settings = load_settings(require_models=True)  # read once, before anything is written

    async def go() -> None:
        runtime = await open_runtime(
            settings.database_target(state(ctx).database_url), home=settings.home, settings=settings
        )
        try:
            runner = CronRunner(
                path, runtime.agent, runtime.spool, runtime.database, host=hostinfo.hostname()
            )
            runner.reload()
            target = next(j for j in runner.jobs() if j.id == job.id)
            execution = await runner.run(target)
            print(
                f"{job.name}: {execution.status} in {execution.duration_ms} ms"
                + (f": {execution.error}" if execution.error else "")
            )
        finally:
            await runtime.close()

    asyncio.run(go())


@app.command("history")
def history_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this job."),
    limit: int = typer.Option(20, min=1, max=10_000),
    as_json: bool = JSON_OPTION,
) -> None:
    """Past runs, newest first (from cron_executions)."""

    async def query(conn: AsyncConnection) -> list[dict[str, Any]]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                """SELECT job_name, status, started_at, duration_ms, tokens_used, model, host,
                          decided_by, scheduled_for, error
                   FROM cron_executions
                   WHERE %(name)s::text IS NULL OR job_name = %(name)s OR job_id = %(name)s
                   ORDER BY started_at DESC LIMIT %(limit)s""",
                {"name": name, "limit": limit},
            )
            return await cur.fetchall()

    rows = run_db(ctx, query)
    if as_json:
        print_json(rows)
    elif not rows:
        print("no cron runs recorded")
    else:
        print_table(
            None,
            ["job", "status", "started", "ms", "tokens", "model", "host", "by", "error"],
            [
                (
                    r["job_name"],
                    r["status"],
                    when(r["started_at"]),
                    r["duration_ms"],
                    r["tokens_used"],
                    r["model"],
                    r["host"],
                    r["decided_by"],
                    (r["error"] or "")[:80],
                )
                for r in rows
            ],
        )


@app.command("leases")
def leases_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Which gateway runs each job's slots (and, while Postgres is down, alone): the leases."""

    async def query(conn: AsyncConnection) -> list[dict[str, Any]]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                """SELECT agent_name, job_id, holder, holder_boot_id, since, expires_at,
                          expires_at > now() AS held
                   FROM cron_leases ORDER BY agent_name, job_id"""
            )
            return await cur.fetchall()

    rows = run_db(ctx, query)
    if as_json:
        print_json(rows)
    elif not rows:
        print("no cron leases yet (a gateway takes them when it runs its jobs)")
    else:
        print_table(
            None,
            ["agent", "job", "holder", "until", "state"],
            [
                (
                    r["agent_name"],
                    r["job_id"],
                    r["holder"],
                    when(r["expires_at"]),
                    "held" if r["held"] else "free",
                )
                for r in rows
            ],
        )
