"""`openclaw migrate-sessions` and `openclaw sessions`: the cutover from SQLite, and a look
at stored conversations."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from openclaw.chat import Message
from openclaw.cli.common import (
    JSON_OPTION,
    console,
    ensure_schema,
    err_console,
    note,
    open_database,
    print_json,
    print_table,
    run_with_database,
    when,
)
from openclaw.db import Database
from openclaw.errors import ConfigError, NotFoundError, UsageError
from openclaw.home import openclaw_home
from openclaw.sessions import Backend, SessionInfo, SessionStore, configured_backend
from openclaw.sessions.importer import FileReport, count_messages, find_session_files, import_file
from openclaw.sessions.postgres_store import PostgresSessionStore
from openclaw.sessions.sqlite_store import SqliteSessionStore
from openclaw.sessions.verify import VerifyReport, verify_file

T = TypeVar("T")

app = typer.Typer(
    help="Stored conversations: list, show, export, and verify the cutover.", no_args_is_help=True
)

FILES_ARGUMENT = typer.Argument(None, metavar="[FILE]...", help="sessions.db files (default: every agent's).")
AGENTS_DIR_OPTION = typer.Option(
    None, "--agents-dir", help="Where agents/*/sessions.db are (default: $OPENCLAW_HOME/agents)."
)


def _session_files(files: list[Path] | None, agents_dir: Path | None) -> list[Path]:
    if files and agents_dir:
        raise UsageError("give files or --agents-dir, not both")
    if files:
        return files
    directory = agents_dir or openclaw_home() / "agents"
    if agents_dir and not agents_dir.is_dir():
        raise UsageError(f"--agents-dir {agents_dir} is not a directory")
    return find_session_files(directory)


def _progress() -> Progress | None:
    """A progress bar on a terminal; nothing when stderr goes to a file or a pipe."""
    if not sys.stderr.isatty():
        return None
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def migrate_sessions_command(
    ctx: typer.Context,
    files: list[Path] | None = FILES_ARGUMENT,
    agents_dir: Path | None = AGENTS_DIR_OPTION,
    agent: str | None = typer.Option(None, help="Agent of the given files (default: from agents/{agent}/)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be imported; write nothing."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Import openclaw-rs sessions.db files into Postgres, keeping the original timestamps.

    openclaw-rs's tables are only read; the first import adds a small table of openclaw's
    own to a file (its id: the uids of its messages derive from it, so two machines' files
    never collide). Safe to run again: what is already in Postgres (from an earlier run,
    or from dual-write) is not imported twice. A session whose key Postgres has for another
    agent is imported as KEY#AGENT (listed; recorded in session_renames). Exit code 1 when a
    file failed or a message was not imported. Then run 'openclaw sessions verify' before
    switching sessions.backend to postgres.
    """
    paths = _session_files(files, agents_dir)
    if not paths:
        print(f"no sessions.db files under {agents_dir or openclaw_home() / 'agents'}: nothing to import")
        return
    progress = None if as_json else _progress()

    async def work(db: Database) -> list[FileReport]:
        reports = []
        if progress is None:
            for path in paths:
                reports.append(await import_file(db, path, agent=agent, dry_run=dry_run))
            return reports
        with progress:
            task = progress.add_task("importing", total=sum(count_messages(p) for p in paths))
            for path in paths:
                progress.update(task, description=f"importing {path.parent.name or path.name}")
                reports.append(
                    await import_file(
                        db, path, agent=agent, dry_run=dry_run, progress=lambda n: progress.advance(task, n)
                    )
                )
        return reports

    reports = run_with_database(ctx, work)
    if as_json:
        print_json({"dry_run": dry_run, "files": [asdict(r) for r in reports]})
    else:
        _print_import(reports, dry_run)
    skipped = sum(r.skipped_messages for r in reports)
    if skipped:
        incomplete = sum(1 for r in reports if r.skipped_messages)
        were_not = "was not" if skipped == 1 else "were not"
        note(
            f"error: {skipped} {'message' if skipped == 1 else 'messages'} of {incomplete}"
            f" {'file' if incomplete == 1 else 'files'} {'would not be' if dry_run else were_not} imported"
            " (reasons above, or in 'skipped' with --json)"
        )
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _import_status(r: FileReport) -> str:
    if r.error is not None:
        return f"failed: {r.error}"
    if r.skipped_messages:
        return f"incomplete: {r.skipped_messages} not imported"
    return "ok"


