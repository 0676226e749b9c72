"""The record of one LLM call (the `llm_calls` table), its batch writer and the outbox
handler that ships it. `LlmLog` (llm/log.py) puts one in the outbox per call; the flusher
writes them, idempotently by the call's UUID."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from psycopg import AsyncConnection

from openclaw.db.batch_insert import insert_batch
from openclaw.db.records import field_names, from_payload, row_getter
from openclaw.db.sanitize import INT16, INT32, clamp, pg_row
from openclaw.outbox import Handler

LLM_CALL = "llm_call"  # the outbox kind


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

    @classmethod
    def columns(cls) -> list[str]:
        return field_names(cls)

    def row(self) -> tuple[Any, ...]:
        return _llm_call_row(self)


_LLM_CALL_COLUMNS = field_names(LlmCall)
_LLM_CALL_FIELDS = row_getter(LlmCall)
_SMALLINT_FIELDS = {"provider_attempt", "http_status"}
# (position, bounds) of the INT and SMALLINT columns
_LLM_CALL_INTS = [
    (i, INT16 if f.name in _SMALLINT_FIELDS else INT32)
    for i, f in enumerate(fields(LlmCall))
    if f.type in ("int", "int | None")
]
_LLM_CALL_BOUNDS: list[tuple[int, int] | None] = [
    dict(_LLM_CALL_INTS).get(i) for i in range(len(_LLM_CALL_COLUMNS))
]


def _llm_call_row(call: LlmCall) -> tuple[Any, ...]:
    # A counter from a misbehaving provider must not fail the batch: clamp to the column.
    row = _LLM_CALL_FIELDS(call)
    for i, (low, high) in _LLM_CALL_INTS:
        value = row[i]
        if value is not None and not low <= value <= high:
            return tuple(
                clamp(v, b) if b and v is not None else v for v, b in zip(row, _LLM_CALL_BOUNDS, strict=True)
            )
    return row


async def write_llm_calls(conn: AsyncConnection, calls: Sequence[LlmCall]) -> int:
    """Insert calls; ones already stored (same id) are skipped. Returns rows inserted."""
    return await insert_batch(
        conn,
        "llm_calls",
        _LLM_CALL_COLUMNS,
        [_llm_call_row(c) for c in calls],
        on_conflict="(id) DO NOTHING",
        expect_new=True,
    )


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


OUTBOX_HANDLERS: dict[str, Handler] = {LLM_CALL: _ship_llm_calls}
