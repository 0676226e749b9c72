"""`openclaw metrics`: the plan's Phase 5 questions, answered across restarts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import typer
from psycopg import AsyncConnection

from openclaw.cli.common import JSON_OPTION, print_json, print_table, run_db
from openclaw.durations import parse_duration
from openclaw.jsonable import to_jsonable
from openclaw.mcp.curated import request_volume


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    """The MCP tool's answer in this command's columns."""
    requests = row["requests"]  # errors count on every channel, the webhook's too
    error_pct = round(Decimal(100 * row["errors"]) / requests, 2) if requests else None
    return {
        "host": row["host"],
        "requests": row["requests"],
        "completed": row["completed"],
        "errors": row["errors"],
        "error_pct": to_jsonable(error_pct),
        "avg_latency_ms": row["avg_latency_ms"],
        "turns": row["turns"],
        "tool_calls": row["tool_calls"],
        "rate_limited": row["rate_limited"],
        "busy_rejected": row["busy_rejected"],
        "restarts_seen": row["processes"],
        "last_snapshot": row["last_snapshot"],
    }


def metrics_command(
    ctx: typer.Context,
    since: str = typer.Option("7d", help="The window: 30m, 24h, 7d..."),
    host: str | None = typer.Option(None, help="Only this gateway host."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Requests, errors, latency and turns per gateway host, from the metrics snapshots
    (increases per interval, so restarts do not double-count); the MCP tool
    request_volume gives the same answer."""
    parse_duration(since)  # a bad value is a usage error before any database work

    async def query(conn: AsyncConnection) -> list[dict[str, Any]]:
        # Sums of per-interval increases (hourly rollups and the snapshots at both ends),
        # never of the cumulative counters.
        return [_totals(row) for row in await request_volume(conn, since, host)]

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
