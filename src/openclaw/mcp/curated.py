"""The answers to the plan's questions, as functions of a reader connection.

Each runs as `openclaw_reader`, whose search_path is the schema `reader`: the context
package's own list functions (the CLI's) resolve their table names to the reader's
views, so the assistant and the CLI give the same answers. Results are JSON-ready, and
every value Postgres can hold loads (openclaw.mcp.values.register_loaders). Long texts
are cut by the server where the SQL is ours; the tools cap the rest, and each answer as a
whole (openclaw.mcp.values.capped_answer).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from openclaw.context.config_snapshots import config_history, previous_snapshot
from openclaw.context.deployments import list_deployments
from openclaw.context.diff import describe_change, diff
from openclaw.context.issues import list_issues
from openclaw.context.kv import get_value, list_values
from openclaw.context.models import ContextEntry
from openclaw.context.tasks import list_tasks
from openclaw.durations import DurationTooLong, parse_duration
from openclaw.errors import UsageError
from openclaw.jsonable import to_jsonable
from openclaw.mcp.values import MAX_VALUE_CHARS, cut_sql, register_loaders

MAX_TEXT = 2_000  # a message longer than this is cut in listings (with cut_text's marker)


def _limit(value: int, upper: int, what: str = "limit") -> int:
    if not 1 <= value <= upper:
        raise UsageError(f"{what} must be between 1 and {upper}, not {value}")
    return value


def _since(text: str) -> datetime:
    """`7d`-style durations or an ISO date/time (UTC unless it says otherwise)."""
    try:
        return datetime.now(UTC) - parse_duration(text, "since")
    except DurationTooLong:
        raise
    except UsageError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(f"since {text!r}: give a duration (30m, 24h, 7d) or an ISO date") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        try:
            _hour(moment) + timedelta(hours=1)  # what request_volume computes from it
        except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
            raise UsageError(f"since {text!r}: a date between the years 1 and 9999, in UTC") from None
        return moment


async def _rows(conn: AsyncConnection, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        register_loaders(cur)
        await cur.execute(query, params)
        return [to_jsonable(row) for row in await cur.fetchall()]


async def deployments(
    conn: AsyncConnection, host: str | None = None, history: bool = False
) -> list[dict[str, Any]]:
    register_loaders(conn)  # for the context package's cursors (the CLI's functions)
    rows = await list_deployments(conn, current_only=not history, host=host, limit=50 if history else None)
    keep = (
        "host",
        "component",
        "version",
        "git_commit",
        "service_name",
        "pid",
        "deployed_at",
        "status",
        "notes",
    )
    return [{k: v for k, v in to_jsonable(d).items() if k in keep} for d in rows]


async def config_changes(
    conn: AsyncConnection, limit: int = 1, config_path: str | None = None, host: str | None = None
) -> list[dict[str, Any]]:
    register_loaders(conn)
    snapshots = await config_history(conn, path=config_path, host=host, limit=_limit(limit, 50))
    out = []
    for snapshot in snapshots:
        before = await previous_snapshot(conn, snapshot)
        changes = diff(before.config_json, snapshot.config_json) if before else []
        out.append(
            {
                "id": snapshot.id,
                "host": snapshot.host,
                "config_path": snapshot.config_path,
                "snapshot_at": to_jsonable(snapshot.snapshot_at),
                "change_source": snapshot.change_source,
                "changed_keys": snapshot.changed_keys or [],
                "diff": [describe_change(c) for c in changes] if before else "first snapshot of this file",
            }
        )
    return out


async def open_issues(conn: AsyncConnection, component: str | None = None) -> list[dict[str, Any]]:
    register_loaders(conn)
    issues = await list_issues(conn)
    keep = ("id", "title", "severity", "component", "description", "workaround", "created_at")
    return [
        {k: v for k, v in to_jsonable(i).items() if k in keep}
        for i in issues
        if component is None or i.component == component
    ]


async def recent_tasks(
    conn: AsyncConnection, limit: int = 10, category: str | None = None
) -> list[dict[str, Any]]:
    register_loaders(conn)
    return [to_jsonable(t) for t in await list_tasks(conn, limit=_limit(limit, 200), category=category)]


def _hour(moment: datetime) -> datetime:
    """The start of the UTC hour: the rollups' hours (migration 0004)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def llm_performance(conn: AsyncConnection, hours: int = 24) -> list[dict[str, Any]]:
    """From the hourly rollups: whole UTC hours, the current one included; p95 is the top of
    the histogram bucket it falls in (at most 10% above the exact value)."""
    since = _hour(datetime.now(UTC) - timedelta(hours=_limit(hours, 24 * 366, "hours")))
    # The histogram: whole UTC days from the daily table, the hours around them hourly.
    first_day = since.replace(hour=0) + timedelta(days=1) if since.hour else since
    today = _hour(datetime.now(UTC)).replace(hour=0)
    return await _rows(
        conn,
        """WITH totals AS (
               SELECT model, provider, sum(calls) AS calls, sum(errors) AS errors,
                      sum(latency_ms_sum) AS latency, sum(first_token_ms_sum) AS first_token,
                      sum(first_token_calls) AS first_token_calls, sum(total_tokens) AS tokens
                 FROM reader.llm_calls_hourly WHERE hour >= %(since)s GROUP BY model, provider
           ), buckets AS (
               SELECT model, provider, bucket, calls FROM reader.llm_latency_daily
                WHERE day >= %(first_day)s AND day < %(today)s
                UNION ALL
               SELECT model, provider, bucket, calls FROM reader.llm_latency_hourly
                WHERE hour >= %(since)s AND (hour < %(first_day)s OR hour >= %(tail)s)
           ), cumulative AS (
               SELECT model, provider, bucket,
                      sum(sum(calls)) OVER (PARTITION BY model, provider ORDER BY bucket) AS calls
                 FROM buckets GROUP BY model, provider, bucket
           )
           SELECT t.model, nullif(t.provider, '') AS provider, t.calls, t.errors,
                  round(t.latency / t.calls) AS avg_latency_ms,
                  (SELECT round(CASE WHEN min(c.bucket) = 0 THEN 1 ELSE power(1.1, min(c.bucket)) END)
                     FROM cumulative AS c
                    WHERE (c.model, c.provider) = (t.model, t.provider) AND c.calls >= 0.95 * t.calls
                  ) AS p95_latency_ms,
                  round(t.first_token / nullif(t.first_token_calls, 0)) AS avg_first_token_ms,
                  t.tokens AS total_tokens
             FROM totals AS t ORDER BY t.calls DESC, t.model""",
        {"since": since, "first_day": first_day, "today": today, "tail": max(today, first_day)},
    )


