"""Batch writers for llm_calls, metrics snapshots and cron executions: replays change nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from openclaw.cron.records import CronExecution, write_cron_executions
from openclaw.db.batch_insert import COPY_MIN_ROWS
from openclaw.gateway.metrics import Counters, MetricsSnapshot, write_metrics_snapshots
from openclaw.llm.records import LlmCall, write_llm_calls


async def test_llm_calls_are_written_once(conn: psycopg.AsyncConnection) -> None:
    started = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    calls = [
        LlmCall(
            model="kimi-k2",
            provider="moonshot",
            session_key="tg:main:1:2",
            created_at=started,
            tool_call_names=["exec", "read_file"],
            response_tool_calls=2,
            usage_total_tokens=900,
            usage_cached_tokens=120,
            time_to_first_token_ms=310,
            http_status=200,
            finish_reason="tool_calls",
            latency_ms=1500,
            streaming=True,
            response_content="ünïcode\ttab\nnewline \\ backslash",
        ),
        LlmCall(model="gpt-4o", provider_attempt=2, error="HTTP 429: slow down", http_status=429),
    ]
    assert await write_llm_calls(conn, calls) == 2
    assert await write_llm_calls(conn, calls) == 0  # a replay from the outbox
    rows = await (
        await conn.execute(
            "SELECT id, created_at, tool_call_names, response_content, usage_cached_tokens, error"
            " FROM llm_calls ORDER BY provider_attempt"
        )
    ).fetchall()
    assert rows[0] == (calls[0].id, started, ["exec", "read_file"], calls[0].response_content, 120, None)
    assert rows[1][5] == "HTTP 429: slow down"


@pytest.mark.parametrize("size", [1, COPY_MIN_ROWS + 1], ids=["pipelined", "copy"])
async def test_batches_in_one_transaction_and_replays(conn: psycopg.AsyncConnection, size: int) -> None:
    first = [LlmCall(model="m", tool_call_names=["exec"]) for _ in range(size)]
    second = [LlmCall(model="m") for _ in range(size)]
    async with conn.transaction():
        assert await write_llm_calls(conn, first) == size
        assert await write_llm_calls(conn, first + second) == size
    assert await write_llm_calls(conn, second) == 0
    count = await (await conn.execute("SELECT count(*), count(tool_call_names) FROM llm_calls")).fetchone()
    assert count == (2 * size, size)


async def test_a_failed_batch_leaves_nothing_behind(conn: psycopg.AsyncConnection) -> None:
    bad = [LlmCall(model="m") for _ in range(COPY_MIN_ROWS)] + [LlmCall(model="m", provider_attempt=0)]
    with pytest.raises(psycopg.errors.CheckViolation):
        await write_llm_calls(conn, bad)
    good = [LlmCall(model="m") for _ in range(COPY_MIN_ROWS)]
    assert await write_llm_calls(conn, good) == COPY_MIN_ROWS  # no stale staged rows merged
    count = await (await conn.execute("SELECT count(*) FROM llm_calls")).fetchone()
    assert count == (COPY_MIN_ROWS,)


async def test_metrics_snapshots_and_the_interval_view(conn: psycopg.AsyncConnection) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    boot1, boot2 = uuid.uuid4(), uuid.uuid4()
    snaps = [
        MetricsSnapshot(
            "nixos", boot1, snapshot_at=t0, uptime_seconds=60, counters=Counters(completed_requests=10)
        ),
        MetricsSnapshot(
            "nixos",
            boot1,
            snapshot_at=t0 + timedelta(minutes=1),
            uptime_seconds=120,
            counters=Counters(completed_requests=25),
        ),
        # restart: counters start again from zero
        MetricsSnapshot(
            "nixos",
            boot2,
            snapshot_at=t0 + timedelta(minutes=3),
            uptime_seconds=60,
            counters=Counters(completed_requests=4),
        ),
        MetricsSnapshot(
            "g731", uuid.uuid4(), snapshot_at=t0, uptime_seconds=60, counters=Counters(completed_requests=7)
        ),
    ]
    assert await write_metrics_snapshots(conn, snaps) == 4
    assert await write_metrics_snapshots(conn, snaps) == 0
    rows = await (
        await conn.execute(
            "SELECT host, sum(completed_requests) FROM metrics_intervals"
            " WHERE snapshot_at > now() - interval '7 days' GROUP BY host ORDER BY host"
        )
    ).fetchall()
    assert rows == [("g731", 7), ("nixos", 29)]
    naive = await (
        await conn.execute("SELECT sum(completed_requests) FROM metrics_snapshots WHERE host = 'nixos'")
    ).fetchone()
    assert naive == (39,)  # what the plan's query would have said


async def test_cron_execution_running_then_finished(conn: psycopg.AsyncConnection) -> None:
    run = CronExecution(job_name="morning brief", agent_name="main", job_id="j1", host="nixos")
    assert await write_cron_executions(conn, [run]) == 1
    done = CronExecution(
        job_name=run.job_name,
        agent_name="main",
        uid=run.uid,
        started_at=run.started_at,
        status="success",
        duration_ms=4200,
        tokens_used=812,
        model="kimi-k2",
    )
    assert await write_cron_executions(conn, [done]) == 1
    # A late replay of the 'running' row, and of the final one, change nothing.
    assert await write_cron_executions(conn, [run]) == 0
    assert await write_cron_executions(conn, [done]) == 0
    row = await (
        await conn.execute("SELECT status, duration_ms, tokens_used, model, host FROM cron_executions")
    ).fetchone()
    assert row == ("success", 4200, 812, "kimi-k2", "nixos")


async def test_cron_start_and_end_in_one_batch(conn: psycopg.AsyncConnection) -> None:
    run = CronExecution(job_name="j", agent_name="main")
    end = CronExecution(job_name="j", agent_name="main", uid=run.uid, status="error", error="timeout")
    assert await write_cron_executions(conn, [end, run]) == 1
    row = await (await conn.execute("SELECT status, error FROM cron_executions")).fetchone()
    assert row == ("error", "timeout")


async def test_nul_characters_and_huge_numbers_do_not_fail_a_batch(conn: psycopg.AsyncConnection) -> None:
    odd = LlmCall(
        model="m",
        response_content="before\x00after",
        tool_call_names=["a\x00b"],
        latency_ms=2**40,
        provider_attempt=10**6,
    )
    fine = LlmCall(model="m")
    assert await write_llm_calls(conn, [odd, fine]) == 2
    row = await (
        await conn.execute(
            "SELECT response_content, tool_call_names, latency_ms, provider_attempt"
            " FROM llm_calls WHERE id = %s",
            (odd.id,),
        )
    ).fetchone()
    assert row == ("before\ufffdafter", ["a\ufffdb"], 2**31 - 1, 2**15 - 1)


async def test_spooled_entries_are_made_storable_when_written(conn: psycopg.AsyncConnection) -> None:
    from openclaw.app import OUTBOX_HANDLERS as HANDLERS
    from openclaw.db.records import to_payload
    from openclaw.llm.records import LLM_CALL

    odd = LlmCall(model="m", response_content="a\x00b", error="e\x00", latency_ms=2**40, http_status=10**6)
    payload = to_payload(odd)
    assert payload["response_content"] == "a\ufffdb" and payload["latency_ms"] == 2**31 - 1
    await HANDLERS[LLM_CALL](conn, [payload] + [to_payload(LlmCall(model="m")) for _ in range(300)])
    row = await (
        await conn.execute("SELECT error, http_status FROM llm_calls WHERE id = %s", (odd.id,))
    ).fetchone()
    assert row == ("e\ufffd", 2**15 - 1)


async def test_every_record_field_and_counter_has_its_column(conn: psycopg.AsyncConnection) -> None:
    """A new field of a record, or a new counter of `Counters` (which is all a new counter
    takes in Python), needs its column: this fails until a migration adds it."""
    for table, record in (
        ("llm_calls", LlmCall),
        ("metrics_snapshots", MetricsSnapshot),
        ("cron_executions", CronExecution),
    ):
        cur = await conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = %s",
            (table,),
        )
        missing = set(record.columns()) - {name for (name,) in await cur.fetchall()}
        assert not missing, f"{table} has no column for {sorted(missing)}: add a migration"


def test_a_snapshot_goes_through_the_outbox_whole() -> None:
    from openclaw.db.records import to_payload

    counters = Counters(**{name: i + 1 for i, name in enumerate(Counters().as_dict())})
    snapshot = MetricsSnapshot("h", uuid.uuid4(), version="1.0", counters=counters, uptime_seconds=5)
    assert MetricsSnapshot.from_payload(to_payload(snapshot)) == snapshot
    # an entry an older openclaw spooled, with fewer counters: the others are 0
    older = {k: v for k, v in to_payload(snapshot).items() if k != "webhook_errors"}
    assert MetricsSnapshot.from_payload(older).counters.webhook_errors == 0
