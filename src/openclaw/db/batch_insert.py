"""Idempotent batch inserts at close to `COPY` speed.

Two strategies, chosen by batch size (measured by `bench/runtime_writes.py`, which
compares both with a raw COPY of the same rows):

- small batches: `INSERT ... ON CONFLICT` through psycopg's pipelined executemany, one
  round trip for the batch;
- large batches: COPY into a session-local staging table, then one
  `INSERT ... SELECT ... ON CONFLICT`.

Either way a replayed batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from openclaw.db.sanitize import pg_row

# Below this many rows the pipelined INSERTs are faster than COPY plus merge (at 50 rows:
# 75% vs 55% of raw COPY; at 5,000 rows: 66% vs 84%).
COPY_MIN_ROWS = 200


async def insert_batch(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    on_conflict: str,
    expect_new: bool = False,
    clean: bool = False,
) -> int:
    """Insert `rows` into `table`; return how many rows were inserted or updated. NUL
    characters in text become U+FFFD (PostgreSQL cannot store them).

    `on_conflict` is the SQL after `ON CONFLICT` (e.g. `(id) DO NOTHING`), a trusted
    constant. Rows must not repeat a conflict key if it says DO UPDATE. Runs in its own
    transaction (a savepoint if the caller has one open).

    `expect_new`: the rows are almost always new (an append-only log whose replays are
    rare), so a large batch is COPYed straight into the table, and only if that hits a
    duplicate key does it go through the staging table. `clean`: the caller made the values
    storable already (no NUL to replace).
    """
    if not rows:
        return 0
    if not clean:
        rows = [pg_row(row) for row in rows]
    target = sql.Identifier(table)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    conflict = sql.SQL(on_conflict)
    async with conn.transaction(), conn.cursor() as cur:
        if len(rows) < COPY_MIN_ROWS:
            placeholders = sql.SQL(", ").join(sql.Placeholder() * len(columns))
            await cur.executemany(
                sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT {}").format(
                    target, cols, placeholders, conflict
                ),
                rows,
            )
            return cur.rowcount
        if expect_new:
            try:
                copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(target, cols)
                async with conn.transaction(), cur.copy(copy_sql) as copy:
                    for row in rows:
                        await copy.write_row(row)
                return len(rows)
            except psycopg.errors.UniqueViolation:
                pass  # a replay: some rows are there already, merge below
        stage = sql.Identifier(f"_stage_{table}")
        await cur.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)").format(stage, target)
        )
        async with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
            for row in rows:
                await copy.write_row(row)
        await cur.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT {}").format(
                target, cols, cols, stage, conflict
            )
        )
        merged = cur.rowcount
        # Empty the stage for the next batch, even within this transaction. TRUNCATE, not
        # DELETE: temp tables get no autovacuum, and dead rows would slow every batch.
        await cur.execute(sql.SQL("TRUNCATE {}").format(stage))
        return merged
