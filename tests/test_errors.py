"""One error hierarchy: every error openclaw raises for a person derives from OpenclawError,
and says whether trying again later may succeed (openclaw.errors.is_transient)."""

from __future__ import annotations

import contextlib
import errno
import importlib
import inspect
import pkgutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import PoolTimeout

import openclaw
import openclaw.mcp.state as mcp_state
from openclaw.agent.loop import TurnTimeoutError
from openclaw.chat import Message
from openclaw.errors import (
    TRANSIENT_SQLSTATES,
    ConfigError,
    DatabaseError,
    InvalidConfigError,
    MigrationError,
    NotFoundError,
    NotStoredError,
    OpenclawError,
    TransientError,
    UsageError,
    is_transient,
)
from openclaw.gateway.discord import DiscordStartError
from openclaw.llm.config import parse_llm_config
from openclaw.llm.http import http_error
from openclaw.llm.log import LlmLog
from openclaw.llm.router import AllModelsFailedError, ProviderInitError, Router
from openclaw.llm.types import ChatRequest, ChatResult, OnDelta, ProviderError
from openclaw.mcp.calls import CallTimedOut, Deadline
from openclaw.mcp.guard import CheckedQuery
from openclaw.mcp.query import QueryFailed, QueryTimedOut, run_checked
from openclaw.outbox.classify import Verdict, classify
from openclaw.sessions.importer import SourceError
from tests.conftest import Cli

# Exceptions that must subclass a library's type instead, each for a reason of its own.
NOT_OURS_BY_DESIGN = {
    # sqlite3.OperationalError: the spool's `except sqlite3.Error` paths take it as a disk
    # that cannot be written.
    "openclaw.outbox.spool.SpoolUnavailableError",
    # The MCP SDK's ResourceError: the SDK answers it as a resource error, in our words.
    "openclaw.mcp.server.PlainResourceError",
    "openclaw.mcp.server.NamedViewNotFound",
}


def _openclaw_modules() -> Iterator[str]:
    for module in pkgutil.walk_packages(openclaw.__path__, "openclaw."):
        if module.name.rsplit(".", 1)[-1] != "__main__":  # that one runs the CLI
            yield module.name


def test_every_public_exception_of_openclaw_derives_from_openclaw_error() -> None:
    strays = []
    for name in _openclaw_modules():
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)):
                continue
            if value.__module__ != name or attribute.startswith("_"):
                continue  # imported from elsewhere, or private (control flow inside a module)
            qualified = f"{name}.{attribute}"
            if not issubclass(value, OpenclawError) and qualified not in NOT_OURS_BY_DESIGN:
                strays.append(qualified)
    assert strays == []


def test_the_ones_named_in_the_review_are_in_place() -> None:
    assert issubclass(ProviderError, OpenclawError)
    assert issubclass(SourceError, OpenclawError)
    assert issubclass(DiscordStartError, OpenclawError)
    assert issubclass(ProviderInitError, ConfigError)
    assert issubclass(TurnTimeoutError, TransientError)
    assert issubclass(QueryTimedOut, DatabaseError) and issubclass(QueryTimedOut, TransientError)
    assert not issubclass(QueryTimedOut, UsageError) and QueryTimedOut.exit_code == 1
    assert issubclass(QueryFailed, UsageError) and QueryFailed.exit_code == 2
    from openclaw.settings import InvalidConfigError as from_settings

    assert from_settings is InvalidConfigError and InvalidConfigError.exit_code == 2


def test_provider_error_keeps_its_attributes() -> None:
    error = http_error(503, "overloaded")
    assert (error.message, error.status, error.retryable) == ("HTTP 503: overloaded", 503, True)
    assert str(error) == "HTTP 503: overloaded"