async def llm_errors(conn: AsyncConnection, limit: int = 5) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        f"""SELECT created_at, model, provider, provider_attempt, http_status, {cut_sql("error")} AS error,
                  latency_ms, session_key
             FROM reader.llm_calls WHERE error IS NOT NULL
            ORDER BY created_at DESC LIMIT %(limit)s""",
        {"limit": _limit(limit, 200)},
    )


_COUNTERS = (
    "telegram_requests",
    "discord_requests",
    "webhook_requests",
    "telegram_errors",
    "discord_errors",
    "completed_requests",
    "total_latency_ms",
    "agent_turns",
    "tool_calls",
    "rate_limited",
    "concurrency_rejected",
    "agent_timeouts",
    "webhook_errors",  # from reader.metrics_webhook_errors_since in the interval parts (0006)
)
_SUMS = ", ".join(_COUNTERS)


async def request_volume(
    conn: AsyncConnection, since: str = "7d", host: str | None = None
) -> list[dict[str, Any]]:
    """Exact, and fast for long windows: whole UTC hours come from the hourly rollup, the
    partial hours at both ends from the snapshots themselves."""
    start = _since(since)
    this_hour = _hour(datetime.now(UTC))
    head_end = min(_hour(start) + timedelta(hours=1), this_hour)
    tail_start = max(this_hour, start)
    return await _rows(
        conn,
        f"""WITH parts AS (
                SELECT host, {_SUMS}, ARRAY[boot_id] AS boot_ids, snapshot_at AS last_snapshot
                  FROM reader.metrics_intervals_since(%(start)s, %(host)s, %(head_end)s) AS i
                  LEFT JOIN reader.metrics_webhook_errors_since(%(start)s, %(host)s, %(head_end)s) AS e
                    ON e.id = i.id
                 UNION ALL
                SELECT host, {_SUMS}, boot_ids, last_snapshot FROM reader.metrics_hourly
                 WHERE hour >= %(head_end)s AND hour < %(tail_start)s
                   AND (%(host)s::text IS NULL OR host = %(host)s)
                 UNION ALL
                SELECT host, {_SUMS}, ARRAY[boot_id], snapshot_at
                  FROM reader.metrics_intervals_since(%(tail_start)s, %(host)s) AS i
                  LEFT JOIN reader.metrics_webhook_errors_since(%(tail_start)s, %(host)s) AS e ON e.id = i.id
            )
            SELECT host,
                   sum(telegram_requests + discord_requests + webhook_requests) AS requests,
                   sum(telegram_requests) AS telegram, sum(discord_requests) AS discord,
                   sum(webhook_requests) AS webhook, sum(completed_requests) AS completed,
                   sum(telegram_errors + discord_errors + coalesce(webhook_errors, 0)) AS errors,
                   round(sum(total_latency_ms) / nullif(sum(completed_requests), 0)) AS avg_latency_ms,
                   sum(agent_turns) AS turns, sum(tool_calls) AS tool_calls,
                   sum(rate_limited) AS rate_limited, sum(concurrency_rejected) AS busy_rejected,
                   sum(agent_timeouts) AS timeouts,
                   (SELECT count(DISTINCT b) FROM parts AS q, unnest(q.boot_ids) AS b WHERE q.host = p.host)
                       AS processes,
                   max(last_snapshot) AS last_snapshot
              FROM parts AS p GROUP BY host ORDER BY host""",
        {"start": start, "host": host, "head_end": max(head_end, start), "tail_start": tail_start},
    )


