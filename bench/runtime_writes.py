"""Idempotent batch writes of llm_calls rows, against a raw COPY of the same rows.

    python bench/runtime_writes.py [--url URL] [--rows 50000] [--batch 500]

Each method writes the same rows into a freshly truncated llm_calls table, in the same
run, on the same server:

- raw COPY: COPY into the table, no conflict handling (the physical limit);
- openclaw writer: `write_llm_calls`, idempotent, which picks pipelined INSERTs for
  small batches and COPY into a staging table + INSERT ... ON CONFLICT for large ones;
  and each of those two strategies forced, whatever the batch size;
- row by row: one INSERT ... ON CONFLICT per row (a naive writer).

Target (DESIGN.md §8): the openclaw writer at >= 50% of the raw COPY rate. Without --url it
creates a throwaway database on $OPENCLAW_TEST_DATABASE_URL or the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path

import psycopg
from psycopg import AsyncConnection, sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from openclaw.db import (
    batch_insert,
    migrate,
)
from openclaw.db.embedded import start_embedded
from openclaw.llm.records import LlmCall, write_llm_calls

COLUMNS = [f.name for f in fields(LlmCall)]
row_of = attrgetter(*COLUMNS)
WORDS = [
    "the",
    "gateway",
    "answered",
    "a",
    "question",
    "about",
    "postgres",
    "migrations",
    "with",
    "tool",
    "calls",
    "and",
    "ünïcode",
]


def make_calls(n: int) -> list[LlmCall]:
    rnd = random.Random(42)
    start = datetime.now(UTC) - timedelta(days=7)
    calls = []
    for i in range(n):
        error = rnd.random() < 0.05
        calls.append(
            LlmCall(
                model=rnd.choice(["kimi-k2", "gpt-4o", "claude-sonnet"]),
                provider="bench",
                created_at=start + timedelta(seconds=i),
                session_key=f"tg:main:{rnd.randrange(50)}:{rnd.randrange(50)}",
                messages_count=rnd.randrange(1, 40),
                request_tokens_est=rnd.randrange(100, 12000),
                streaming=True,
                response_content=None if error else " ".join(rnd.choices(WORDS, k=rnd.randrange(5, 200))),
                tool_call_names=["exec"] if rnd.random() < 0.3 else None,
                usage_total_tokens=rnd.randrange(100, 12000),
                latency_ms=rnd.randrange(200, 9000),
                error="HTTP 429: rate limited" if error else None,
                http_status=429 if error else 200,
            )
        )
    return calls


def batches(calls: Sequence[LlmCall], size: int) -> list[Sequence[LlmCall]]:
    return [calls[i : i + size] for i in range(0, len(calls), size)]


Method = Callable[[AsyncConnection, Sequence[LlmCall], int], Awaitable[None]]


async def raw_copy(conn: AsyncConnection, calls: Sequence[LlmCall], size: int) -> None:
    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    for batch in batches(calls, size):
        copy_sql = sql.SQL("COPY llm_calls ({}) FROM STDIN").format(cols)
        async with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for call in batch:
                await copy.write_row(row_of(call))


async def openclaw_writer(conn: AsyncConnection, calls: Sequence[LlmCall], size: int) -> None:
    for batch in batches(calls, size):
        await write_llm_calls(conn, batch)


def forced(copy_min_rows: int) -> Method:
    """openclaw's writer with its strategy pinned, to show what the size switch buys."""

    async def method(conn: AsyncConnection, calls: Sequence[LlmCall], size: int) -> None:
        saved, batch_insert.COPY_MIN_ROWS = batch_insert.COPY_MIN_ROWS, copy_min_rows
        try:
            await openclaw_writer(conn, calls, size)
        finally:
            batch_insert.COPY_MIN_ROWS = saved

    return method


INSERT = sql.SQL("INSERT INTO llm_calls ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING").format(
    sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS))
)


async def row_by_row(conn: AsyncConnection, calls: Sequence[LlmCall], size: int) -> None:
    for call in calls:
        await conn.execute(INSERT, row_of(call))


async def measure(url: str, rows: int, batch: int) -> None:
    calls = make_calls(rows)
    naive_rows = min(rows, 5000)  # the naive writer is slow; time it on fewer rows
    methods: list[tuple[str, Method, int]] = [
        ("raw COPY (baseline)", raw_copy, rows),
        ("openclaw writer", openclaw_writer, rows),
        ("  always COPY + merge", forced(0), rows),
        ("  always executemany", forced(sys.maxsize), rows),
        ("row by row ON CONFLICT", row_by_row, naive_rows),
    ]
    results: dict[str, list[float]] = {name: [] for name, _, _ in methods}
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        for _ in range(3):  # interleaved rounds, best of three: the machine is noisy
            for name, method, n in methods:
                await conn.execute("TRUNCATE llm_calls")
                started = time.perf_counter()
                await method(conn, calls[:n], batch)
                results[name].append(n / (time.perf_counter() - started))
        # A replay of everything copy_merge wrote must insert nothing.
        await conn.execute("TRUNCATE llm_calls")
        await openclaw_writer(conn, calls, batch)
        inserted = await write_llm_calls(conn, calls[:batch])
        assert inserted == 0, inserted
    baseline = max(results[methods[0][0]])
    print(f"\nllm_calls rows: {rows} (row by row: {naive_rows}), batch size {batch}\n")
    print(f"{'method':<26} {'rows/s':>10} {'vs COPY':>8}")
    for name, _, _ in methods:
        best = max(results[name])
        print(f"{name:<26} {best:>10,.0f} {best / baseline:>8.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="database with openclaw's schema (default: a throwaway one)")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if args.url:
        asyncio.run(measure(args.url, args.rows, args.batch))
        return
    server = os.environ.get("OPENCLAW_TEST_DATABASE_URL") or start_embedded(
        Path(os.environ.get("OPENCLAW_HOME", Path.home() / ".openclaw")) / "pgdata"
    )
    name = f"openclaw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    try:

        async def run() -> None:
            async with await AsyncConnection.connect(url, autocommit=True) as conn:
                await migrate(conn)
            await measure(url, args.rows, args.batch)

        asyncio.run(run())
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
