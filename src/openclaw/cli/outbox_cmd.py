"""`openclaw outbox`: what waits in the spool of this database, and what Postgres refused.

None of these commands connects to Postgres: the spool is a local SQLite file, found from
the database's identity alone (`openclaw.outbox.targets`), so they work while it is down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from openclaw.cli.common import JSON_OPTION, note, print_json, print_table, state, when
from openclaw.db.target import DatabaseTarget, resolve_target
from openclaw.errors import NotFoundError, OpenclawError, UsageError, first_line
from openclaw.home import openclaw_home
from openclaw.outbox.spool import DeadEntry, Spool
from openclaw.outbox.targets import OtherSpool, open_spool, other_spools, outbox_dir, spool_target

PREVIEW_CHARS = 80  # of a dead entry's payload in the table: it can hold chat text
REASON_CHARS = 160
SHIPS_THEM = (
    "a running gateway's flusher ships them on its next pass over the outbox;"
    " without a gateway, the next `openclaw agent`, `chat` or `cron run` does"
)

app = typer.Typer(
    help=(
        "The outbox, rows on their way to Postgres: what waits, what Postgres refused (dead),"
        " requeue, drop.\n\n"
        "Writes that must not be lost (LLM calls, snapshots, cron runs, session writes while"
        " Postgres is down, the dual-mode mirror) wait in a local spool, one per database:"
        " $OPENCLAW_HOME/outbox/spool-HASH.db. The gateway's flusher ships them in order."
        " These commands never connect to Postgres: they work while it is down.\n\n"
        "An entry is **dead** (set aside) when Postgres refused it for what it holds: a data"
        " error, a constraint or a size limit (SQLSTATE class 22, 23 or 54). Its reason, with"
        " the SQLSTATE, is kept with it, and everything else keeps flowing. Sending it again"
        " fails the same way until the cause is fixed, so: look at it (`openclaw outbox dead`),"
        " fix the cause (an upgrade of openclaw, a migration, a changed constraint), then"
        " `openclaw outbox requeue` it; `openclaw outbox drop` deletes what is not worth"
        " keeping. Entry ids come from `openclaw outbox dead`."
    ),
    no_args_is_help=True,
)


# ---- finding and opening the spool -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Located:
    target: DatabaseTarget
    description: str
    path: Path


def _locate(ctx: typer.Context) -> _Located:
    """The spool of the command's database (its file may not exist yet). No connection."""
    target = resolve_target(state(ctx).database_url)
    wanted = spool_target(target)
    return _Located(target, wanted.description, outbox_dir(openclaw_home()) / wanted.file_name)


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def _opened(located: _Located) -> Iterator[Spool]:
    """The spool, open; a spool that cannot be read or written is one line, not a traceback.
    What the spool and `open_spool` log is for a gateway's log: the other spools of the
    home (`outbox status` lists them itself), a disk that cannot be written (`outbox status`
    says so; a change fails with the reason)."""
    with _quiet("openclaw.outbox.spool"):
        with _quiet("openclaw.outbox.targets"):
            spool = open_spool(openclaw_home(), located.target)
        try:
            yield spool
        except sqlite3.Error as exc:
            reason = first_line(exc)
            if str(located.path) not in reason:
                reason = f"{located.path}: {reason}"
            raise OpenclawError(f"outbox: {reason}") from None
        finally:
            spool.close()


# ---- formatting --------------------------------------------------------------------------


def _printable(text: str) -> str:
    """`text` safe for a terminal: control and other invisible characters escaped."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _entries(n: int) -> str:
    return f"{n} {'entry' if n == 1 else 'entries'}"


def _by_kind(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items()))


def _payload(entry: DeadEntry) -> Any:
    try:
        return json.loads(entry.payload)
    except ValueError:  # not written by openclaw: shown as stored
        return entry.payload


def _preview(entry: DeadEntry) -> str:
    payload = _payload(entry)
    text = (
        payload
        if isinstance(payload, str)
        else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    )
    return _printable(_cut(text, PREVIEW_CHARS))


def _reason(entry: DeadEntry) -> str:
    lines = (line.strip() for line in entry.error.splitlines())
    return _printable(_cut(next((line for line in lines if line), ""), REASON_CHARS))


def _parse_ids(ids: Sequence[str] | None) -> list[int]:
    parsed: list[int] = []
    for text in ids or ():
        try:
            parsed.append(int(text))
        except ValueError:
            raise UsageError(
                f"{text!r} is not an entry id: ids are whole numbers, from 'openclaw outbox dead'"
            ) from None
    return sorted(set(parsed))


def _shown(seqs: Sequence[int]) -> str:
    return ", ".join(str(seq) for seq in seqs[:10]) + (", ..." if len(seqs) > 10 else "")


def _check_known(spool: Spool | None, ids: list[int]) -> None:
    """Every id names a dead entry, or nothing is done."""
    known = spool.dead_seqs(ids) if spool is not None else set()
    unknown = [seq for seq in ids if seq not in known]
    if unknown:
        raise NotFoundError(
            f"no set-aside entr{'y' if len(unknown) == 1 else 'ies'} with id {_shown(unknown)} in this"
            " database's outbox (see 'openclaw outbox dead'); nothing was changed"
        )


# ---- status ------------------------------------------------------------------------------


def _writable_dir(path: Path) -> Path:
    """`path`, or the nearest of its parents that exists."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _other(other: OtherSpool) -> dict[str, Any]:
    if other.legacy:
        hint = other.describe() + (f"; {other.dead} more set aside" if other.dead else "")
    else:
        hint = (
            f"outbox: {other.pending} waiting and {other.dead} set aside for {other.description}"
            f" (in {other.path}); they ship when openclaw points at that database again"
            " (see them with --database-url)"
        )
    return {
        "database": other.description,
        "pending": other.pending,
        "dead": other.dead,
        "path": str(other.path),
        "legacy": other.legacy,
        "hint": hint,
    }


