"""Idempotent batch inserts at close to `COPY` speed.

Rows are copied into a session-local staging table, then merged into the real table
with `INSERT ... SELECT ... ON CONFLICT`: one round trip for the data, one for the
merge, and a replayed batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import AsyncConnection, sql


async def copy_merge(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    on_conflict: str,
    select_prefix: str = "",
) -> int:
    """Insert `rows` into `table`; return how many rows the merge inserted or updated.

    `on_conflict` is the SQL after `ON CONFLICT` (e.g. `(id) DO NOTHING`); it and
    `select_prefix` (e.g. `DISTINCT ON (uid)`) are trusted constants, never user input.
    Runs in its own transaction (a savepoint if the caller has one open).
    """
    stage = sql.Identifier(f"_stage_{table}")
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    await conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        ).format(stage=stage, table=sql.Identifier(table))
    )
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy(
            sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(stage=stage, cols=cols)
        ) as copy:
            for row in rows:
                await copy.write_row(row)
        await cur.execute(
            sql.SQL(
                "INSERT INTO {table} ({cols}) SELECT {prefix} {cols} FROM {stage} ON CONFLICT {conflict}"
            ).format(
                table=sql.Identifier(table),
                cols=cols,
                prefix=sql.SQL(select_prefix),
                stage=stage,
                conflict=sql.SQL(on_conflict),
            )
        )
        merged = cur.rowcount
        # Empty it now: a second batch in the same transaction must not merge these again.
        await cur.execute(sql.SQL("TRUNCATE {stage}").format(stage=stage))
    return merged