def _cut_json(column: str) -> str:
    """A JSON column as it is, or, when its text is longer than a value may be, that text
    cut (a JSON string): a huge document is never sent whole."""
    cut = cut_sql(f"{column}::text")
    return f"CASE WHEN length({column}::text) > {MAX_VALUE_CHARS} THEN to_jsonb({cut}) ELSE {column} END"


async def session_history(conn: AsyncConnection, session_key: str, limit: int = 20) -> list[dict[str, Any]]:
    # The session's id first: a join would hide the (session_id, id) order from the planner,
    # which then reads every message of a long session to keep the last few.
    rows = await _rows(
        conn,
        f"""SELECT * FROM (
               SELECT m.id, m.role, {cut_sql("m.content", MAX_TEXT)} AS content, m.tool_call_id,
                      {_cut_json("m.tool_calls_json")} AS tool_calls_json, m.created_at
                 FROM reader.messages AS m
                WHERE m.session_id = (SELECT id FROM reader.sessions WHERE session_key = %(key)s)
                ORDER BY m.id DESC LIMIT %(limit)s) AS last
            ORDER BY id""",
        {"key": session_key, "limit": _limit(limit, 500)},
    )
    if not rows:
        found = await _rows(
            conn, "SELECT 1 FROM reader.sessions WHERE session_key = %(key)s", {"key": session_key}
        )
        if not found:
            raise UsageError(f"no session {session_key!r} (search_sessions finds sessions by text)")
    return rows