def _status(located: _Located) -> dict[str, Any]:
    pending = dead = 0
    oldest_ms: int | None = None
    unwritable: str | None = None
    pending_kinds: dict[str, int] = {}
    dead_kinds: dict[str, int] = {}
    exists = located.path.exists()
    if exists:
        with _opened(located) as spool:
            stats = spool.refresh()
            oldest_ms, unwritable = stats.oldest_created_at_ms, stats.unwritable
            try:  # through a read-only connection: also while the disk cannot be written
                pending, dead = spool.pending(), spool.dead()
                pending_kinds, dead_kinds = spool.pending_by_kind(), spool.dead_by_kind()
            except sqlite3.Error as exc:  # what is known is shown, and why the rest is not
                unwritable = unwritable or f"{located.path} cannot be read: {first_line(exc)}"
    directory = _writable_dir(located.path.parent)
    if unwritable is None and not os.access(directory, os.W_OK):
        unwritable = f"{directory} is not writable"
    free = shutil.disk_usage(directory).free
    kinds = sorted(set(pending_kinds) | set(dead_kinds))
    return {
        "path": str(located.path),
        "database": located.description,
        "exists": exists,
        "pending": pending,
        "dead": dead,
        "oldest_created_at": _datetime(oldest_ms),
        "oldest_age_s": None if oldest_ms is None else round(max(time.time() - oldest_ms / 1000, 0.0), 3),
        "writable": unwritable is None,
        "unwritable_reason": unwritable,
        "free_bytes": free,
        "kinds": {k: {"pending": pending_kinds.get(k, 0), "dead": dead_kinds.get(k, 0)} for k in kinds},
        "other_spools": [_other(o) for o in other_spools(openclaw_home(), located.target)],
    }


@app.command("status")
def status_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The outbox of this database: entries waiting, set aside (dead), the oldest one's age,
    the disk, counts by kind; and the other databases' outboxes that hold entries.

    Counting by kind reads the whole backlog (about a second per million entries). A kind
    the gateway stopped shipping because of a bug is not dead: its entries wait here, and
    the gateway's /health and /metrics name it.
    """
    info = _status(_locate(ctx))
    if as_json:
        print_json(info)
        return
    print(
        f"outbox:    {info['path']}" + ("" if info["exists"] else " (not created yet: nothing was spooled)")
    )
    print(f"database:  {info['database']}")
    waiting = _entries(info["pending"])
    if info["oldest_age_s"] is not None:
        waiting += f", the oldest {_age(info['oldest_age_s'])} old ({when(info['oldest_created_at'])})"
    print(f"waiting:   {waiting}")
    print(f"dead:      {_entries(info['dead'])}" + (" (see 'openclaw outbox dead')" if info["dead"] else ""))
    disk = "writable" if info["writable"] else f"NOT writable: {info['unwritable_reason']}"
    print(f"disk:      {disk}, {_size(info['free_bytes'])} free")
    if info["kinds"]:
        print_table(
            None,
            ["kind", "waiting", "dead"],
            [(kind, n["pending"], n["dead"]) for kind, n in info["kinds"].items()],
        )
    for other in info["other_spools"]:
        print(other["hint"])


# ---- dead --------------------------------------------------------------------------------


@app.command("dead")
def dead_command(
    ctx: typer.Context,
    kind: str | None = typer.Option(None, "--kind", help="Only entries of this kind, e.g. llm_call."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, oldest first."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The entries Postgres refused for what they hold, oldest first: id, kind, when it
    failed, the reason (with its SQLSTATE), the start of the payload.

    The payload may hold chat text: the table shows its first 80 characters, `--json` all
    of it. Requeue an entry once the cause is fixed (`openclaw outbox requeue ID`), or
    drop it (`openclaw outbox drop ID`).
    """
    located = _locate(ctx)
    entries: list[DeadEntry] = []
    total = 0
    if located.path.exists():
        with _opened(located) as spool:
            by_kind = spool.dead_by_kind()
            total = by_kind.get(kind, 0) if kind is not None else sum(by_kind.values())
            entries = spool.dead_entries(kind=kind, limit=limit)
    if as_json:
        print_json(
            {
                "path": str(located.path),
                "database": located.description,
                "total": total,
                "entries": [
                    {
                        "id": e.seq,
                        "kind": e.kind,
                        "created_at": _datetime(e.created_at_ms),
                        "failed_at": _datetime(e.failed_at_ms),
                        "error": e.error,
                        "payload": _payload(e),
                    }
                    for e in entries
                ],
            }
        )
        return
    if not entries:
        print(
            f"nothing set aside{f' of kind {kind!r}' if kind else ''} in the outbox of {located.description}"
        )
        return
    print_table(
        None,
        ["id", "kind", "failed at", "reason", "payload"],
        [(e.seq, e.kind, when(_datetime(e.failed_at_ms)), _reason(e), _preview(e)) for e in entries],
    )
    if total > len(entries):
        note(f"{len(entries)} of {total} shown, oldest first: --limit for more")


