"""The record of a cron run (the `cron_executions` table), its batch writer and the
outbox handler that ships it. The runner (cron/runner.py) puts one in the outbox when a run
starts and again, with the same uid, when it ends."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from openclaw.db.batch_insert import insert_batch
from openclaw.db.records import field_names, from_payload, row_getter
from openclaw.outbox import Handler

log = logging.getLogger(__name__)

CRON_EXECUTION = "cron_execution"  # the outbox kind


def _now() -> datetime:
    return datetime.now(UTC)


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

    @classmethod
    def columns(cls) -> list[str]:
        return field_names(cls)

    def row(self) -> tuple[Any, ...]:
        return _CRON_ROW(self)


_CRON_COLUMNS = field_names(CronExecution)
_CRON_ROW = row_getter(CronExecution)

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
        _CRON_COLUMNS,
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


async def _ship_cron(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    await write_cron_executions(conn, [from_payload(CronExecution, p) for p in payloads])


OUTBOX_HANDLERS: dict[str, Handler] = {CRON_EXECUTION: _ship_cron}