# -- is_transient


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (http_error(429, "slow down"), True),
        (http_error(503, "overloaded"), True),
        (http_error(502, "bad gateway"), True),
        (http_error(400, "bad request"), False),
        (http_error(401, "bad key"), False),
        (ProviderError("timeout: no answer from alpha (ReadTimeout)", transient=True), True),
        (ProviderError("invalid response from alpha: KeyError"), False),
        (UsageError("--limit must be a number"), False),
        (ConfigError("config file not found"), False),
        (InvalidConfigError("gateway config: port must be a number"), False),
        (NotFoundError("no issue 7"), False),
        (MigrationError("migration 0003 was edited"), False),
        (NotStoredError("refused", retryable=False), False),
        (NotStoredError("the outbox is full", retryable=True), True),
        (TurnTimeoutError("the turn took longer than 5 s"), True),
        (QueryTimedOut("timed out after 5 s"), True),
        (QueryFailed("Postgres refused the query: syntax error"), False),
        (CallTimedOut(), True),
        (SourceError("not a file"), False),
        (DiscordStartError("the bot token was refused"), False),
        (DiscordStartError("not connected within 30 s", transient=True), True),
        (AllModelsFailedError(["a/b: HTTP 503: x"], transient=True), True),
        (AllModelsFailedError([]), False),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("cut off"), True),
        (httpx.UnsupportedProtocol("ftp://"), False),
        (PoolTimeout("no connection in 10 s"), True),
        (psycopg.OperationalError("the connection is lost"), True),  # no SQLSTATE
        (psycopg.InterfaceError("the connection is closed"), True),
        (psycopg.ProgrammingError("a bug of ours"), False),
        (psycopg.errors.lookup("53100")("disk full"), True),  # insufficient resources: class 53
        (psycopg.errors.lookup("57P01")("admin shutdown"), True),
        (psycopg.errors.lookup("40001")("serialization failure"), True),
        (psycopg.errors.lookup("23505")("unique violation"), False),
        (psycopg.errors.lookup("42P01")("undefined table"), False),  # a retry for the outbox only
        (psycopg.errors.lookup("28P01")("bad password"), False),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
        (TimeoutError(), True),
        (OSError(errno.ENETUNREACH, "network unreachable"), True),
        (OSError(errno.ENOSPC, "no space left on device"), False),  # a person must free space
        (PermissionError(errno.EACCES, "permission denied"), False),
        (FileNotFoundError(errno.ENOENT, "no such file"), False),
        (ValueError("a bug"), False),
        (RuntimeError("a bug"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_the_outbox_retries_every_transient_sqlstate_and_its_own_extras() -> None:
    """One table: what is_transient calls transient, the outbox retries; it retries more
    (not migrated yet), which is not transient for anyone else."""
    for state in [*sorted(TRANSIENT_SQLSTATES), "08006", "53300", "58030"]:
        error = psycopg.errors.lookup(state)("x")
        assert is_transient(error) and classify(error) is Verdict.RETRY, state
    for state in ("42P01", "42703", "42501", "3D000", "28P01"):
        error = psycopg.errors.lookup(state)("x")
        assert not is_transient(error) and classify(error) is Verdict.RETRY, state
    bad_row = psycopg.errors.lookup("23505")("x")
    assert not is_transient(bad_row) and classify(bad_row) is Verdict.BAD_ROW
    assert classify(NotStoredError("the outbox is full", retryable=True)) is Verdict.RETRY
    assert classify(ValueError("a bug")) is Verdict.BUG


def test_is_transient_for_errors_of_a_real_server(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 1")
        with pytest.raises(psycopg.errors.QueryCanceled) as canceled:
            conn.execute("SELECT pg_sleep(1)")
        conn.execute("SET statement_timeout = 0")
        with pytest.raises(psycopg.errors.SyntaxError) as syntax:
            conn.execute("SELEC 1")
        with pytest.raises(psycopg.errors.DivisionByZero) as division:
            conn.execute("SELECT 1 / 0")
    assert canceled.value.sqlstate == "57014" and is_transient(canceled.value)
    assert not is_transient(syntax.value)
    assert not is_transient(division.value)

    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(psycopg.OperationalError) as unreachable:
        psycopg.connect(host="127.0.0.1", port=port, dbname="x", user="x", connect_timeout=2)
    assert is_transient(unreachable.value)


class _Failing:
    def __init__(self, name: str, error: ProviderError) -> None:
        self.name = name
        self.error = error

    async def chat(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        raise self.error


def _router(*errors: ProviderError) -> Router:
    names = [f"p{i}" for i in range(len(errors))]
    config = parse_llm_config(
        {
            "models": {
                "providers": {n: {"baseUrl": "http://127.0.0.1:9", "models": ["m"]} for n in names},
                "fallbacks": [f"{n}/m" for n in names],
            }
        },
        Path("test.json"),
    )
    providers: dict[str, Any] = {n: _Failing(n, e) for n, e in zip(names, errors, strict=True)}
    return Router(config, providers, LlmLog(None), retry_delays_s=())


@pytest.mark.parametrize(
    ("errors", "transient"),
    [
        ((http_error(503, "x"), ProviderError("timeout", transient=True)), True),
        ((http_error(429, "x"), http_error(401, "bad key")), False),
    ],
)
async def test_every_model_failing_is_transient_only_when_each_may_answer_later(
    errors: tuple[ProviderError, ...], transient: bool
) -> None:
    with pytest.raises(AllModelsFailedError) as failed:
        await _router(*errors).chat([Message.user("hi")])
    assert failed.value.transient is transient and is_transient(failed.value) is transient


# -- a query stopped by its deadline is no usage error

SLOW = "SELECT count(*) FROM generate_series(1, 1000000000) AS g"


async def test_a_query_stopped_by_its_deadline_is_transient_not_a_usage_error(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        with pytest.raises(OpenclawError) as stopped:
            await run_checked(conn, CheckedQuery(SLOW, is_select=True), deadline=Deadline(0.3))
        # The same words as before, now in an error that is not the user's.
        assert str(stopped.value) == (
            "timed out after 0.3 s: the query ran longer than the call's deadline and was stopped"
        )
        assert not isinstance(stopped.value, UsageError)
        assert stopped.value.exit_code == 1 and is_transient(stopped.value)

        with pytest.raises(QueryFailed) as refused:  # a typo stays the user's: exit code 2
            await run_checked(conn, CheckedQuery("SELECT nosuch FROM (SELECT 1) AS t", is_select=True))
        assert refused.value.exit_code == 2 and not is_transient(refused.value)
        assert str(refused.value).startswith("Postgres refused the query: ")


def test_mcp_call_query_past_its_deadline_exits_1_with_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = mcp_state.open_state

    @contextlib.asynccontextmanager
    async def with_short_deadline(*args: Any, **kwargs: Any) -> AsyncIterator[mcp_state.ServerState]:
        async with opened(*args, **kwargs) as state:
            state.timeout_ms = 300  # the default 5 s, shortened: the test stays quick
            yield state

    monkeypatch.setattr(mcp_state, "open_state", with_short_deadline)
    result = cli("mcp", "call", "query", f"sql={SLOW}")
    assert result.exit_code == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("openclaw: error: query:")
    assert "timed out after 0.3 s: the query ran longer than the call's deadline" in result.stderr
    # the Cli fixture checks that no traceback was printed
