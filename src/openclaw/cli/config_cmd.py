"""`openclaw config`: snapshots of config files, their history and differences."""

from __future__ import annotations

from pathlib import Path

import typer
from psycopg import AsyncConnection

from openclaw import hostinfo
from openclaw.cli.common import JSON_OPTION, print_json, print_table, run_db, when
from openclaw.context.config_snapshots import (
    SnapshotResult,
    config_history,
    get_snapshot,
    latest_snapshot,
    previous_snapshot,
    scrub_snapshots,
    snapshot_config,
)
from openclaw.context.diff import describe_change, diff
from openclaw.context.models import ChangeSource, ConfigSnapshot
from openclaw.context.redact import Redactor
from openclaw.errors import UsageError
from openclaw.home import manual_config_path, openclaw_home
from openclaw.settings import read_json_object

app = typer.Typer(
    help="Snapshot config files (secrets redacted), show history and diffs.", no_args_is_help=True
)

PATH_HELP = "Config file (default: $OPENCLAW_HOME/openclaw-manual.json)."


def _config_path(path: Path | None) -> Path:
    return (path or manual_config_path()).expanduser().resolve()


@app.command("snapshot")
def snapshot_command(
    ctx: typer.Context,
    path: Path | None = typer.Option(None, "--path", help=PATH_HELP),
    source: ChangeSource = typer.Option(ChangeSource.CLI, help="Who made the change."),
    force: bool = typer.Option(False, "--force", help="Add a row even if nothing changed."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Store the config with secrets redacted; record which top-level keys changed.

    An unchanged config adds no row unless --force. Run it after each start (a watchdog's
    poststart hook) to keep a history.
    """
    config_path = _config_path(path)
    document = read_json_object(config_path)
    redactor = Redactor.for_home(openclaw_home())
    result: SnapshotResult = run_db(
        ctx,
        lambda conn: snapshot_config(
            conn,
            path=str(config_path),
            config=document,
            redactor=redactor,
            host=hostinfo.hostname(),
            source=source,
            force=force,
        ),
    )
    if as_json:
        print_json({"created": result.created, "snapshot": result.snapshot})
    elif not result.created:
        latest = result.snapshot
        print(f"unchanged since snapshot {latest.id} ({when(latest.snapshot_at)}); no row added")
    else:
        keys = ", ".join(result.snapshot.changed_keys or []) or "none"
        first = "" if result.previous else " (first snapshot of this file)"
        print(f"snapshot {result.snapshot.id} of {config_path}{first}: changed keys: {keys}")


@app.command("history")
def history_command(
    ctx: typer.Context,
    path: Path | None = typer.Option(None, "--path", help="Only this config file (default: every file)."),
    limit: int = typer.Option(20, min=1, max=100_000, help="At most this many snapshots."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Snapshots, newest first, with the keys each one changed."""
    only = str(_config_path(path)) if path else None
    rows = run_db(ctx, lambda conn: config_history(conn, path=only, limit=limit))
    if as_json:
        print_json(rows)
    elif not rows:
        print("no config snapshots")
    else:
        print_table(
            None,
            ["id", "taken", "host", "path", "source", "changed keys"],
            [
                (
                    s.id,
                    when(s.snapshot_at),
                    s.host,
                    s.config_path,
                    s.change_source,
                    ", ".join(s.changed_keys or []),
                )
                for s in rows
            ],
        )


@app.command("scrub")
def scrub_command(ctx: typer.Context) -> None:
    """Redact secrets in every stored snapshot (e.g. ones openclaw-rs wrote in plain text),
    and in the context values, tasks and issues an older version stored."""
    from openclaw.context.issues import scrub_issues
    from openclaw.context.kv import scrub_values
    from openclaw.context.tasks import scrub_tasks

    redactor = Redactor.for_home(openclaw_home())

    async def scrub(conn: AsyncConnection) -> list[tuple[int, str]]:
        return [
            (await scrub_snapshots(conn, redactor), "snapshot"),
            (await scrub_values(conn, redactor), "context value"),
            (await scrub_tasks(conn, redactor), "task"),
            (await scrub_issues(conn, redactor), "issue"),
        ]

    counts = run_db(ctx, scrub)
    print("redacted secrets in " + ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in counts))


class _NothingToCompare(Exception):
    """Fewer than two snapshots: an answer for the user, not an error."""


async def _pair(conn: AsyncConnection, ids: list[int]) -> tuple[ConfigSnapshot, ConfigSnapshot]:
    if len(ids) == 2:
        return await get_snapshot(conn, ids[0]), await get_snapshot(conn, ids[1])
    if len(ids) == 1:
        newer = await get_snapshot(conn, ids[0])
    else:
        latest = await latest_snapshot(
            conn, path=str(manual_config_path().expanduser().resolve()), host=hostinfo.hostname()
        )
        if latest is None:
            raise _NothingToCompare(
                f"no snapshots of {manual_config_path()} on this host yet"
                " (`openclaw config snapshot` takes one; `config history` lists all)"
            )
        newer = latest
    older = await previous_snapshot(conn, newer)
    if older is None:
        raise _NothingToCompare(
            f"snapshot {newer.id} is the first of {newer.config_path}: nothing before it to compare with"
        )
    return older, newer


@app.command("diff")
def diff_command(
    ctx: typer.Context,
    ids: list[int] = typer.Argument(
        None,
        metavar="[ID1 [ID2]]",
        help="Two snapshots; one (compared with the one before it); "
        "none: the latest of openclaw-manual.json on this host.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """What changed between two snapshots, key by key (nested paths)."""
    wanted = ids or []
    if len(wanted) > 2:
        raise UsageError("config diff takes at most two snapshot ids")
    try:
        older, newer = run_db(ctx, lambda conn: _pair(conn, wanted))
    except _NothingToCompare as nothing:
        if as_json:
            print_json({"from": None, "to": None, "changes": [], "note": str(nothing)})
        else:
            print(nothing)
        return
    changes = diff(older.config_json, newer.config_json)
    if as_json:
        print_json({"from": older.id, "to": newer.id, "changes": changes})
        return
    print(
        f"snapshot {older.id} ({when(older.snapshot_at)}) -> {newer.id} ({when(newer.snapshot_at)})"
        f" of {newer.config_path}"
    )
    for change in changes:
        print(describe_change(change))
    if not changes:
        print("(no differences)")
