"""`openclaw metrics`: the plan's Phase 5 questions, answered across restarts."""

from __future__ import annotations

from typing import Any

import typer
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from openclaw.cli.agent_cmd import parse_since
from openclaw.cli.common import JSON_OPTION, print_json, print_table, run_db

# Sums of per-interval increases (metrics_intervals), never of the cumulative counters.
TOTALS = """
SELECT host,
       sum(telegram_requests + discord_requests + webhook_requests) AS requests,
       sum(completed_requests) AS completed,
       sum(telegram_errors + discord_errors) AS errors,
       round(100.0 * sum(telegram_errors + discord_errors)
             / nullif(sum(telegram_requests + discord_requests), 0), 2) AS error_pct,
       round(sum(total_latency_ms)::numeric / nullif(sum(completed_requests), 0)) AS avg_latency_ms,
       sum(agent_turns) AS turns, sum(tool_calls) AS tool_calls,
       sum(rate_limited) AS rate_limited, sum(concurrency_rejected) AS busy_rejected,
       count(DISTINCT boot_id) AS restarts_seen, max(snapshot_at) AS last_snapshot
FROM metrics_intervals
WHERE snapshot_at > now() - %(window)s::interval AND (%(host)s::text IS NULL OR host = %(host)s)
GROUP BY host ORDER BY host
"""


def metrics_command(
    ctx: typer.Context,
    since: str = typer.Option("7d", help="The window: 30m, 24h, 7d..."),
    host: str | None = typer.Option(None, help="Only this gateway host."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Requests, errors, latency and turns per gateway host, from the metrics snapshots
    (increases per interval, so restarts do not double-count)."""
    window = parse_since(since)

    async def query(conn: AsyncConnection) -> list[dict[str, Any]]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(TOTALS, {"window": window, "host": host})
            return await cur.fetchall()

    rows = run_db(ctx, query)
    if as_json:
        print_json(rows)
    elif not rows:
        print(f"no metrics snapshots in the last {since}" + (f" for {host}" if host else ""))
    else:
        print_table(
            None,
            [
                "host",
                "requests",
                "completed",
                "errors",
                "error %",
                "avg ms",
                "turns",
                "tools",
                "rate-limited",
                "busy",
                "processes",
            ],
            [
                (
                    r["host"],
                    r["requests"],
                    r["completed"],
                    r["errors"],
                    r["error_pct"],
                    r["avg_latency_ms"],
                    r["turns"],
                    r["tool_calls"],
                    r["rate_limited"],
                    r["busy_rejected"],
                    r["restarts_seen"],
                )
                for r in rows
            ],
        )
