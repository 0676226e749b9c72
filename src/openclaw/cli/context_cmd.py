"""`openclaw context`: the project key-value store."""

from __future__ import annotations

import json
from typing import Any

import typer

from openclaw.cli.common import JSON_OPTION, note, print_json, print_table, run_db, when
from openclaw.context.kv import delete_value, get_value, list_values, set_value
from openclaw.context.redact import looks_secret
from openclaw.errors import UsageError
from openclaw.settings import parse_json

app = typer.Typer(help="Project context: JSON values under keys, e.g. current_focus.", no_args_is_help=True)


def parse_value(text: str) -> tuple[Any, bool]:
    """VALUE as JSON; text that is not JSON becomes a JSON string. Returns (value, was_json)."""
    if "\x00" in text:
        raise UsageError("VALUE contains a NUL character, which PostgreSQL cannot store")
    try:
        return parse_json(text), True
    except ValueError:
        return text, False


@app.command("set")
def set_command(
    ctx: typer.Context,
    key: str = typer.Argument(...),
    value: str = typer.Argument(..., help='JSON, e.g. \'{"task": "postgres migration", "phase": 3}\'.'),
) -> None:
    """Set KEY to VALUE (JSON; text that is not valid JSON is stored as a JSON string)."""
    parsed, was_json = parse_value(value)
    entry = run_db(ctx, lambda conn: set_value(conn, key, parsed))
    if not was_json:
        note(f"note: VALUE is not valid JSON; stored it as the JSON string {json.dumps(parsed)}")
    # Secrets never reach the database (the rules of config snapshots, phrases included).
    if looks_secret(key, parsed):
        note(
            "note: this looks like a credential: it is stored redacted, and the coding assistant"
            " (MCP reader) will not see it"
        )
    elif entry.value != parsed:
        note("note: VALUE held credentials; they were stored as [redacted:…] markers")
    print(f"set {key}")


@app.command("get")
def get_command(ctx: typer.Context, key: str = typer.Argument(...)) -> None:
    """Print KEY's JSON value (exit code 1 if there is none)."""
    entry = run_db(ctx, lambda conn: get_value(conn, key))
    print(json.dumps(entry.value, indent=2, ensure_ascii=False))


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every key with its value."""
    entries = run_db(ctx, list_values)
    if as_json:
        print_json(entries)
    elif not entries:
        print("no context values")
    else:
        print_table(
            None,
            ["key", "value", "updated"],
            [(e.key, json.dumps(e.value, ensure_ascii=False), when(e.updated_at)) for e in entries],
        )


@app.command("delete")
def delete_command(ctx: typer.Context, key: str = typer.Argument(...)) -> None:
    """Remove KEY (exit code 1 if there is none)."""
    run_db(ctx, lambda conn: delete_value(conn, key))
    print(f"deleted {key}")
