"""The gateway's HTTP API, compatible with openclaw-rs (reference §5).

Open: /health, /health/lite, /version, /ping, /ready, /metrics, /metrics/json,
/metrics/summary. With the gateway token (`Authorization: Bearer ...`, compared in
constant time): /status, /logs, /logs/{id}, POST /webhook. Numbers are real: session
counts come from the store, /logs/{id} falls back to Postgres for calls that left memory.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import sqlite3
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from psycopg.rows import class_row
from starlette.requests import ClientDisconnect

from openclaw import __version__
from openclaw.agent.loop import message_problem
from openclaw.agent.runtime import AgentRuntime
from openclaw.errors import OpenclawError, first_line, is_database_error, is_transient
from openclaw.gateway.config import GatewayConfig
from openclaw.gateway.metrics import Channel, Counters, OutboxFigures, Process, prometheus_text
from openclaw.gateway.turns import Answered, TurnRunner
from openclaw.llm.records import LlmCall

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """What the API serves from: configuration, the agent runtime, counters, and the turn
    runner every turn goes through (webhook, chats, cron)."""

    config: GatewayConfig
    runtime: AgentRuntime
    host: str
    counters: Counters = field(default_factory=Counters)
    process: Process = field(default_factory=Process)
    draining: bool = False
    turns: TurnRunner = field(init=False)

    def __post_init__(self) -> None:
        # The limit is read from the config at each turn: the config may be replaced.
        self.turns = TurnRunner(self.counters, lambda: self.config.sandbox.max_concurrent)

    @property
    def active_turns(self) -> int:
        return self.turns.active

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        # compare_digest with every token: the time taken says nothing about which matched
        matches = [hmac.compare_digest(token.encode(), t.encode()) for t in self.config.tokens()]
        return any(matches)


def _log_unless_unavailable(exc: Exception, what: str) -> None:
    """An endpoint that answers "unavailable" whatever failed logs a bug's traceback: a
    database down or slow (psycopg's errors, the pool's timeout, ours), a file system or a
    session file failing is what it is there to report, not a bug."""
    expected = (
        is_transient(exc)
        or is_database_error(exc)
        or isinstance(exc, OpenclawError | OSError | sqlite3.Error)
    )
    if not expected:
        log.error("%s", what, exc_info=exc)


def _uptime(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60}m{rest % 60}s"


def _entry(call: LlmCall) -> dict[str, Any]:
    entry = asdict(call)
    entry["id"] = str(call.id)
    entry["timestamp"] = call.created_at.astimezone(UTC).isoformat()
    del entry["created_at"]
    return entry


def _error(request_id: str, status: int, code: str, message: str, *, close: bool = False) -> JSONResponse:
    """The webhook's error answer. `close`: the body was not read to its end, so the
    connection cannot carry another request; the server closes it after this answer."""
    headers = {"connection": "close"} if close else None
    return JSONResponse(
        {"request_id": request_id, "error": message, "error_code": code}, status_code=status, headers=headers
    )


class _BodyTooLargeError(Exception):
    pass


class _RefusedError(Exception):
    """A request refused before its route ran (a token check): `response` is the answer."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _read_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """The request's body, whole. _BodyTooLargeError past `max_bytes`; TimeoutError when
    it has not all arrived within `timeout_s` (a client that sends slowly, or less than its
    Content-Length, must not hold a connection); ClientDisconnect when the client left."""
    body = bytearray()  # appended to in place: a body sent a byte at a time costs O(n)
    async with asyncio.timeout(timeout_s):
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise _BodyTooLargeError
    return bytes(body)


# Python's own default limit, whatever this process's setting: int() of a longer string
# costs time quadratic in its length.
_MAX_INT_DIGITS = 4300


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"a number of {len(text)} digits (at most {_MAX_INT_DIGITS})")
    return int(text)


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: str
    message: str


def _webhook_input(body: bytes, config: GatewayConfig) -> tuple[str, str | None] | _Refusal:
    """The message and the session key (None: a new session) of a webhook body, or why
    they are refused. Every malformed body is refused here, before anything is written."""
    try:
        payload = json.loads(body or b"null", parse_int=_json_int)
    except RecursionError:  # nesting deeper than the parser's stack
        return _Refusal("INVALID_JSON", "the body is not valid JSON: nested too deeply")
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of thousands of digits
        return _Refusal("INVALID_JSON", f"the body is not valid JSON: {first_line(exc)}")
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, str) or not message.strip():
        return _Refusal("MISSING_MESSAGE", 'the body needs a non-empty "message"')
    problem = message_problem(message)
    if problem is not None:
        return _Refusal("INVALID_MESSAGE", f'"message": {problem}')
    key = payload.get("session_key")
    if key is not None and (not isinstance(key, str) or not key.strip()):
        return _Refusal("INVALID_SESSION_KEY", '"session_key" must be a non-empty string')
    problem = config.webhook_key_problem(key) if key is not None else None
    if problem is not None:
        return _Refusal("INVALID_SESSION_KEY", problem)
    return message, key


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(
        title="openclaw gateway", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    runtime: AgentRuntime = gw.runtime

    def unauthorized() -> JSONResponse:
        if not gw.config.tokens():
            return JSONResponse(
                {"error": "no gateway token configured (webhook.token in the gateway config)"},
                status_code=503,
            )
        return JSONResponse({"error": "missing or invalid token"}, status_code=401)

    # The token checks, as dependencies: a route that needs the token says so in its
    # signature. A refusal is an exception whose answer is the route's own error shape.
    async def answer_refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _RefusedError)
        return exc.response

    app.add_exception_handler(_RefusedError, answer_refusal)

    def require_token(request: Request) -> None:
        if not gw.authorized(request):
            raise _RefusedError(unauthorized())

    def webhook_request_id(request: Request) -> str:
        """The webhook call's request id, once its token is checked (before the body is read)."""
        request_id = str(uuid.uuid4())
        if not gw.config.webhook_token:
            raise _RefusedError(
                _error(request_id, 503, "WEBHOOK_NOT_CONFIGURED", "the webhook has no token configured")
            )
        if not gw.authorized(request):
            raise _RefusedError(_error(request_id, 401, "INVALID_TOKEN", "missing or invalid token"))
        return request_id

    token = [Depends(require_token)]

    async def session_totals() -> dict[str, Any]:
        try:
            stats = await asyncio.wait_for(runtime.store.stats(), 3)
        except Exception as exc:  # the store's database may be down: say so, don't fail /health
            _log_unless_unavailable(exc, "/health: the session store's figures failed")
            return {"error": type(exc).__name__}
        return {"total": stats.sessions, "messages": stats.messages, "by_channel": stats.sessions_by_channel}

    def llm_stats() -> dict[str, Any]:
        stats = runtime.llm_log.stats()
        return {
            "total_recorded": stats.total_recorded,
            "buffered": stats.buffered,
            "errors": stats.errors,
            "avg_latency_ms": stats.avg_latency_ms,
        }

    @app.get("/ping")
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    @app.get("/health/lite")
    async def health_lite() -> dict[str, Any]:
        stats = runtime.llm_log.stats()
        return {
            "status": "ok",
            "version": __version__,
            "agent": gw.config.agent_name,
            "pid": os.getpid(),
            "uptime": _uptime(gw.process.uptime_s),
            "uptime_seconds": gw.process.uptime_s,
            "active_tasks": gw.active_turns,
            "provider_count": len(runtime.config.providers),
            "llm_calls": stats.total_recorded,
            "llm_errors": stats.errors,
        }

    def outbox() -> OutboxFigures:
        return OutboxFigures.of(runtime.spool, runtime.flusher)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        rss = gw.process.rss_bytes
        figures = outbox()
        return {
            "status": "draining" if gw.draining else "degraded" if figures.problems else "ok",
            "problems": figures.problems,
            "version": __version__,
            "agent": gw.config.agent_name,
            "uptime": _uptime(gw.process.uptime_s),
            "uptime_seconds": gw.process.uptime_s,
            "memory_rss": f"{rss / 2**20:.1f} MiB",
            "memory_rss_bytes": rss,
            "pid": os.getpid(),
            "hostname": gw.host,
            "boot_id": str(gw.process.boot_id),
            "metrics": gw.counters.as_dict(),
            "provider_count": len(runtime.config.providers),
            "fallback_chain": [str(m) for m in runtime.config.fallbacks],
            "llm_log": llm_stats(),
            "sessions": await session_totals(),
            "outbox": {**figures.as_dict(), "not_persisted_llm_calls": runtime.llm_log.not_persisted},
        }

    @app.get("/version")
    async def version() -> dict[str, Any]:
        boot = datetime.fromtimestamp(gw.process.started_at, UTC).isoformat()
        return {
            "version": __version__,
            "agent": gw.config.agent_name,
            "built": __version__,
            "boot_time": boot,
        }

    @app.get("/ready")
    async def ready() -> JSONResponse:
        checks: dict[str, bool] = {
            "providers": bool(runtime.config.providers),
            "not_draining": not gw.draining,
        }
        try:
            async with runtime.database.connection(wait_s=2) as conn:
                await conn.execute("SELECT 1")
            checks["database"] = True
        except Exception as exc:  # whatever keeps Postgres from answering, /ready says "database"
            _log_unless_unavailable(exc, "/ready: checking the database failed")
            checks["database"] = False
        figures = outbox()
        checks["outbox_not_full"] = figures.pending < figures.max_entries
        failed = [name for name, ok in checks.items() if not ok]
        body = {
            "ready": not failed,
            "checks_total": len(checks),
            "checks_passed": len(checks) - len(failed),
            "failed": failed,
            # Serving, but a person must look: a kind the outbox cannot ship (a bug), a spool
            # disk that cannot be written (entries held in memory).
            "degraded": figures.problems,
        }
        return JSONResponse(body, status_code=200 if not failed else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        text = prometheus_text(gw.counters, gw.process, __version__, outbox())
        return Response(text, media_type=PROMETHEUS)

    @app.get("/metrics/json")
    async def metrics_json() -> dict[str, Any]:
        c = gw.counters
        return {
            **c.as_dict(),
            "avg_latency_ms": round(c.avg_latency_ms, 1),
            "error_rate_pct": round(c.error_rate_pct, 2),
            "process_rss_bytes": gw.process.rss_bytes,
            "uptime_seconds": gw.process.uptime_s,
        }

    @app.get("/metrics/summary")
    async def metrics_summary() -> PlainTextResponse:
        c, stats = gw.counters, runtime.llm_log.stats()
        return PlainTextResponse(
            f"reqs={c.requests} errs={c.errors} err%={c.error_rate_pct:.1f} avg_lat={c.avg_latency_ms:.0f}ms "
            f"turns={c.agent_turns} tools={c.tool_calls} webhooks={c.webhook_requests} "
            f"llm={stats.total_recorded} llm_err={stats.errors} up={_uptime(gw.process.uptime_s)}"
        )

    @app.get("/status", dependencies=token)
    async def status() -> dict[str, Any]:
        return {
            "running": not gw.draining,
            "agent": gw.config.agent_name,
            "providers": {
                name: {"api": p.api.value, "base_url": p.base_url, "models": [m.id for m in p.models]}
                for name, p in runtime.config.providers.items()
            },
            "fallback_chain": [str(m) for m in runtime.config.fallbacks],
            "channels": {
                "telegram": gw.config.telegram.enabled,
                "discord": gw.config.discord.enabled,
                "webhook": bool(gw.config.webhook_token),
            },
            "sessions": await session_totals(),
            "metrics": gw.counters.as_dict(),
            "active_turns": gw.active_turns,
            "tools": runtime.agent.tools.names(),
        }

    @app.get("/logs", dependencies=token)
    async def logs(limit: int = 50) -> dict[str, Any]:
        limit = max(1, min(limit, 1000))
        entries = [_entry(c) for c in runtime.llm_log.recent(limit)]
        return {**llm_stats(), "showing": len(entries), "entries": entries}

    @app.get("/logs/{call_id}", response_model=None, dependencies=token)
    async def log_entry(call_id: str) -> JSONResponse | dict[str, Any]:
        try:
            wanted = uuid.UUID(call_id)
        except ValueError:
            # openclaw-rs answers 404 for any id it does not hold; so do we
            return JSONResponse(
                {"found": False, "error": f"{call_id!r} is not a log entry id"}, status_code=404
            )
        call = runtime.llm_log.get(wanted)
        if call is None:  # left the ring buffer: Postgres has it (once the outbox shipped it)
            columns = ", ".join(LlmCall.__dataclass_fields__)
            try:
                async with (
                    runtime.database.connection(wait_s=3) as conn,
                    conn.cursor(row_factory=class_row(LlmCall)) as cur,
                ):
                    await cur.execute(f"SELECT {columns} FROM llm_calls WHERE id = %s", (wanted,))
                    call = await cur.fetchone()
            except Exception as exc:  # an answer for the client, whatever failed
                _log_unless_unavailable(exc, "/logs: reading a log entry from Postgres failed")
                return JSONResponse(
                    {"found": False, "error": "not in memory, and Postgres is unreachable"}, status_code=503
                )
        if call is None:
            return JSONResponse({"found": False, "error": f"no log entry {call_id}"}, status_code=404)
        return {"found": True, "entry": _entry(call)}

    @app.post("/webhook")
    # A default rather than Annotated: the annotation is a string (PEP 563) that FastAPI
    # resolves in the module's globals, where this closure is not.
    async def webhook(request: Request, request_id: str = Depends(webhook_request_id)) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > gw.config.max_body_bytes:
            return _error(request_id, 413, "PAYLOAD_TOO_LARGE", f"body over {gw.config.max_body_bytes} bytes")
        try:
            body = await _read_body(request, gw.config.max_body_bytes, gw.config.webhook_body_timeout_s)
        except _BodyTooLargeError:
            too_large = f"body over {gw.config.max_body_bytes} bytes"
            return _error(request_id, 413, "PAYLOAD_TOO_LARGE", too_large, close=True)
        except TimeoutError:
            timeout_s = gw.config.webhook_body_timeout_s
            return _error(
                request_id, 408, "BODY_TIMEOUT", f"the body did not arrive within {timeout_s:g} s", close=True
            )
        except ClientDisconnect:
            # Nobody reads this answer; a client that left is not the gateway's error.
            log.debug("webhook: the client disconnected before its body arrived")
            return _error(request_id, 400, "CLIENT_DISCONNECTED", "the client disconnected", close=True)
        parsed = _webhook_input(body, gw.config)
        if isinstance(parsed, _Refusal):
            return _error(request_id, 400, parsed.code, parsed.message)
        message, key = parsed
        if gw.draining:
            return _error(request_id, 503, "SHUTTING_DOWN", "the gateway is shutting down")
        turns = gw.turns
        if turns.reject_if_busy():
            return _error(request_id, 503, "BUSY", "too many turns running; try again shortly")
        gw.counters.request(Channel.WEBHOOK)
        session_key = key or f"webhook:{gw.config.agent_name}:{uuid.uuid4()}"
        with turns.place():
            try:
                outcome = await turns.run(
                    Channel.WEBHOOK,
                    session_key,
                    lambda: runtime.agent.turn(session_key, message, model=gw.config.model),
                )
            except asyncio.CancelledError:  # the client left, or the gateway stops
                gw.counters.tasks_cancelled += 1
                raise
        if not isinstance(outcome, Answered):
            return _error(request_id, outcome.status, outcome.code, outcome.detail)
        result, elapsed_ms = outcome.result, outcome.elapsed_ms
        return JSONResponse(
            {
                "request_id": request_id,
                "reply": result.reply,
                "session_key": session_key,
                "model": str(result.model),
                "tool_calls": result.tool_calls,
                "rounds": result.rounds,
                "elapsed_ms": elapsed_ms,
            }
        )

    return app