# ---- requeue, drop -----------------------------------------------------------------------

IDS_ARGUMENT = typer.Argument(None, metavar="ID", help="Ids of dead entries, from 'openclaw outbox dead'.")
# Ids may be negative (entries adopted from an earlier openclaw's outbox): `-3` is an id.
IDS_SETTINGS = {"ignore_unknown_options": True}


@app.command("requeue", context_settings=IDS_SETTINGS)
def requeue_command(
    ctx: typer.Context,
    ids: list[str] | None = IDS_ARGUMENT,
    all_: bool = typer.Option(False, "--all", help="Every dead entry (of --kind, if given)."),
    kind: str | None = typer.Option(None, "--kind", help="Every dead entry of this kind."),
) -> None:
    """Put dead entries back in line, at their old place: the given ids, --all, or --kind K.

    Do it once the cause is fixed (e.g. after an upgrade of openclaw, or a migration):
    an entry that fails the same way is set aside again. A running gateway's flusher ships
    them on its next pass over the outbox: within seconds, or a minute while it holds back
    a kind it found a bug in. An unknown id changes nothing (exit code 1).
    """
    seqs = _parse_ids(ids)
    if seqs and (all_ or kind is not None):
        raise UsageError("give entry ids, or --all / --kind, not both")
    if not seqs and not all_ and kind is None:
        raise UsageError("name the entries: ids (from 'openclaw outbox dead'), --all or --kind K")
    located = _locate(ctx)
    if not located.path.exists():
        _check_known(None, seqs)
        print("nothing to requeue: no entry is set aside")
        return
    with _opened(located) as spool:
        _check_known(spool, seqs)
        before = spool.dead_by_kind()
        moved = spool.requeue(seqs or None, kind=kind)
        after = spool.dead_by_kind()
    if not moved:
        known = f" (kinds set aside: {', '.join(sorted(before))})" if before else ""
        print(f"nothing to requeue: no entry{f' of kind {kind!r}' if kind else ''} is set aside{known}")
        return
    counts = {k: n - after.get(k, 0) for k, n in before.items() if n != after.get(k, 0)}
    print(f"requeued {_entries(moved)} ({_by_kind(counts)}); {SHIPS_THEM}")


@app.command("drop", context_settings=IDS_SETTINGS)
def drop_command(
    ctx: typer.Context,
    ids: list[str] | None = IDS_ARGUMENT,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (needed when stdin is not a terminal)."),
) -> None:
    """Delete dead entries for good, by id.

    What they held never reaches Postgres. Asks first unless --yes. An unknown id changes
    nothing (exit code 1).
    """
    seqs = _parse_ids(ids)
    if not seqs:
        raise UsageError("name the entries to delete: their ids, from 'openclaw outbox dead'")
    if not yes and not sys.stdin.isatty():
        raise UsageError("drop deletes for good: add --yes to confirm (stdin is not a terminal)")
    located = _locate(ctx)
    if not located.path.exists():
        _check_known(None, seqs)
    with _opened(located) as spool:
        _check_known(spool, seqs)
        question = f"Delete {_entries(len(seqs))} ({_shown(seqs)}) for good? They never reach Postgres."
        if not yes and not typer.confirm(question, err=True):
            note("nothing was deleted")
            raise typer.Exit(1)
        dropped = spool.drop(seqs)
    print(f"deleted {_entries(dropped)} for good")
