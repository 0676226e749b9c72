"""Writes of runtime observability rows: LLM calls, metrics snapshots, cron executions.

Each record carries a client-generated key (`LlmCall.id`, `uid` on the others), so the
outbox can replay a batch after a crash without writing anything twice. Writers take a
batch; they are called by the outbox flusher, never on a user's request path.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from psycopg import AsyncConnection

from openclaw.db.batch_insert import insert_batch
from openclaw.db.sanitize import INT16, INT32, clamp, pg_row, pg_value

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class LlmCall:
    """One LLM call or fallback attempt (reference §4 plus the fields of DESIGN.md §4)."""

    model: str
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = field(default_factory=_now)  # when the call started
    session_key: str | None = None
    provider: str | None = None
    provider_attempt: int = 1
    messages_count: int = 0
    request_tokens_est: int = 0
    streaming: bool = False
    response_content: str | None = None
    response_reasoning: str | None = None
    response_tool_calls: int = 0
    tool_call_names: list[str] | None = None
    usage_prompt_tokens: int = 0
    usage_completion_tokens: int = 0
    usage_total_tokens: int = 0
    usage_cached_tokens: int = 0
    usage_reasoning_tokens: int = 0
    finish_reason: str | None = None
    time_to_first_token_ms: int | None = None
    http_status: int | None = None
    latency_ms: int = 0
    error: str | None = None
    host: str | None = None


@dataclass(slots=True)
class MetricsSnapshot:
    """Cumulative gateway counters at one moment (reference §6), plus RSS and uptime."""

    host: str
    boot_id: uuid.UUID
    uid: uuid.UUID = field(default_factory=uuid.uuid4)
    snapshot_at: datetime = field(default_factory=_now)
    version: str | None = None
    telegram_requests: int = 0
    discord_requests: int = 0
    telegram_errors: int = 0
    discord_errors: int = 0
    rate_limited: int = 0
    concurrency_rejected: int = 0
    completed_requests: int = 0
    total_latency_ms: int = 0
    agent_turns: int = 0
    tool_calls: int = 0
    webhook_requests: int = 0
    webhook_errors: int = 0  # migration 0006
    tasks_cancelled: int = 0
    agent_timeouts: int = 0
    gateway_connects: int = 0
    gateway_disconnects: int = 0
    gateway_resumes: int = 0
    process_rss_bytes: int = 0
    uptime_seconds: int = 0


CRON_STATUSES = ("running", "success", "error", "cancelled")
# How a run was decided (openclaw.cron.runner): its slot claimed in Postgres, run on the
# lease while Postgres was unreachable, or asked for by a person. None: recorded by an
# openclaw from before migration 0008.
CRON_DECISIONS = ("claim", "lease", "manual")


@dataclass(slots=True)
class CronExecution:
    """A cron run. Written once as `running` and again, with the same uid, when it ends."""

    job_name: str
    agent_name: str
    uid: uuid.UUID = field(default_factory=uuid.uuid4)
    started_at: datetime = field(default_factory=_now)
    status: str = "running"
    job_id: str | None = None
    model: str | None = None
    host: str | None = None
    session_key: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    tokens_used: int = 0
    decided_by: str | None = None  # migration 0008
    scheduled_for: datetime | None = None  # the slot; None for a manual run

    def __post_init__(self) -> None:
        if self.status not in CRON_STATUSES:
            raise ValueError(f"unknown cron status {self.status!r}; expected one of {CRON_STATUSES}")
        if self.decided_by is not None and self.decided_by not in CRON_DECISIONS:
            raise ValueError(f"unknown cron decision {self.decided_by!r}; expected one of {CRON_DECISIONS}")


def _columns(record_type: type) -> list[str]:
    return [f.name for f in fields(record_type)]


def _row_of(record_type: type) -> Callable[[Any], tuple[Any, ...]]:
    # A shallow getter: dataclasses.astuple deep-copies every value, which alone costs
    # more than the COPY it feeds.
    getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*_columns(record_type))
    return getter


_LLM_CALL_FIELDS = _row_of(LlmCall)
_SMALLINT_FIELDS = {"provider_attempt", "http_status"}
# (position, bounds) of the INT and SMALLINT columns
_LLM_CALL_INTS = [
    (i, INT16 if f.name in _SMALLINT_FIELDS else INT32)
    for i, f in enumerate(fields(LlmCall))
    if f.type in ("int", "int | None")
]


def _llm_call_row(call: LlmCall) -> tuple[Any, ...]:
    # A counter from a misbehaving provider must not fail the batch: clamp to the column.
    row = _LLM_CALL_FIELDS(call)
    for i, (low, high) in _LLM_CALL_INTS:
        value = row[i]
        if value is not None and not low <= value <= high:
            return tuple(
                clamp(v, b) if b and v is not None else v
                for v, b in zip(row, _llm_call_bounds(), strict=True)
            )
    return row


def _llm_call_bounds() -> list[tuple[int, int] | None]:
    bounds: list[tuple[int, int] | None] = [None] * len(fields(LlmCall))
    for i, b in _LLM_CALL_INTS:
        bounds[i] = b
    return bounds


_METRICS_ROW = _row_of(MetricsSnapshot)
_CRON_ROW = _row_of(CronExecution)


async def write_llm_calls(conn: AsyncConnection, calls: Sequence[LlmCall]) -> int:
    """Insert calls; ones already stored (same id) are skipped. Returns rows inserted."""
    return await insert_batch(
        conn,
        "llm_calls",
        _columns(LlmCall),
        [_llm_call_row(c) for c in calls],
        on_conflict="(id) DO NOTHING",
        expect_new=True,
    )


async def write_metrics_snapshots(conn: AsyncConnection, snapshots: Sequence[MetricsSnapshot]) -> int:
    return await insert_batch(
        conn,
        "metrics_snapshots",
        _columns(MetricsSnapshot),
        [_METRICS_ROW(s) for s in snapshots],
        on_conflict="(uid) DO NOTHING",
        expect_new=True,
    )


# A finished run never goes back to `running`, whatever order the outbox replays in. Rows
# merge on uid only, and the uid of a run decided without Postgres names its process: a
# second run of the same slot stays a second row (the truth), never an update of the first.
_CRON_MERGE = """(uid) DO UPDATE SET
    status = EXCLUDED.status, duration_ms = EXCLUDED.duration_ms, error = EXCLUDED.error,
    tokens_used = EXCLUDED.tokens_used, model = EXCLUDED.model,
    session_key = COALESCE(EXCLUDED.session_key, cron_executions.session_key)
    WHERE cron_executions.status = 'running' AND EXCLUDED.status <> 'running'"""

# The slots of `runs` that have more than one row: a slot that ran twice.
_CRON_SLOTS_RUN_TWICE = """
    SELECT job_name, scheduled_for,
           string_agg(format('%%s (%%s)', coalesce(host, '?'), coalesce(decided_by, '?')), ', ' ORDER BY id)
      FROM cron_executions
     WHERE (job_id, scheduled_for) IN (SELECT * FROM unnest(%s::text[], %s::timestamptz[]))
     GROUP BY job_id, job_name, scheduled_for HAVING count(*) > 1"""


async def write_cron_executions(conn: AsyncConnection, runs: Sequence[CronExecution]) -> int:
    """Insert or finish cron runs. Returns rows inserted or updated."""
    # One row per uid and batch (ON CONFLICT DO UPDATE may touch a row only once):
    # the final state wins over `running`.
    latest: dict[uuid.UUID, CronExecution] = {}
    for run in runs:
        if run.uid not in latest or latest[run.uid].status == "running":
            latest[run.uid] = run
    written = await insert_batch(
        conn,
        "cron_executions",
        _columns(CronExecution),
        [_CRON_ROW(r) for r in latest.values()],
        on_conflict=_CRON_MERGE,
    )
    await _warn_of_slots_run_twice(conn, [r for r in latest.values() if r.decided_by == "lease"])
    return written


async def _warn_of_slots_run_twice(conn: AsyncConnection, lease_runs: Sequence[CronExecution]) -> None:
    """Runs decided without Postgres arrive late: say so if one's slot had run elsewhere too
    (it should never happen; both rows stay)."""
    slots = [(r.job_id, r.scheduled_for) for r in lease_runs if r.job_id and r.scheduled_for]
    if not slots:
        return
    cur = await conn.execute(_CRON_SLOTS_RUN_TWICE, ([j for j, _ in slots], [s for _, s in slots]))
    for job_name, scheduled_for, runs in await cur.fetchall():
        log.error("cron: %s at %s ran more than once: %s", job_name, scheduled_for.isoformat(), runs)


# ---- outbox entries ---------------------------------------------------------------------
# The outbox stores JSON; these turn records into entries and entries back into writes.

LLM_CALL = "llm_call"
METRICS_SNAPSHOT = "metrics_snapshot"
CRON_EXECUTION = "cron_execution"

_UUID_FIELDS = frozenset({"id", "uid", "boot_id"})
_TIME_FIELDS = frozenset({"created_at", "snapshot_at", "started_at", "scheduled_for"})


def to_payload(record: LlmCall | MetricsSnapshot | CronExecution) -> dict[str, Any]:
    """An outbox entry for the record, with the values Postgres would refuse made storable
    (see `sanitize`) here, once, so that the flusher can ship it as it is."""
    if isinstance(record, LlmCall):
        values = _llm_call_row(record)
    else:
        values = tuple(getattr(record, f.name) for f in fields(record))
    payload: dict[str, Any] = {}
    for f, value in zip(fields(record), values, strict=True):
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        payload[f.name] = pg_value(value)
    return payload


R = TypeVar("R", LlmCall, MetricsSnapshot, CronExecution)


def from_payload(record_type: type[R], payload: dict[str, Any]) -> R:
    values = dict(payload)
    for name in _UUID_FIELDS & values.keys():
        if values[name] is not None:
            values[name] = uuid.UUID(values[name])
    for name in _TIME_FIELDS & values.keys():
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    return record_type(**values)


_LLM_CALL_COLUMNS = _columns(LlmCall)
_LLM_CALL_VALUES = itemgetter(*_LLM_CALL_COLUMNS)


async def _ship_llm_calls(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    # Straight from the spooled JSON to rows: Postgres parses the UUID and time text
    # itself, which spares building a dataclass per call on the hot flush path.
    # Payloads were made storable when they were spooled (to_payload).
    rows = []
    for p in payloads:
        try:
            rows.append(_LLM_CALL_VALUES(p))
        except KeyError:  # written by an older openclaw: fill in the defaults
            rows.append(pg_row(_llm_call_row(from_payload(LlmCall, p))))
    await insert_batch(
        conn, "llm_calls", _LLM_CALL_COLUMNS, rows, on_conflict="(id) DO NOTHING", expect_new=True, clean=True
    )


async def _ship_metrics(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    await write_metrics_snapshots(conn, [from_payload(MetricsSnapshot, p) for p in payloads])


async def _ship_cron(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    await write_cron_executions(conn, [from_payload(CronExecution, p) for p in payloads])


# Outbox handlers by entry kind (see openclaw.outbox.Flusher).
HANDLERS = {LLM_CALL: _ship_llm_calls, METRICS_SNAPSHOT: _ship_metrics, CRON_EXECUTION: _ship_cron}
