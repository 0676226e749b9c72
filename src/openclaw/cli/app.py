"""The root `openclaw` command and the entry point that turns user errors into one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import psycopg
import typer

from openclaw import __version__
from openclaw.cli import (
    agent_cmd,
    config_cmd,
    context_cmd,
    cron_cmd,
    db_cmd,
    deploy_cmd,
    gateway_cmd,
    issues_cmd,
    mcp_cmd,
    metrics_cmd,
    sessions_cmd,
    task_cmd,
)
from openclaw.cli.common import state
from openclaw.errors import OpenclawError, first_line

app = typer.Typer(
    name="openclaw",
    help=(
        "openclaw: an AI chat-agent gateway whose state lives in PostgreSQL.\n\n"
        "The database is the --database-url option, else $DATABASE_URL, else database.url in "
        "the gateway config ($GATEWAY_CONFIG), else an embedded server in $OPENCLAW_HOME/pgdata "
        "(default ~/.openclaw), started on first use."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
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
    state(ctx).database_url = database_url


app.add_typer(db_cmd.app, name="db")
app.add_typer(deploy_cmd.app, name="deploy")
app.add_typer(config_cmd.app, name="config")
app.add_typer(issues_cmd.app, name="issues")
app.add_typer(task_cmd.app, name="task")
app.add_typer(context_cmd.app, name="context")
app.add_typer(sessions_cmd.app, name="sessions")
app.command("migrate-sessions")(sessions_cmd.migrate_sessions_command)
app.command("agent")(agent_cmd.agent_command)
app.command("chat")(agent_cmd.chat_command)
app.command("gateway")(gateway_cmd.gateway_command)
app.command("metrics")(metrics_cmd.metrics_command)
app.add_typer(agent_cmd.models_app, name="models")
app.add_typer(agent_cmd.logs_app, name="logs")
app.add_typer(cron_cmd.app, name="cron")
app.add_typer(mcp_cmd.app, name="mcp")


def _error(message: str) -> None:
    one_line = " ".join(message.split())  # click lists choices on lines of their own
    print(f"openclaw: error: {one_line}", file=sys.stderr)


def _quiet_logging() -> None:
    """Warnings as one line each; the pool's reconnect chatter and the flusher's retries
    stay out of a command's output (the command reports what did not reach Postgres)."""
    logging.basicConfig(level=logging.WARNING, format="openclaw: %(message)s")
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    logging.getLogger("openclaw.outbox.flusher").setLevel(logging.ERROR)


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
    except psycopg.Error as exc:
        _error(f"database: {first_line(exc)}")
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    return result if isinstance(result, int) else 0
