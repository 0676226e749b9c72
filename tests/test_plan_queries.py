"""The plan's example queries (Phases 4, 5 and 7), run verbatim on data written by our
own CLI and writers, give the right answers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from openclaw.gateway.metrics import Counters, MetricsSnapshot, write_metrics_snapshots
from openclaw.llm.records import LlmCall, write_llm_calls
from tests.conftest import Cli


def rows(db_url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query.encode()).fetchall()


def test_phase7_context_queries(cli: Cli, db_url: str, isolated_environment: Path) -> None:
    cli("deploy", "log", "--host", "nixos", "--version", "1.15.0")
    cli("deploy", "log", "--host", "nixos", "--version", "1.16.0")
    cli("deploy", "log", "--host", "g731", "--version", "1.16.0")
    (isolated_environment / "openclaw-manual.json").write_text(json.dumps({"models": {}, "agents": {}}))
    cli("config", "snapshot")
    (isolated_environment / "openclaw-manual.json").write_text(json.dumps({"models": {"x": 1}, "agents": {}}))
    cli("config", "snapshot", "--source", "watchdog")
    for title, severity in [
        ("medium one", "medium"),
        ("critical one", "critical"),
        ("low one", "low"),
        ("high one", "high"),
    ]:
        cli("issues", "add", title, "--severity", severity, "--component", "gateway")
    for i in range(12):
        cli("task", "log", f"task {i}", "--category", "feature", "--version", "v1.16.0")
    cli("context", "set", "current_focus", '{"task": "postgres migration", "phase": 3}')

    # "What's deployed where?"
    deployed = rows(
        db_url,
        """
        SELECT host, component, version, status, deployed_at
        FROM deployments WHERE status = 'active'
        ORDER BY deployed_at DESC;""",
    )
    assert [(r[0], r[2]) for r in deployed] == [("g731", "1.16.0"), ("nixos", "1.16.0")]

    # "What changed in the last config update?"
    last = rows(
        db_url,
        """
        SELECT changed_keys, change_source, snapshot_at
        FROM config_snapshots ORDER BY snapshot_at DESC LIMIT 1;""",
    )
    assert last[0][:2] == (["models"], "watchdog")

    # "Any open issues I should know about?" — critical first, as the plan meant.
    issues = rows(
        db_url,
        """
        SELECT title, severity, component, workaround
        FROM known_issues WHERE status = 'open' ORDER BY severity DESC;""",
    )
    assert [r[1] for r in issues] == ["critical", "high", "medium", "low"]

    # "What was done in the last session?"
    tasks = rows(
        db_url,
        """
        SELECT description, category, version, completed_at
        FROM task_log ORDER BY completed_at DESC LIMIT 10;""",
    )
    assert [r[0] for r in tasks] == [f"task {i}" for i in range(11, 1, -1)]

    # "Show me the current project focus"
    focus = rows(db_url, "SELECT value FROM project_context WHERE key = 'current_focus';")
    assert focus == [({"task": "postgres migration", "phase": 3},)]


async def test_phase4_and_phase7_llm_queries(conn: psycopg.AsyncConnection, db_url: str) -> None:
    now = datetime.now(UTC)
    calls = [
        LlmCall(model="kimi-k2", latency_ms=100 * i, created_at=now - timedelta(minutes=i))
        for i in range(1, 5)
    ]
    calls.append(LlmCall(model="kimi-k2", latency_ms=50, error="HTTP 502: bad gateway", created_at=now))
    calls.append(
        LlmCall(model="gpt-4o", latency_ms=900, error="timeout", created_at=now - timedelta(hours=2))
    )
    calls.append(LlmCall(model="old", latency_ms=1, created_at=now - timedelta(days=3)))  # outside the window
    await write_llm_calls(conn, calls)

    # "What models were used today and how did they perform?"
    today = rows(
        db_url,
        """
        SELECT model, count(*), avg(latency_ms), count(*) FILTER (WHERE error IS NOT NULL) as errors
        FROM llm_calls WHERE created_at > now() - interval '1 day'
        GROUP BY model ORDER BY count(*) DESC;""",
    )
    assert [(r[0], r[1], float(r[2]), r[3]) for r in today] == [
        ("kimi-k2", 5, 210.0, 1),
        ("gpt-4o", 1, 900.0, 1),
    ]

    # "Show me the last 5 errors"
    errors = rows(
        db_url,
        """
        SELECT model, error, latency_ms, created_at
        FROM llm_calls WHERE error IS NOT NULL
        ORDER BY created_at DESC LIMIT 5;""",
    )
    assert [r[1] for r in errors] == ["HTTP 502: bad gateway", "timeout"]

    # "How is the bot performing?"
    perf = rows(
        db_url,
        """
        SELECT model, count(*) as calls, avg(latency_ms)::int as avg_ms,
               count(*) FILTER (WHERE error IS NOT NULL) as errors
        FROM llm_calls WHERE created_at > now() - interval '24 hours'
        GROUP BY model;""",
    )
    assert sorted(perf) == [("gpt-4o", 1, 900, 1), ("kimi-k2", 5, 210, 1)]


async def test_phase5_metrics_queries_through_the_interval_view(
    conn: psycopg.AsyncConnection, db_url: str
) -> None:
    start = datetime.now(UTC) - timedelta(hours=3)
    boots = [uuid.uuid4(), uuid.uuid4()]
    snaps = []
    # Two processes one after the other, a snapshot a minute, 10 requests and 1 error a minute.
    for b, boot in enumerate(boots):
        for minute in range(1, 61):
            snaps.append(
                MetricsSnapshot(
                    "nixos",
                    boot,
                    snapshot_at=start + timedelta(minutes=60 * b + minute),
                    uptime_seconds=60 * minute,
                    counters=Counters(completed_requests=10 * minute, telegram_errors=minute),
                )
            )
    await write_metrics_snapshots(conn, snaps)

    # "How many requests did the bot handle this week?" — the plan's query over the view.
    week = rows(
        db_url,
        """
        SELECT host, sum(completed_requests) FROM metrics_intervals
        WHERE snapshot_at > now() - interval '7 days' GROUP BY host;""",
    )
    assert week == [("nixos", 1200)]
    naive = rows(db_url, "SELECT sum(completed_requests) FROM metrics_snapshots")
    assert naive == [(2 * sum(10 * m for m in range(1, 61)),)]  # 36600: what summing counters says

    # "Error rate trend over last 24h", as a rate of increases.
    trend = rows(
        db_url,
        """
        SELECT date_trunc('hour', snapshot_at) as hour,
               sum(telegram_errors + discord_errors)::numeric / nullif(sum(completed_requests), 0) * 100
                   as error_pct
        FROM metrics_intervals WHERE snapshot_at > now() - interval '1 day'
        GROUP BY hour ORDER BY hour;""",
    )
    assert trend and all(round(float(r[1]), 6) == 10.0 for r in trend)


def test_metrics_command_sums_increases_across_restarts(cli: Cli, db_url: str) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    rows = []
    for boot in (uuid.uuid4(), uuid.uuid4()):  # a restart in between: counters start again from 0
        for minute in range(1, 31):
            rows.append(
                (
                    boot,
                    start + timedelta(minutes=minute + (30 if rows else 0)),
                    60 * minute,
                    10 * minute,
                    minute,
                )
            )
    with psycopg.connect(db_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO metrics_snapshots (host, boot_id, snapshot_at, uptime_seconds, completed_requests,"
            " telegram_requests) VALUES ('nixos', %s, %s, %s, %s, %s)",
            rows,
        )
    result = json.loads(cli("metrics", "--since", "7d", "--json").stdout)
    assert [(r["host"], r["completed"], r["requests"], r["restarts_seen"]) for r in result] == [
        ("nixos", 600, 60, 2)
    ]
    assert "nixos" in cli("metrics").stdout
    assert cli("metrics", "--since", "1m").stdout.startswith("no metrics snapshots")
    assert cli("metrics", "--since", "soon").exit_code == 2


async def test_metrics_intervals_since_matches_the_view_for_any_window(
    conn: psycopg.AsyncConnection, db_url: str
) -> None:
    start = datetime.now(UTC) - timedelta(hours=5)
    snaps = []
    for host in ("nixos", "g731"):
        for b, boot in enumerate((uuid.uuid4(), uuid.uuid4(), uuid.uuid4())):
            for minute in range(1, 41):
                snaps.append(
                    MetricsSnapshot(
                        host,
                        boot,
                        snapshot_at=start + timedelta(minutes=45 * b + minute),
                        uptime_seconds=60 * minute,
                        counters=Counters(telegram_requests=minute * minute, completed_requests=3 * minute),
                    )
                )
    await write_metrics_snapshots(conn, snaps)
    with psycopg.connect(db_url) as sync:
        # and snapshots from the plan's own schema, which had no boot id (restarts show as
        # uptime going down)
        sync.cursor().executemany(
            "INSERT INTO metrics_snapshots (host, snapshot_at, uptime_seconds, telegram_requests)"
            " VALUES ('legacy', %s, %s, %s)",
            [(start + timedelta(minutes=m), 60 * (m % 50 + 1), 7 * (m % 50 + 1)) for m in range(1, 121)],
        )
        for offset in (0, 1, 30, 44, 46, 90, 100, 200):  # inside a process, between two, after all
            since = start + timedelta(minutes=offset)
            view = sync.execute(
                "SELECT host, sum(telegram_requests), sum(completed_requests), count(*)"
                " FROM metrics_intervals WHERE snapshot_at >= %s GROUP BY host ORDER BY host",
                (since,),
            ).fetchall()
            function = sync.execute(
                "SELECT host, sum(telegram_requests), sum(completed_requests), count(*)"
                " FROM reader.metrics_intervals_since(%s) GROUP BY host ORDER BY host",
                (since,),
            ).fetchall()
            assert function == view, offset
            one_host = sync.execute(
                "SELECT host, sum(telegram_requests), sum(completed_requests), count(*)"
                " FROM reader.metrics_intervals_since(%s, 'g731') GROUP BY host",
                (since,),
            ).fetchall()
            assert one_host == [r for r in view if r[0] == "g731"], offset
