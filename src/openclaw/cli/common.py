"""What every command shares: the database option, running async work, printing."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from openclaw.errors import DatabaseUnavailableError, first_line
from openclaw.jsonable import to_jsonable

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from rich.console import Console

    from openclaw.db import Database

T = TypeVar("T")

_consoles: dict[bool, Console] = {}


def _console(*, stderr: bool = False) -> Console:
    """The console of stdout (or stderr), made on first use: rich loads only for the
    commands that print through it, not for `context get` and the like."""
    if stderr not in _consoles:
        import rich.console

        if stderr:
            made = rich.console.Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
        else:
            # Piped output gets wide lines, one table row per line, for grep and friends.
            width = None if sys.stdout.isatty() else 240
            made = rich.console.Console(highlight=False, soft_wrap=True, markup=False, width=width)
        _consoles[stderr] = made
    return _consoles[stderr]


def __getattr__(name: str) -> Console:
    """`console` and `err_console`, as module attributes made on first use."""
    if name == "console":
        return _console()
    if name == "err_console":
        return _console(stderr=True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


@dataclass(slots=True)
class CliState:
    database_url: str | None = None


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


async def open_database(ctx: typer.Context) -> Database:
    # The database layer (psycopg, the pool) loads here, for the commands that use it only:
    # `mcp serve` answers its client before it needs it, `--help` never does.
    from openclaw.db import Database, resolve_target

    return await Database.open(resolve_target(state(ctx).database_url), application_name="openclaw-cli")


async def ensure_schema(db: Database) -> None:
    """Apply pending migrations, so a fresh database works from the first command."""
    from psycopg import AsyncConnection

    from openclaw.db import migrate, migration_status

    async with db.connection() as conn:
        status = await migration_status(conn)
    if status.pending:
        async with await AsyncConnection.connect(db.url, autocommit=True) as conn:
            await migrate(conn)


def run_with_database(ctx: typer.Context, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` with the pool of an up-to-date database."""
    from psycopg import OperationalError

    async def go() -> T:
        async with await open_database(ctx) as db:
            await ensure_schema(db)
            try:
                return await work(db)
            except OperationalError as exc:
                raise DatabaseUnavailableError(f"lost the database connection: {first_line(exc)}") from None

    return asyncio.run(go())


def run_db(ctx: typer.Context, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction on an up-to-date database."""

    async def in_transaction(db: Database) -> T:
        async with db.connection() as conn:
            return await work(conn)

    return run_with_database(ctx, in_transaction)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def when(value: datetime | None) -> str:
    """A timestamp in local time, to the second."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    _console().print(table)


def note(message: str) -> None:
    """A remark for a person, on stderr so that stdout stays clean for scripts."""
    sys.stdout.flush()
    _console(stderr=True).print(message)