# Searched newest first, then the rest through the word index. bench/search_window.py on
# 5M messages: 25k halves the worst p95 of 50k (a word in 40 messages scans the whole
# window: 25 ms, not 48), while at 10k a word in 0.14% of messages already takes the slow
# second step (26 ms; 112 ms at 5k).
RECENT_MESSAGES = 25_000

_SEARCH = f"""
SELECT s.session_key, m.role, {cut_sql("m.content", MAX_TEXT)} AS content, m.created_at
  FROM reader.message_words AS w
  JOIN reader.messages AS m ON m.id = w.id
  JOIN reader.sessions AS s ON s.id = w.session_id
 WHERE w.words @@ plainto_tsquery('simple', %(text)s) AND {{window}}
 ORDER BY {{order}} DESC LIMIT %(limit)s"""


async def search_sessions(conn: AsyncConnection, text: str, limit: int = 10) -> list[dict[str, Any]]:
    """Full-text match (simple configuration: no stemming, any language) of every word,
    newest first. Which plan is fast depends on how common the words are, which the
    planner guesses from statistics, and a rare word missing from them once cost 32 s. So
    no guessing: the newest messages are read newest first (a common word is found at
    once), and only if they hold too few matches are the older ones looked up through the
    word index alone (a rare word costs its few matches)."""
    if not text.strip():
        raise UsageError("give some words to search for")
    params: dict[str, Any] = {"text": text, "limit": _limit(limit, 100)}
    row = await (await conn.execute("SELECT max(id) FROM reader.message_words")).fetchone()
    params["recent"] = (row[0] if row and row[0] else 0) - RECENT_MESSAGES
    found = await _rows(conn, _SEARCH.format(window="w.id > %(recent)s", order="w.id"), params)
    if len(found) < params["limit"]:
        await conn.execute("SET LOCAL enable_indexscan = off")  # the word index, as a bitmap
        await conn.execute("SET LOCAL enable_seqscan = off")
        params["limit"] -= len(found)
        found += await _rows(conn, _SEARCH.format(window="w.id <= %(recent)s", order="w.id + 0"), params)
    return found


def _entry(entry: ContextEntry) -> dict[str, Any]:
    """The value as loaded (JSON types already): to_jsonable would recurse as deep as it is
    nested, which the tools' capper (openclaw.mcp.values) does one level at a time."""
    return {"key": entry.key, "value": entry.value, "updated_at": to_jsonable(entry.updated_at)}


async def context_get(conn: AsyncConnection, key: str) -> dict[str, Any]:
    register_loaders(conn)
    return _entry(await get_value(conn, key))


async def context_list(conn: AsyncConnection) -> list[dict[str, Any]]:
    register_loaders(conn)
    return [_entry(e) for e in await list_values(conn)]


async def cron_history(
    conn: AsyncConnection, job: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        f"""SELECT job_name, status, started_at, duration_ms, tokens_used, model, host,
                  {cut_sql("error")} AS error
             FROM reader.cron_executions
            WHERE %(job)s::text IS NULL OR job_name = %(job)s
            ORDER BY started_at DESC LIMIT %(limit)s""",
        {"job": job, "limit": _limit(limit, 500)},
    )


async def describe_schema(conn: AsyncConnection, name: str | None = None) -> list[dict[str, Any]]:
    """The reader's views (or one of them) with their columns and comments."""
    return await _rows(
        conn,
        """SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS description,
                  json_agg(json_build_object(
                      'column', a.attname,
                      'type', format_type(a.atttypid, a.atttypmod),
                      'description', col_description(c.oid, a.attnum)) ORDER BY a.attnum) AS columns
             FROM pg_class AS c
             JOIN pg_namespace AS n ON n.oid = c.relnamespace
             JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = 'reader' AND c.relkind IN ('v', 'r', 'm')
              AND (%(name)s::text IS NULL OR c.relname = %(name)s)
            GROUP BY c.oid, c.relname ORDER BY c.relname""",
        {"name": name},
    )
