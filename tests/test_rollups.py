"""The hourly rollups (migration 0004) agree with the raw tables, batch by batch and after a
replay, and the curated tools that read them give the raw tables' answers."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from openclaw.gateway.metrics import Counters, MetricsSnapshot, write_metrics_snapshots
from openclaw.llm.records import LlmCall, write_llm_calls
from openclaw.mcp import curated

HOUR_SUMS = """
SELECT host, sum(telegram_requests), sum(completed_requests), sum(agent_turns)
  FROM {} GROUP BY host ORDER BY host"""


def _snapshots(start: datetime) -> list[MetricsSnapshot]:
    """Two hosts over 30 hours, a snapshot a minute, restarting every 7 hours."""
    rows = []
    for host in ("nixos", "g731"):
        boot, uptime, requests = uuid.uuid4(), 0, 0
        for minute in range(30 * 60):
            if minute % (7 * 60) == 0:
                boot, uptime, requests = uuid.uuid4(), 0, 0
            uptime += 60
            requests += minute % 5
            rows.append(
                MetricsSnapshot(
                    host,
                    boot,
                    snapshot_at=start + timedelta(minutes=minute, seconds=7),
                    uptime_seconds=uptime,
                    counters=Counters(
                        telegram_requests=requests, completed_requests=requests, agent_turns=requests // 2
                    ),
                )
            )
    return rows


async def test_metrics_rollup_matches_the_view(conn: psycopg.AsyncConnection) -> None:
    start = datetime.now(UTC) - timedelta(hours=31)
    rows = _snapshots(start)
    rows.sort(key=lambda r: (r.host, r.snapshot_at))
    # Batches of odd sizes, as flushes come, cutting processes anywhere; one is replayed.
    at = 0
    for size in (1, 50, 7, 333, 1000, 2, 5000):
        await write_metrics_snapshots(conn, rows[at : at + size])
        at += size
    await write_metrics_snapshots(conn, rows[at - 5000 : at - 4000])  # a replay: no new rows
    await write_metrics_snapshots(conn, rows[at:])
    view = await (await conn.execute(HOUR_SUMS.format("metrics_intervals"))).fetchall()
    rollup = await (await conn.execute(HOUR_SUMS.format("metrics_hourly"))).fetchall()
    assert rollup == view and view
    await conn.execute("SELECT openclaw_rebuild_rollups()")
    assert await (await conn.execute(HOUR_SUMS.format("metrics_hourly"))).fetchall() == view


@pytest.mark.parametrize("since", ["45m", "90m", "5h", "26h", "7d"])
async def test_request_volume_is_exact_for_any_window(conn: psycopg.AsyncConnection, since: str) -> None:
    await write_metrics_snapshots(conn, _snapshots(datetime.now(UTC) - timedelta(hours=31)))
    answer = await curated.request_volume(conn, since)
    window = curated._since(since)
    exact = await (
        await conn.execute(
            """SELECT host, sum(telegram_requests), count(DISTINCT boot_id) FROM metrics_intervals
                WHERE snapshot_at >= %s GROUP BY host ORDER BY host""",
            (window,),
        )
    ).fetchall()
    # the window moves on between the two reads by a few ms: no snapshot is that recent
    assert [(r["host"], r["telegram"], r["processes"]) for r in answer] == [tuple(e) for e in exact]


async def test_llm_rollup_matches_the_calls(conn: psycopg.AsyncConnection) -> None:
    rnd = random.Random(7)
    now = datetime.now(UTC)
    calls = [
        LlmCall(
            model=rnd.choice(["kimi-k2", "gpt-4o"]),
            provider=rnd.choice(["moonshot", None]),
            latency_ms=int(rnd.lognormvariate(6, 1)),
            time_to_first_token_ms=rnd.choice([None, 120]),
            usage_total_tokens=rnd.randrange(1000),
            error=rnd.choice([None] * 9 + ["HTTP 502"]),
            created_at=now - timedelta(minutes=rnd.randrange(3 * 24 * 60)),
        )
        for _ in range(3000)
    ]
    for at in range(0, 3000, 700):
        await write_llm_calls(conn, calls[at : at + 700])
    await write_llm_calls(conn, calls[:100])  # replayed: nothing new
    raw = await (
        await conn.execute(
            """SELECT model, coalesce(provider, ''), count(*), count(error), sum(latency_ms),
                      sum(usage_total_tokens)
                 FROM llm_calls GROUP BY 1, 2 ORDER BY 1, 2"""
        )
    ).fetchall()
    rollup = await (
        await conn.execute(
            """SELECT model, provider, sum(calls), sum(errors), sum(latency_ms_sum), sum(total_tokens)
                 FROM llm_calls_hourly GROUP BY 1, 2 ORDER BY 1, 2"""
        )
    ).fetchall()
    assert rollup == raw

    for hours in (1, 24, 30, 24 * 3 + 5, 24 * 7):  # hourly only, and days with hours around them
        answer: list[dict[str, Any]] = await curated.llm_performance(conn, hours=hours)
        since = curated._hour(datetime.now(UTC) - timedelta(hours=hours))
        exact = {
            (model, provider): (calls, p95)
            for model, provider, calls, p95 in await (
                await conn.execute(
                    """SELECT model, provider, count(*),
                              percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)
                         FROM llm_calls WHERE created_at >= %s GROUP BY 1, 2""",
                    (since,),
                )
            ).fetchall()
        }
        assert len(answer) == len(exact), hours
        for row in answer:  # the top of the bucket holding the nearest-rank p95: at most 10% above it
            calls, p95 = exact[(row["model"], row["provider"])]
            assert row["calls"] == calls and p95 <= row["p95_latency_ms"] <= 1.1 * p95 + 1, hours


async def test_search_finds_recent_and_old_matches_newest_first(
    conn: psycopg.AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(curated, "RECENT_MESSAGES", 5)  # the newest 5 first, then the index
    await conn.execute("INSERT INTO sessions (session_key, agent_name) VALUES ('tg:main:1:1', 'main')")
    texts = ["the quokka smiles"] + [f"deploy number {i}" for i in range(1, 30)]
    for text in texts:
        await conn.execute(
            "INSERT INTO messages (session_id, role, content) SELECT id, 'user', %s FROM sessions", (text,)
        )
    rare = await curated.search_sessions(conn, "quokka")
    assert [r["content"] for r in rare] == ["the quokka smiles"]  # only the word index finds it
    common = await curated.search_sessions(conn, "deploy", limit=8)
    assert [r["content"] for r in common] == [f"deploy number {i}" for i in range(29, 21, -1)]
    assert await curated.search_sessions(conn, "deploy quokka") == []


async def test_a_batch_rolls_up_its_own_rows_without_scanning_the_table(
    conn: psycopg.AsyncConnection,
) -> None:
    """The trigger reads the batch's calls by id: a flush of a backlog does not slow down
    as llm_calls grows (0004's function scanned the whole table three times a batch)."""
    hour = datetime(2026, 11, 2, 10, tzinfo=UTC)
    await write_llm_calls(conn, [LlmCall(model="earlier", created_at=hour) for _ in range(20_000)])
    await conn.execute("ANALYZE llm_calls")
    for size in (300, 20):  # both write paths: COPY and merge, and pipelined INSERTs
        calls = [LlmCall(model="m", provider="p", created_at=hour, latency_ms=100) for _ in range(size)]
        async with conn.transaction():
            await write_llm_calls(conn, calls)
            # rows of llm_calls read by sequential scans in this transaction
            cur = await conn.execute("SELECT pg_stat_get_xact_tuples_returned('llm_calls'::regclass)")
            row = await cur.fetchone()
            assert row is not None and row[0] < 1_000  # not the 20,000 there before, three times
    cur = await conn.execute("SELECT calls FROM llm_calls_hourly WHERE hour = %s AND model = 'm'", (hour,))
    assert await cur.fetchone() == (320,)