def _print_import(reports: list[FileReport], dry_run: bool) -> None:
    new = "would insert" if dry_run else "inserted"
    print_table(
        None,
        [
            "agent",
            "file",
            "sessions",
            new,
            "present",
            "messages",
            new,
            "present",
            "orphans",
            "renamed",
            "conflicts",
            "status",
        ],
        [
            (
                r.agent,
                r.path,
                r.sessions_found,
                r.sessions_inserted,
                r.sessions_present,
                r.messages_found,
                r.messages_inserted,
                r.messages_present,
                r.orphan_messages,
                len(r.renames),
                len(r.conflicts),
                _import_status(r),
            )
            for r in reports
        ],
    )
    for r in reports:
        for conflict in r.conflicts:
            print(f"conflict in {r.path}: {conflict}")
        for rename in r.renames:
            print(f"renamed in {r.path}: {rename.original_key} -> {rename.session_key} ({rename.reason})")
        for kept in r.legacy_kept:
            print(f"{r.path}: {kept}")
        notes = []
        if r.legacy_keys:
            notes.append(f"{r.legacy_keys} legacy keys rewritten")
        if r.repaired_values:
            notes.append(
                f"{r.repaired_values} values repaired (invalid tool-call JSON kept as text, NUL replaced)"
            )
        if r.skipped_messages:
            reasons = ", ".join(f"{why}: {n}" for why, n in sorted(r.skipped.items()))
            notes.append(f"{r.skipped_messages} messages NOT imported ({reasons})")
        if r.rekeyed_messages:
            notes.append(f"{r.rekeyed_messages} messages re-keyed from the uids an older openclaw gave them")
        if notes:
            print(f"{r.path}: {'; '.join(notes)}")
    inserted = sum(r.messages_inserted for r in reports)
    if all(r.ok for r in reports) and inserted == 0 and not dry_run:
        print("nothing new: everything was already in Postgres")
    if dry_run:
        print("dry run: nothing was written")


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    files: list[Path] | None = FILES_ARGUMENT,
    agents_dir: Path | None = AGENTS_DIR_OPTION,
    agent: str | None = typer.Option(None, help="Agent of the given files (default: from agents/{agent}/)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Compare each SQLite file with Postgres, message by message (by uid: content and order).

    Exit code 0 when Postgres holds everything; 1 and a list of differences otherwise.
    """
    paths = _session_files(files, agents_dir)
    if not paths:
        print("no sessions.db files: nothing to verify")
        return

    async def work(db: Database) -> list[VerifyReport]:
        return [await verify_file(db, path, agent=agent) for path in paths]

    reports = run_with_database(ctx, work)
    if as_json:
        print_json({"ok": all(r.ok for r in reports), "files": [asdict(r) for r in reports]})
    else:
        print_table(
            None,
            ["agent", "file", "sessions", "messages", "differences", "only in Postgres", "status"],
            [
                (
                    r.agent,
                    r.path,
                    r.sessions_checked,
                    r.messages_checked,
                    len(r.differences),
                    r.only_in_postgres,
                    "ok" if r.ok else ("failed: " + r.error if r.error else "DIFFERS"),
                )
                for r in reports
            ],
        )
        for r in reports:
            for d in r.differences[:50]:
                print(f"{r.agent}: {d.session_key}: {d.problem}")
            if len(r.differences) > 50:
                print(f"{r.agent}: ... and {len(r.differences) - 50} more")
            if r.renamed_sessions:
                print(
                    f"{r.path}: {r.renamed_sessions} sessions compared under the key migrate-sessions"
                    " renamed them to (another agent had theirs)"
                )
            if r.messages_only_in_postgres:
                print(
                    f"{r.path}: {r.messages_only_in_postgres} messages of its sessions in Postgres are not"
                    " from this file (another machine's, or written in Postgres since)"
                )
        if all(r.ok for r in reports):
            print("verified: Postgres holds every session and message of these files")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


class Source(StrEnum):
    CONFIGURED = "configured"
    SQLITE = "sqlite"
    POSTGRES = "postgres"


SOURCE_OPTION = typer.Option(
    Source.CONFIGURED,
    "--from",
    help="Read from SQLite or Postgres (default: the configured sessions backend).",
)


async def _stores(
    db_ctx: typer.Context, source: Source, agent: str | None
) -> tuple[list[SessionStore], Database | None]:
    if source is Source.CONFIGURED:
        from openclaw.app import load_settings

        backend = configured_backend(load_settings(read_models=False).sessions_backend)
    else:
        backend = Backend(source.value)
    if backend is Backend.POSTGRES:
        db = await open_database(db_ctx)
        await ensure_schema(db)
        return [PostgresSessionStore(db, agent or "main")], db
    home = openclaw_home()
    paths = [home / "agents" / agent / "sessions.db"] if agent else find_session_files(home / "agents")
    stores: list[SessionStore] = []
    for path in paths:
        if not path.exists():
            continue
        try:
            stores.append(SqliteSessionStore(path, path.parent.name))
        except ConfigError as exc:
            note(f"skipped: {exc}")
    return stores, None


async def _with_stores(
    ctx: typer.Context, source: Source, agent: str | None, work: Callable[[list[SessionStore]], Awaitable[T]]
) -> T:
    stores, db = await _stores(ctx, source, agent)
    try:
        return await work(stores)
    finally:
        for store in stores:
            await store.close()
        if db is not None:
            await db.close()


@app.command("list")
def list_command(
    ctx: typer.Context,
    agent: str | None = typer.Option(None, help="Only this agent."),
    limit: int = typer.Option(50, min=1, max=100_000, help="At most this many sessions."),
    source: Source = SOURCE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Sessions, most recently active first."""

    async def work(stores: list[SessionStore]) -> list[SessionInfo]:
        found = []
        for store in stores:
            found += await store.list_sessions(agent, limit)
        return sorted(found, key=lambda s: s.updated_at, reverse=True)[:limit]

    sessions = asyncio.run(_with_stores(ctx, source, agent, work))
    if as_json:
        print_json(sessions)
    elif not sessions:
        print("no sessions")
    else:
        print_table(
            None,
            ["session", "agent", "model", "messages", "tokens", "updated"],
            [
                (s.session_key, s.agent_name, s.model, s.message_count, s.total_tokens, when(s.updated_at))
                for s in sessions
            ],
        )


async def _messages(ctx: typer.Context, source: Source, key: str) -> list[Message]:
    async def work(stores: list[SessionStore]) -> list[Message]:
        for store in stores:
            if await store.get_session(key) is not None:
                return await store.load_messages(key)
        raise NotFoundError(f"no session {key!r}")

    return await _with_stores(ctx, source, None, work)


def _message_json(m: Message) -> dict[str, object]:
    return {
        "role": m.role.value,
        "content": m.content,
        "reasoning_content": m.reasoning_content,
        "tool_calls": [c.to_json() for c in m.tool_calls] if m.tool_calls else None,
        "tool_call_id": m.tool_call_id,
        "timestamp": m.timestamp.isoformat(),
    }


@app.command("show")
def show_command(
    ctx: typer.Context,
    key: str = typer.Argument(..., metavar="KEY", help="Session key, e.g. tg:main:123:456."),
    source: Source = SOURCE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """A session's messages, oldest first."""
    messages = asyncio.run(_messages(ctx, source, key))
    if as_json:
        print_json([_message_json(m) for m in messages])
        return
    for m in messages:
        console.print(_markdown(m), markup=False)


def _markdown(m: Message) -> str:
    lines = [f"### {m.role.value} · {when(m.timestamp)}"]
    if m.reasoning_content:
        lines.append("> " + m.reasoning_content.replace("\n", "\n> "))
    if m.content:
        lines.append(m.content)
    for call in m.tool_calls or ():
        lines.append(f"`{call.name}({call.arguments})` (call {call.id})")
    if m.tool_call_id:
        lines.append(f"(result of call {m.tool_call_id})")
    return "\n\n".join(lines) + "\n"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    MD = "md"


@app.command("export")
def export_command(
    ctx: typer.Context,
    key: str = typer.Argument(..., metavar="KEY"),
    format_: ExportFormat = typer.Option(
        ExportFormat.JSONL, "--format", help="jsonl: one message per line; md: Markdown."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: standard output)."
    ),
    source: Source = SOURCE_OPTION,
) -> None:
    """Write a session out, as JSON Lines or Markdown."""
    messages = asyncio.run(_messages(ctx, source, key))
    if format_ is ExportFormat.JSONL:
        text = "".join(json.dumps(_message_json(m), ensure_ascii=False) + "\n" for m in messages)
    else:
        text = f"# {key}\n\n" + "\n".join(_markdown(m) for m in messages)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        note(f"wrote {len(messages)} messages to {output}")
