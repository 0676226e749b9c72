"""`openclaw agent`, `openclaw chat`, `openclaw models`, `openclaw logs`."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import fields

import typer
from psycopg import AsyncConnection
from psycopg.rows import class_row

from openclaw.agent.loop import TurnResult, message_problem
from openclaw.agent.runtime import AgentRuntime
from openclaw.app import Settings, load_settings, open_runtime
from openclaw.cli.common import JSON_OPTION, note, print_json, print_table, run_db, state, when
from openclaw.durations import parse_duration
from openclaw.errors import ConfigError, NotFoundError, OpenclawError, UsageError
from openclaw.llm.config import LlmConfig, ModelRef, load_llm_config
from openclaw.llm.records import LlmCall
from openclaw.sessions.keys import agent_name_problem, new_cli_key, session_key_problem

AGENT_OPTION = typer.Option("main", "--agent", help="Agent name (sessions live under it).")
MODEL_OPTION = typer.Option(
    None, "--model", help="provider/model to try first (default: the first fallback)."
)
SESSION_OPTION = typer.Option(
    None, "--session", help="Continue this session key (default: a new CLI session)."
)


def _settings() -> Settings:
    """The settings of `agent` and `chat`, read once, before anything is opened or written:
    a wrong value in a config file or the environment is one line and exit code 2."""
    return load_settings(require_models=True)


def _model(text: str | None, config: LlmConfig) -> ModelRef | None:
    """The --model option, checked against openclaw-manual.json: a model that is not
    configured is a usage error, never a silent answer from another model."""
    if text is None:
        return None
    try:
        ref = ModelRef.parse(text)
    except ConfigError as exc:
        raise UsageError(f"--model: {exc}") from None
    problem = config.unknown_model(ref)
    if problem is not None:
        raise UsageError(f"--model: {problem}")
    return ref


def _session_key(agent: str, session: str | None) -> str:
    """The key of the turns: --session, else a new CLI session of --agent. A key or a name
    that Postgres could not store is a usage error now, before anything is written."""
    problem = agent_name_problem(agent)
    if problem is not None:
        raise UsageError(f"--agent: {problem}")
    if session is None:
        return new_cli_key(agent)
    problem = session_key_problem(session)
    if problem is not None:
        raise UsageError(f"--session: {problem}")
    return session


async def _turn(runtime: AgentRuntime, key: str, text: str, model: ModelRef | None) -> TurnResult:
    streamed = False

    async def on_delta(piece: str) -> None:
        nonlocal streamed
        streamed = True
        sys.stdout.write(piece)
        sys.stdout.flush()

    async def on_restart() -> None:
        nonlocal streamed
        if streamed:
            sys.stdout.write("\n")
            note("(that model broke off; another one answers from the start)")
        streamed = False

    try:
        result = await runtime.agent.turn(key, text, model=model, on_delta=on_delta, on_restart=on_restart)
    except asyncio.CancelledError:
        if streamed:  # end the half answer's line: the next prompt must not be glued to it
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise
    if not streamed or result.reply.startswith("(stopped after"):
        sys.stdout.write(result.reply)
    sys.stdout.write("\n")
    note(
        f"[{result.model} · {result.tokens} tokens · {result.rounds} round{'s' if result.rounds != 1 else ''}"
        f" · session {key}]"
    )
    return result


async def _with_runtime(
    ctx: typer.Context, settings: Settings, agent: str, work: Callable[[AgentRuntime], Awaitable[None]]
) -> None:
    runtime = await open_runtime(
        settings.database_target(state(ctx).database_url),
        home=settings.home,
        agent_name=agent,
        # USE_FALLBACK=false (or agent.fallback: false) tries the chosen (or first) model
        # only, as in the gateway.
        use_fallback=settings.gateway.use_fallback,
        settings=settings,
    )
    runtime.start_flusher()
    try:
        await work(runtime)
    finally:
        waiting = await runtime.close()
        if waiting:
            note(f"{waiting} rows wait in the outbox (Postgres unreachable); they ship on the next run")


def agent_command(
    ctx: typer.Context,
    message: str = typer.Option(..., "--message", "-m", help="What to say."),
    agent: str = AGENT_OPTION,
    model: str | None = MODEL_OPTION,
    session: str | None = SESSION_OPTION,
) -> None:
    """One turn: send MESSAGE, stream the answer to stdout. Ctrl-C stops it (exit code 130);
    the interrupted call is logged as cancelled, with what it had said."""
    if not message.strip():
        raise UsageError("the message is empty")
    problem = message_problem(message)
    if problem is not None:
        raise UsageError(f"--message: {problem}")
    key = _session_key(agent, session)
    settings = _settings()
    ref = _model(model, settings.llm)

    async def work(runtime: AgentRuntime) -> None:
        await _turn(runtime, key, message, ref)

    asyncio.run(_with_runtime(ctx, settings, agent, work))


CHAT_HELP = """commands (handled here, not sent to the model):
  /help          this help
  /exit, /quit   leave (Ctrl-D too)
Ctrl-C stops the answer being written; at the prompt it leaves."""


async def _read_line(prompt: str) -> str | None:
    """input() in a daemon thread: a prompt left waiting never holds up the exit. None at EOF."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        try:
            text: str | None = input(prompt)
        except (EOFError, OSError, ValueError):  # Ctrl-D, or stdin closed under us
            text = None
        loop.call_soon_threadsafe(lambda: None if line.done() else line.set_result(text))

    threading.Thread(target=read, name="chat-input", daemon=True).start()
    return await line


def chat_command(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    model: str | None = MODEL_OPTION,
    session: str | None = SESSION_OPTION,
) -> None:
    """Talk with the agent; /exit or Ctrl-D ends, /help lists the commands. A new session
    unless --session. Ctrl-C stops the answer being written and the chat goes on."""
    key = _session_key(agent, session)
    settings = _settings()
    ref = _model(model, settings.llm)

    async def work(runtime: AgentRuntime) -> None:
        note(f"session {key} · /help for commands, /exit to leave")
        loop = asyncio.get_running_loop()
        current: asyncio.Task[TurnResult] | None = None
        prompt_waiting: asyncio.Task[str | None] | None = None

        def on_interrupt() -> None:
            # Ctrl-C stops the running answer; at the prompt it leaves the chat.
            if current is not None and not current.done():
                current.cancel()
            elif prompt_waiting is not None:
                prompt_waiting.cancel()

        loop.add_signal_handler(signal.SIGINT, on_interrupt)
        try:
            while True:
                prompt_waiting = asyncio.create_task(_read_line("you> "))
                try:
                    line = await prompt_waiting
                except asyncio.CancelledError:
                    sys.stdout.write("\n")
                    break
                finally:
                    prompt_waiting = None
                if line is None:
                    break
                command = line.strip()
                if command in ("/exit", "/quit"):
                    break
                if command in ("/help", "/?"):
                    print(CHAT_HELP)
                    continue
                if not command:
                    continue
                current = asyncio.create_task(_turn(runtime, key, line, ref))
                try:
                    await current
                except asyncio.CancelledError:
                    if not current.cancelled():  # chat itself is being cancelled
                        raise
                    note("(stopped)")
                except OpenclawError as exc:
                    note(f"error: {exc}")
                finally:
                    current = None
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    asyncio.run(_with_runtime(ctx, settings, agent, work))


models_app = typer.Typer(help="The configured providers, models and fallback chain.", no_args_is_help=True)


@models_app.command("list")
def models_list_command(as_json: bool = JSON_OPTION) -> None:
    """Providers and their models, and the fallback chain (from openclaw-manual.json)."""
    config = load_llm_config()
    if as_json:
        print_json(
            {
                "providers": [
                    {
                        "name": p.name,
                        "api": p.api.value,
                        "base_url": p.base_url,
                        "models": [m.id for m in p.models],
                    }
                    for p in config.providers.values()
                ],
                "fallbacks": [str(m) for m in config.fallbacks],
            }
        )
        return
    print_table(
        None,
        ["provider", "api", "base URL", "models"],
        [
            (p.name, p.api.value, p.base_url, ", ".join(m.id for m in p.models) or "(any)")
            for p in config.providers.values()
        ],
    )
    print("fallback chain: " + (" -> ".join(str(m) for m in config.fallbacks) or "(none)"))


logs_app = typer.Typer(
    help="LLM calls, from Postgres (every call, also those older than the gateway's memory).",
    invoke_without_command=True,
)

_LOG_COLUMNS = ", ".join(f.name for f in fields(LlmCall))


@logs_app.callback()
def logs_command(
    ctx: typer.Context,
    errors: bool = typer.Option(False, "--errors", help="Only failed calls."),
    limit: int = typer.Option(20, min=1, max=10_000, help="At most this many calls."),
    since: str | None = typer.Option(None, help="Only calls since then: 30m, 1h, 7d..."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The latest LLM calls, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    window = parse_duration(since) if since else None

    async def query(conn: AsyncConnection) -> list[LlmCall]:
        async with conn.cursor(row_factory=class_row(LlmCall)) as cur:
            await cur.execute(
                f"""SELECT {_LOG_COLUMNS} FROM llm_calls
                    WHERE (NOT %(errors)s OR error IS NOT NULL)
                      AND (%(window)s::interval IS NULL OR created_at > now() - %(window)s::interval)
                    ORDER BY created_at DESC LIMIT %(limit)s""",
                {"errors": errors, "window": window, "limit": limit},
            )
            return await cur.fetchall()

    calls = run_db(ctx, query)
    if as_json:
        print_json(calls)
    elif not calls:
        print("no LLM calls" + (" with errors" if errors else ""))
    else:
        print_table(
            None,
            ["id", "time", "model", "try", "ms", "tokens", "session", "result"],
            [
                (
                    str(c.id)[:8],
                    when(c.created_at),
                    f"{c.provider}/{c.model}" if c.provider else c.model,
                    c.provider_attempt,
                    c.latency_ms,
                    c.usage_total_tokens,
                    c.session_key,
                    c.error[:80] if c.error else (c.finish_reason or "ok"),
                )
                for c in calls
            ],
        )


@logs_app.command("show")
def logs_show_command(
    ctx: typer.Context,
    call_id: str = typer.Argument(
        ..., metavar="ID", help="A call's id (or the start of it, as `logs` shows)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """One LLM call in full."""
    if not re.fullmatch(r"[0-9a-fA-F-]{4,36}", call_id):
        raise UsageError(f"{call_id!r} is not a call id")

    async def query(conn: AsyncConnection) -> list[LlmCall]:
        async with conn.cursor(row_factory=class_row(LlmCall)) as cur:
            await cur.execute(
                f"SELECT {_LOG_COLUMNS} FROM llm_calls WHERE id::text LIKE %s LIMIT 2",
                (call_id.lower() + "%",),
            )
            return await cur.fetchall()

    found = run_db(ctx, query)
    if not found:
        raise NotFoundError(f"no LLM call {call_id}")
    if len(found) > 1:
        raise UsageError(f"{call_id} matches several calls: give more of the id")
    call = found[0]
    if as_json:
        print_json(call)
        return
    for f in fields(LlmCall):
        value = getattr(call, f.name)
        print(f"{f.name + ':':<26}{when(value) if f.name == 'created_at' else value}")
