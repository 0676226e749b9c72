"""Our SQL guard (the parser wall of `query(sql)`) next to its peer: Postgres MCP Pro.

    python bench/guard_peer.py [--repeat 200] [--peer-python /tmp/peer-venv/bin/python]
                               [--database-url URL] [--no-execute]

The peer is Postgres MCP Pro (PyPI `postgres-mcp`, by crystaldba), whose "restricted"
mode wraps its driver in `postgres_mcp.sql.safe_sql.SafeSqlDriver`: before running a
statement, `SafeSqlDriver.execute_query` calls `SafeSqlDriver._validate(sql)`, which
parses with pglast and walks the tree against an allow-list of statement types, node
types and function names (raising ValueError). Ours is `openclaw.mcp.guard.check_query`
with the FunctionPolicy that `openclaw.mcp.query.function_policy` reads from the catalog
of a migrated openclaw database (raising QueryRefused).

Both validators get the same SQL texts:

- the attack list of tests/test_mcp.py (ATTACKS), which must be refused; four of them
  are refused on our side by later walls, not by the parser (the reader role, the
  statement timeout, temp_file_limit), and the table says so;
- valid analyst queries, which must be accepted: the Phase 7 queries of tests/test_mcp.py
  (PHASE7) plus what analysts write on the reader views: WITHIN GROUP, window frames,
  FILTER, nested CTEs, JSONB operators, date_trunc, LATERAL, DISTINCT ON, EXPLAIN...
  Each of them is first run once on the bench database (search_path = reader, READ ONLY)
  so that the list holds valid SQL only.

Printed: (1) correctness, per SQL, accepted or refused by each validator, marking an
attack accepted or a valid query refused; (2) validation time, per SQL the p50 of
--repeat timed calls in each validator's own process, and ours/peer. The calls come in
rounds (every SQL text validated once, then parsed once by pglast.parse_sql alone, to
show the parser's share), two warm-up rounds first, and the rounds alternate between the
two processes, so that both see the same machine while other processes come and go.
A validator accepting an attack is what that validator alone says: the server behind it
may have other walls. Unless
--no-execute, the attacks that the peer's validator accepts are then run through the
peer's own driver (restricted mode, as its server builds it: a READ ONLY transaction and a
30 s timeout) on the bench database, logged in as the --database-url role, to see what
actually happens; the two meant to burn CPU or disk are not run, and the one that
terminates backends is limited to a victim connection of the bench database.

The peer runs in its own interpreter (it needs Python >= 3.12 and mcp < 2, which this
project's venv must not get): a helper kept in this file as a string runs there with
`-c`, reads the SQL texts as JSON on stdin, answers with its verdicts, then with the
timings of one round per request, as JSON lines on stdout. Make it with

    python3.12 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install postgres-mcp "mcp[cli]<2"

(postgres-mcp 0.3.0 pins pglast==7.2.0; where an index lacks that version, install
postgres-mcp with --no-deps and then its requirements with "pglast>=7,<8"; the script
prints the versions it ran with). Ours runs in this process, on the project's pglast.

The script creates a database openclaw_bench_guard_<random> on the server of
--database-url, migrates it, and drops it at the end. Timings never go in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
from pglast import parse_sql
from pglast.parser import ParseError
from psycopg import AsyncConnection, sql
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.test_mcp: ATTACKS, PHASE7

from tests.test_mcp import ATTACKS, PHASE7, TABLES

from openclaw.db import migrate
from openclaw.mcp.guard import FunctionPolicy, QueryRefused, check_query
from openclaw.mcp.query import function_policy

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PEER_PYTHON = "/tmp/peer-venv/bin/python"
PEER_SETUP = 'python3.12 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install postgres-mcp "mcp[cli]<2"'
WARMUP_ROUNDS = 2
PEER_TIMEOUT_S = 30  # what the peer's server gives SafeSqlDriver in restricted mode
# Our expected refusals that come from a wall after the parser (tests/test_mcp.py).
LATER_WALLS = {
    "permission denied": "the reader role",
    "longer than": "the statement timeout",
    "temp_file_limit": "temp_file_limit",
}
RESOURCE_WALLS = {"the statement timeout", "temp_file_limit"}  # attacks not run on the peer

# What analysts write on the reader views, beyond the Phase 7 queries.
ANALYST_QUERIES = [
    # WITHIN GROUP
    """SELECT model,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms,
              percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms
         FROM llm_calls
        WHERE created_at > now() - interval '7 days' AND error IS NULL
        GROUP BY model ORDER BY p95_ms DESC""",
    "SELECT provider, mode() WITHIN GROUP (ORDER BY model) AS usual_model, count(*)"
    " FROM llm_calls GROUP BY provider",
    """SELECT job_name, count(*) FILTER (WHERE status = 'error') AS failures, max(started_at) AS last_run,
              avg(duration_ms)::int AS avg_ms,
              percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_ms) AS p90_ms
         FROM cron_executions GROUP BY job_name HAVING count(*) > 0 ORDER BY failures DESC""",
    # window frames, named windows, lag, row_number
    """SELECT date_trunc('hour', created_at) AS hour, count(*) AS calls,
              avg(count(*)) OVER (ORDER BY date_trunc('hour', created_at)
                                  ROWS BETWEEN 23 PRECEDING AND CURRENT ROW) AS moving_avg_24h
         FROM llm_calls GROUP BY 1 ORDER BY 1""",
    """SELECT host, snapshot_at, process_rss_bytes,
              max(process_rss_bytes) OVER (PARTITION BY host ORDER BY snapshot_at
                                           RANGE BETWEEN interval '1 hour' PRECEDING AND CURRENT ROW)
         FROM metrics_snapshots ORDER BY host, snapshot_at""",
    """SELECT session_key, created_at, usage_total_tokens,
              sum(usage_total_tokens) OVER w AS running_tokens, rank() OVER w AS nth_call
         FROM llm_calls WHERE session_key LIKE 'tg:%'
       WINDOW w AS (PARTITION BY session_key ORDER BY created_at)""",
    """SELECT host, component, version, deployed_at,
              deployed_at - lag(deployed_at) OVER (PARTITION BY host, component ORDER BY deployed_at)
                AS since_previous
         FROM deployments ORDER BY host, component, deployed_at""",
    """SELECT * FROM (
           SELECT model, session_key, latency_ms,
                  row_number() OVER (PARTITION BY model ORDER BY latency_ms DESC) AS rn
             FROM llm_calls WHERE created_at > now() - interval '1 day') AS ranked
        WHERE rn <= 3""",
    # FILTER
    """SELECT provider, count(*) AS calls, count(*) FILTER (WHERE error IS NOT NULL) AS errors,
              round(100.0 * count(*) FILTER (WHERE http_status = 429) / nullif(count(*), 0), 2)
                AS pct_rate_limited,
              avg(latency_ms) FILTER (WHERE streaming) AS avg_streaming_ms
         FROM llm_calls WHERE created_at >= date_trunc('day', now()) GROUP BY provider""",
    # nested and recursive CTEs
    """WITH calls AS (
           SELECT session_key, model, latency_ms, error IS NOT NULL AS failed
             FROM llm_calls WHERE created_at > now() - interval '1 day'),
       per_session AS (
           WITH keyed AS (SELECT * FROM calls WHERE session_key IS NOT NULL)
           SELECT session_key, count(*) AS n, bool_or(failed) AS any_failed FROM keyed GROUP BY session_key)
       SELECT s.channel, count(*) AS sessions, sum(p.n) AS calls,
              count(*) FILTER (WHERE p.any_failed) AS with_errors
         FROM per_session AS p JOIN sessions AS s USING (session_key)
        GROUP BY s.channel ORDER BY calls DESC""",
    """WITH RECURSIVE chain AS (
           SELECT id, host, component, version, deployed_at, 1 AS depth
             FROM deployments WHERE status = 'active'
           UNION ALL
           SELECT d.id, d.host, d.component, d.version, d.deployed_at, c.depth + 1
             FROM deployments AS d JOIN chain AS c ON d.superseded_by = c.id
            WHERE c.depth < 20)
       SELECT * FROM chain ORDER BY host, component, depth""",
    # JSONB
    """SELECT m.id, m.created_at, call->>'name' AS tool, call->>'id' AS call_id
         FROM messages AS m, jsonb_array_elements(m.tool_calls_json) AS call
        WHERE m.role = 'assistant' AND m.tool_calls_json @> '[{"name": "exec"}]'
        ORDER BY m.id DESC LIMIT 20""",
    """SELECT host, snapshot_at, config_json->'agents'->>'default' AS default_agent,
              config_json #>> '{models,primary}' AS primary_model, config_json ? 'channels' AS has_channels
         FROM config_snapshots ORDER BY snapshot_at DESC LIMIT 5""",
    "SELECT pc.key, kv.key AS field, kv.value FROM project_context AS pc, jsonb_each_text(pc.value) AS kv"
    " WHERE jsonb_typeof(pc.value) = 'object'",
    "SELECT (jsonb_each(value)).key, jsonb_path_query_first(value, '$.phase') FROM project_context",
    # date_trunc, generate_series, date_bin, extract, AT TIME ZONE, age
    """SELECT h.hour, count(c.id) AS calls
         FROM generate_series(date_trunc('hour', now()) - interval '23 hours', date_trunc('hour', now()),
                              interval '1 hour') AS h (hour)
         LEFT JOIN llm_calls AS c ON c.created_at >= h.hour AND c.created_at < h.hour + interval '1 hour'
        GROUP BY h.hour ORDER BY h.hour""",
    """SELECT date_bin('15 minutes', snapshot_at, timestamptz '2000-01-01') AS bucket, host,
              sum(completed_requests) AS requests
         FROM metrics_intervals WHERE snapshot_at > now() - interval '6 hours'
        GROUP BY 1, 2 ORDER BY 1, 2""",
    "SELECT extract(isodow FROM created_at) AS dow, to_char(created_at, 'HH24') AS hour, count(*)"
    " FROM messages WHERE role = 'user' GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT (created_at AT TIME ZONE 'Europe/Berlin')::date AS day, count(*) FROM messages"
    " GROUP BY 1 ORDER BY 1 DESC LIMIT 14",
    "SELECT channel, avg(extract(epoch FROM updated_at - created_at)) / 60 AS avg_minutes"
    " FROM sessions GROUP BY channel",
    "SELECT title, severity, component, age(now(), created_at) AS open_for FROM known_issues"
    " WHERE status = 'open' AND severity >= 'high' ORDER BY severity DESC, created_at",
    # LATERAL
    """SELECT s.session_key, last.role, left(last.content, 80) AS preview, last.created_at
         FROM sessions AS s
        CROSS JOIN LATERAL (SELECT role, content, created_at FROM messages AS m
                             WHERE m.session_id = s.id ORDER BY m.id DESC LIMIT 1) AS last
        ORDER BY s.updated_at DESC LIMIT 20""",
    """SELECT d.host, d.version, d.deployed_at, e.errors_after
         FROM deployments AS d
         LEFT JOIN LATERAL (
              SELECT count(*) AS errors_after FROM llm_calls AS c
               WHERE c.host = d.host AND c.error IS NOT NULL
                 AND c.created_at BETWEEN d.deployed_at AND d.deployed_at + interval '1 hour') AS e ON true
        WHERE d.component = 'gateway' ORDER BY d.deployed_at DESC""",
    # DISTINCT ON
    "SELECT DISTINCT ON (host) host, version, boot_id, snapshot_at, uptime_seconds FROM metrics_snapshots"
    " ORDER BY host, snapshot_at DESC",
    "SELECT DISTINCT ON (model) model, error, http_status, created_at FROM llm_calls"
    " WHERE error IS NOT NULL ORDER BY model, created_at DESC",
    # EXPLAIN
    "EXPLAIN SELECT * FROM llm_calls WHERE model = 'kimi-k2' AND created_at > now() - interval '1 day'",
    "EXPLAIN (FORMAT JSON, COSTS OFF) SELECT m.* FROM messages AS m JOIN message_words AS w ON w.id = m.id"
    " WHERE w.words @@ plainto_tsquery('simple', 'deploy failed')",
    # full-text search, arrays, aggregates
    """SELECT m.id, s.session_key, ts_headline('simple', m.content, q) AS excerpt
         FROM message_words AS w JOIN messages AS m ON m.id = w.id JOIN sessions AS s ON s.id = m.session_id,
              websearch_to_tsquery('simple', 'postgres timeout') AS q
        WHERE w.words @@ q ORDER BY ts_rank(w.words, q) DESC LIMIT 10""",
    "SELECT name, count(*) FROM llm_calls, unnest(tool_call_names) AS name"
    " WHERE cardinality(tool_call_names) > 0 AND tool_call_names && ARRAY['exec', 'web_search']"
    " GROUP BY name ORDER BY 2 DESC",
    "SELECT task.category, string_agg(task.description, '; ' ORDER BY task.completed_at DESC) AS done,"
    " array_agg(DISTINCT task.version) AS versions FROM task_log AS task"
    " WHERE task.completed_at > now() - interval '14 days' GROUP BY task.category",
    "SELECT provider, model, count(*), sum(usage_total_tokens) FROM llm_calls"
    " GROUP BY ROLLUP (provider, model) ORDER BY provider NULLS LAST, model NULLS LAST",
    "SELECT width_bucket(latency_ms, 0, 10000, 20) AS bucket, count(*) FROM llm_calls GROUP BY 1 ORDER BY 1",
    "SELECT host, version, count(DISTINCT boot_id) AS restarts FROM metrics_snapshots"
    " WHERE snapshot_at > now() - interval '7 days' GROUP BY host, version",
    # the reader schema's own function (describe_schema points to it)
    "SELECT host, sum(completed_requests) AS requests, sum(telegram_errors + discord_errors) AS errors"
    " FROM metrics_intervals_since(now() - interval '24 hours') GROUP BY host",
    # patterns, CASE, subqueries, set operations
    "SELECT coalesce(channel, 'unknown') AS channel, count(*) AS sessions,"
    " sum(CASE WHEN session_key LIKE 'tg:%' THEN 1 ELSE 0 END) AS telegram_keys"
    " FROM sessions WHERE model ILIKE '%kimi%' GROUP BY 1",
    "SELECT model, count(*) FROM llm_calls WHERE model SIMILAR TO '(gpt|o)[0-9]%'"
    " AND http_status = ANY (ARRAY[429, 500, 502, 503]) GROUP BY model",
    "SELECT split_part(session_key, ':', 1) AS kind, regexp_replace(session_key, ':[0-9-]+$', '') AS prefix,"
    " count(*) FROM sessions GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 20",
    "SELECT s.session_key FROM sessions AS s WHERE NOT EXISTS (SELECT 1 FROM messages AS m"
    " WHERE m.session_id = s.id AND m.role = 'assistant') AND s.model IS DISTINCT FROM ''",
    "SELECT s.session_key, (SELECT count(*) FROM messages AS m WHERE m.session_id = s.id) AS n"
    " FROM sessions AS s ORDER BY n DESC FETCH FIRST 10 ROWS ONLY",
    """SELECT 'deploy' AS kind, deployed_at AS at, host || ' ' || version AS what FROM deployments
       UNION ALL SELECT 'issue', created_at, title FROM known_issues
       UNION ALL SELECT 'task', completed_at, description FROM task_log
       ORDER BY at DESC LIMIT 30""",
    "SELECT session_key FROM sessions ORDER BY random() LIMIT 5",
    # orientation and the server's own views
    "SELECT current_setting('server_version') AS server, version(), current_user, now(),"
    " pg_size_pretty(pg_database_size(current_database())) AS size",
    "SELECT table_name, column_name, data_type FROM information_schema.columns"
    " WHERE table_schema = 'reader' ORDER BY table_name, ordinal_position",
    "SELECT pg_is_in_recovery() AS replica, pg_postmaster_start_time() AS up_since",
    "SELECT pid, state, wait_event_type, pg_blocking_pids(pid) AS blocked_by,"
    " now() - query_start AS running_for FROM pg_stat_activity WHERE state <> 'idle'",
    # a pivot whose columns are named after the roles they count
    """SELECT per.session_id, per.system, per.assistant
         FROM (SELECT session_id, count(*) FILTER (WHERE role = 'system') AS system,
                      count(*) FILTER (WHERE role = 'assistant') AS assistant
                 FROM messages GROUP BY session_id) AS per
        ORDER BY per.assistant DESC LIMIT 10""",
]

# ----------------------------------------------------------------------------------------
# The peer's side: a helper run by the peer's interpreter (JSON on stdin and stdout)
# ----------------------------------------------------------------------------------------

PEER_HELPER = r"""
import asyncio
import json
import logging
import platform
import sys
import time
from importlib.metadata import version

import pglast
from postgres_mcp.sql.safe_sql import SafeSqlDriver

logging.disable(logging.CRITICAL)  # the driver logs every failed query


def reason(exc):
    while exc.__cause__ is not None:  # "Error validating query: ..." from the real reason
        exc = exc.__cause__
    text = str(exc) or type(exc).__name__
    if isinstance(exc, pglast.parser.ParseError):
        text = "does not parse: " + text
    return text


def verdict(driver, text):
    try:
        driver._validate(text)
    except Exception as exc:
        return reason(exc)
    return None


def one_round(driver, sqls):  # each SQL text validated once, then parsed once: microseconds
    clock = time.perf_counter_ns
    validated, parsed = [], []
    for text in sqls:
        started = clock()
        try:
            driver._validate(text)
        except Exception:
            pass
        validated.append((clock() - started) / 1000)
        started = clock()
        try:
            pglast.parse_sql(text)
        except pglast.parser.ParseError:
            pass
        parsed.append((clock() - started) / 1000)
    return {"us": validated, "parse_us": parsed}


async def execute(job):
    import psycopg
    from postgres_mcp.sql.sql_driver import DbConnPool, SqlDriver

    # As the peer's server builds it in restricted mode: a pool, SqlDriver, SafeSqlDriver.
    pool = DbConnPool(job["url"])
    await pool.pool_connect()
    driver = SafeSqlDriver(sql_driver=SqlDriver(conn=pool), timeout=job["timeout"])
    results = []
    try:
        async with await psycopg.AsyncConnection.connect(job["url"], autocommit=True) as watcher:
            for text in job["sqls"]:
                started = time.perf_counter()
                try:
                    rows = await driver.execute_query(text)
                    cells = [list(r.cells.values()) for r in rows or []]
                    first = repr(cells[0][0] if cells[0] else None) if cells else None
                    result = {"ok": True, "rows": None if rows is None else len(cells), "first": first}
                except Exception as exc:
                    result = {"ok": False, "error": reason(exc)}
                result["ms"] = (time.perf_counter() - started) * 1000
                cur = await watcher.execute(  # held by the peer's sessions after the query
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
                result["advisory_locks"] = (await cur.fetchone())[0]
                results.append(result)
    finally:
        await pool.close()
    return {"results": results}


def reply(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# One JSON job per line on stdin, one JSON answer per line on stdout. "validate": the
# verdicts, then one timed round per "round" line, until stdin closes.
info = {
    "versions": {
        "postgres-mcp": version("postgres-mcp"),
        "pglast": version("pglast"),
        "python": platform.python_version(),
    },
    "validator": f"{SafeSqlDriver.__module__}.{SafeSqlDriver.__qualname__}._validate",
}
job = json.loads(sys.stdin.readline())
if job["mode"] == "execute":
    reply(asyncio.run(execute(job)) | info)
else:
    driver = SafeSqlDriver(sql_driver=None)  # _validate uses no driver
    reply({"verdicts": [verdict(driver, text) for text in job["sqls"]]} | info)
    for line in sys.stdin:
        reply(one_round(driver, job["sqls"]))
"""


class PeerUnavailable(Exception):
    pass


class Peer:
    """The helper running in the peer's interpreter: one JSON line out, one JSON line back."""

    def __init__(self, python: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by close())
        self.process = subprocess.Popen(
            [python, "-c", PEER_HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )

    def ask(self, message: dict[str, Any] | str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died: its stderr says why
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            self.stderr.seek(0)
            lines = self.stderr.read().strip().splitlines()
            raise PeerUnavailable(lines[-1] if lines else f"exit status {self.process.returncode}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()  # the helper's loop ends
        self.process.wait(timeout=30)
        self.stderr.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_peer(python: str, job: dict[str, Any]) -> dict[str, Any]:
    with Peer(python) as peer:
        return peer.ask(job)


# ----------------------------------------------------------------------------------------
# The SQL list and our side
# ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    label: str
    kind: str  # "attack" (must be refused) or "valid" (must be accepted)
    sql: str
    expected: str = ""  # attacks: the refusal tests/test_mcp.py expects from our server
    ours: str | None = None  # None: accepted, else the reason of the refusal
    peer: str | None = None
    ours_us: list[float] = field(default_factory=list)  # check_query
    peer_us: list[float] = field(default_factory=list)  # SafeSqlDriver._validate
    ours_parse_us: list[float] = field(default_factory=list)  # pglast.parse_sql alone, each side
    peer_parse_us: list[float] = field(default_factory=list)

    @property
    def later_wall(self) -> str | None:
        """Ours: the wall after the parser that stops this attack, if the parser lets it by."""
        return next((wall for key, wall in LATER_WALLS.items() if key in self.expected), None)


def entries() -> list[Entry]:
    attacks = [Entry(f"a{i}", "attack", s, reason) for i, (s, reason) in enumerate(ATTACKS, 1)]
    valid = [Entry(f"v{i}", "valid", s) for i, s in enumerate([*PHASE7, *ANALYST_QUERIES], 1)]
    return attacks + valid


def ours_verdict(text: str, functions: FunctionPolicy) -> str | None:
    try:
        check_query(text, functions)
    except QueryRefused as exc:
        return str(exc)
    return None


def ours_round(all_entries: list[Entry], functions: FunctionPolicy) -> tuple[list[float], list[float]]:
    """Each SQL text checked once, then parsed once: microseconds (as the peer's one_round)."""
    clock = time.perf_counter_ns
    checked, parsed = [], []
    for entry in all_entries:
        started = clock()
        try:  # noqa: SIM105 (the same try/except as on the peer's side)
            check_query(entry.sql, functions)
        except QueryRefused:
            pass
        checked.append((clock() - started) / 1000)
        started = clock()
        try:  # noqa: SIM105
            parse_sql(entry.sql)
        except ParseError:
            pass
        parsed.append((clock() - started) / 1000)
    return checked, parsed


def measure(all_entries: list[Entry], functions: FunctionPolicy, peer: Peer, repeat: int) -> None:
    """Rounds alternate between the two sides (which goes first alternates too), so that
    both see the same machine: other processes come and go."""
    for entry in all_entries:
        entry.ours = ours_verdict(entry.sql, functions)
    for round_ in range(WARMUP_ROUNDS + repeat):
        if round_ % 2:
            answer = peer.ask("round")
            checked, parsed = ours_round(all_entries, functions)
        else:
            checked, parsed = ours_round(all_entries, functions)
            answer = peer.ask("round")
        if round_ < WARMUP_ROUNDS:
            continue
        for i, entry in enumerate(all_entries):
            entry.ours_us.append(checked[i])
            entry.ours_parse_us.append(parsed[i])
            entry.peer_us.append(answer["us"][i])
            entry.peer_parse_us.append(answer["parse_us"][i])


async def prepare(url: str, valid: list[Entry]) -> tuple[FunctionPolicy, list[tuple[Entry, str]]]:
    """Migrate, read the function policy, and run every valid query once (READ ONLY, as the
    reader's search_path sees the views): the ones that fail are not valid SQL."""
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        functions = await function_policy(conn)
        failed: list[tuple[Entry, str]] = []
        for entry in valid:
            try:
                async with conn.transaction(force_rollback=True):
                    await conn.execute("SET TRANSACTION READ ONLY")
                    await conn.execute("SET LOCAL search_path = reader")
                    await conn.execute(entry.sql.encode())
            except psycopg.Error as exc:
                failed.append((entry, str(exc).splitlines()[0]))
    return functions, failed


# ----------------------------------------------------------------------------------------
# Printing
# ----------------------------------------------------------------------------------------


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split()) or "(empty)"
    return flat if len(flat) <= width else flat[: width - 1] + "…"


_PEER_STATEMENT = re.compile(r"^Only SELECT, .*? allowed\. Received(?: raw statement)?: <(\w+)", re.S)
_PEER_NODE = re.compile(r"^Node type <class 'pglast\.ast\.(\w+)'> is not allowed")


def short_peer(reason: str) -> str:
    if match := _PEER_STATEMENT.match(reason):
        return f"statement {match[1]} is not allowed"
    if match := _PEER_NODE.match(reason):
        return f"node {match[1]} is not allowed"
    return reason


def cell(reason: str | None, width: int) -> str:
    return "accepted" if reason is None else one_line(f"refused: {reason}", width)


def mark(entry: Entry) -> str:
    notes = []
    if entry.kind == "attack":
        if entry.ours is None:
            wall = entry.later_wall
            notes.append(f"ours accepts (by design: {wall})" if wall else "!! OURS ACCEPTS")
        if entry.peer is None:
            notes.append("!! peer accepts")
    else:
        if entry.ours is not None:
            notes.append("!! OURS REFUSES")
        if entry.peer is not None:
            notes.append("!! peer refuses")
    return "; ".join(notes)


def print_correctness(all_entries: list[Entry]) -> None:
    sql_w, res_w = 50, 44
    head = f"{'id':<4} {'sql':<{sql_w}} {'ours':<{res_w}} {'peer':<{res_w}} mark"
    print(head)
    print("-" * (len(head) + 30))
    kind = ""
    for entry in all_entries:
        if entry.kind != kind:
            kind = entry.kind
            print("attacks (must be refused):" if kind == "attack" else "\nvalid queries (must be accepted):")
        peer = None if entry.peer is None else short_peer(entry.peer)
        print(
            f"{entry.label:<4} {one_line(entry.sql, sql_w):<{sql_w}} {cell(entry.ours, res_w):<{res_w}}"
            f" {cell(peer, res_w):<{res_w}} {mark(entry)}"
        )
    attacks = [e for e in all_entries if e.kind == "attack"]
    valid = [e for e in all_entries if e.kind == "valid"]
    by_design = [e for e in attacks if e.ours is None and e.later_wall]
    walls = sorted({e.later_wall for e in by_design if e.later_wall})
    print(
        f"\nattacks ({len(attacks)}): the parser refuses {sum(e.ours is not None for e in attacks)} on our"
        f" side (+{len(by_design)} left by design to {', '.join(walls)}),"
        f" {sum(e.peer is not None for e in attacks)} on the peer's"
        f" ({sum(e.peer is None for e in attacks)} accepted)"
    )
    print(
        f"valid queries ({len(valid)}): accepted by ours {sum(e.ours is None for e in valid)},"
        f" by the peer {sum(e.peer is None for e in valid)}"
    )
    print(
        "A validator's acceptance is what the validator alone says. The peer's server may stop an"
        " accepted attack\nwith other walls (its READ ONLY transaction, its 30 s client timeout, the"
        " privileges of the role in its URL);\nours relies on the reader role, the statement timeout and"
        " temp_file_limit for the attacks it lets by design."
    )
    flagged = [e for e in all_entries if e.kind == "valid" and mark(e)]
    if flagged:
        print("\nthe valid queries refused, in full:")
        for entry in flagged:
            print(f"  {entry.label} {mark(entry)}\n     sql:  {' '.join(entry.sql.split()) or '(empty)'}")
            if entry.ours is not None:
                print(f"     ours: {entry.ours}")
            if entry.peer is not None:
                print(f"     peer: {short_peer(entry.peer)}")


def print_timing(all_entries: list[Entry], repeat: int) -> None:
    sql_w = 60
    print(
        f"\nvalidation time, p50 of {repeat} calls per SQL text (+{WARMUP_ROUNDS} warm-up rounds), µs;"
        " ratio = ours / peer;\nparse: pglast.parse_sql alone, on each side's pglast"
        " (part of the validation time)"
    )
    head = (
        f"{'id':<4} {'sql':<{sql_w}} {'ours':>8} {'peer':>8} {'ratio':>7} {'parse ours':>10}"
        f" {'parse peer':>10}  verdicts (ours/peer)"
    )
    print(head)
    print("-" * len(head))
    ratios: dict[str, list[float]] = {"attack": [], "valid": []}
    parse_ratios: list[float] = []
    walk_ratios: list[float] = []  # validation p50 - parse p50: the checks on the tree
    for entry in all_entries:
        ours, peer = statistics.median(entry.ours_us), statistics.median(entry.peer_us)
        ours_parse, peer_parse = (
            statistics.median(entry.ours_parse_us),
            statistics.median(entry.peer_parse_us),
        )
        ratios[entry.kind].append(ours / peer)
        if entry.sql.strip():
            parse_ratios.append(ours_parse / peer_parse)
            if ours > ours_parse and peer > peer_parse:
                walk_ratios.append((ours - ours_parse) / (peer - peer_parse))
        verdicts = "/".join("ok" if v is None else "refused" for v in (entry.ours, entry.peer))
        print(
            f"{entry.label:<4} {one_line(entry.sql, sql_w):<{sql_w}} {ours:>8.1f} {peer:>8.1f}"
            f" {ours / peer:>6.2f}x {ours_parse:>10.1f} {peer_parse:>10.1f}  {verdicts}"
        )
    both = ratios["attack"] + ratios["valid"]
    print(
        f"median ratio ours/peer: {statistics.median(both):.2f}x over all {len(both)} SQL texts"
        f" ({statistics.median(ratios['valid']):.2f}x over the valid queries,"
        f" {statistics.median(ratios['attack']):.2f}x over the attacks);"
        f"\nparse_sql alone: {statistics.median(parse_ratios):.2f}x; the rest (validation p50 -"
        f" parse p50, the checks on the tree): {statistics.median(walk_ratios):.2f}x"
    )


# ----------------------------------------------------------------------------------------
# The peer's accepted attacks, run by the peer's driver
# ----------------------------------------------------------------------------------------


def seed(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO known_issues (title, severity, component) VALUES ('gateway drops replies', 'high',"
            " 'gateway')"
        )
        conn.execute(
            "INSERT INTO project_context (key, value, secret) VALUES"
            " ('current_focus', '{\"phase\": 7}', false), ('telegram_bot_token', '\"123:secret\"', true)"
        )
        conn.execute("INSERT INTO sessions (session_key, agent_name) VALUES ('tg:main:1:1', 'main')")
        conn.execute(
            "INSERT INTO messages (session_id, role, content) SELECT id, 'user', 'the deploy on nixos keeps"
            " failing' FROM sessions"
        )
        return counts(conn)


def counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    out = {}
    for table in TABLES:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        out[table] = row[0] if row else 0
    return out


def execute_accepted(url: str, all_entries: list[Entry], peer_python: str) -> None:
    accepted = [e for e in all_entries if e.kind == "attack" and e.peer is None]
    print(
        f"\nthe {len(accepted)} attacks that the peer's validator accepts, run by its driver"
        f" (SafeSqlDriver over SqlDriver: READ ONLY\ntransaction, {PEER_TIMEOUT_S} s timeout) on the bench"
        " database (a known issue, a secret context row, a message), logged in as the --database-url role:"
    )
    before = seed(url)
    with psycopg.connect(url, autocommit=True) as victim:
        plan: list[tuple[Entry, str | None, str]] = []  # entry, the text run (None: not run), note
        for entry in accepted:
            text = entry.sql.strip()
            if entry.later_wall in RESOURCE_WALLS:
                plan.append((entry, None, "not run: meant to burn CPU or disk"))
            elif "pg_stat_activity" in text and text.endswith("pg_stat_activity"):
                where = f" WHERE pid = {victim.info.backend_pid}"
                plan.append((entry, text + where, "limited to a victim connection of the bench database"))
            elif "pg_stat_activity" in text:
                plan.append((entry, None, "not run: it acts on other sessions of the server"))
            else:
                plan.append((entry, text, ""))
        texts = [t for _, t, _ in plan if t is not None]
        job = {"mode": "execute", "url": url, "sqls": texts, "timeout": PEER_TIMEOUT_S}
        results = iter(run_peer(peer_python, job)["results"])
        locks = 0
        for entry, ran, note in plan:
            if ran is None:
                print(f"  {entry.label:<4} {one_line(entry.sql, 60):<60} {'':>9}  {note}")
                continue
            result = next(results)
            if result["ok"]:
                what = "ran: no result set" if result["rows"] is None else f"ran: {result['rows']} row(s)"
                if result["first"] not in (None, "''"):
                    what += f", first value {one_line(result['first'], 40)}"
            else:
                what = f"failed: {one_line(result['error'], 60)}"
            if result["advisory_locks"] != locks:
                what += f"; advisory locks held by its sessions: {locks} -> {result['advisory_locks']}"
                locks = result["advisory_locks"]
            what += f" [{note}]" if note else ""
            print(f"  {entry.label:<4} {one_line(ran, 60):<60} {result['ms']:6.0f} ms  {what}")
        try:
            victim.execute("SELECT 1")
            victim_alive = True
        except psycopg.OperationalError:
            victim_alive = False
    with psycopg.connect(url, autocommit=True) as conn:
        after = counts(conn)
    changed = {t: (before[t], after[t]) for t in TABLES if before[t] != after[t]}
    print(
        f"  afterwards: every table {'intact' if not changed else f'CHANGED {changed}'};"
        f" the victim connection {'alive' if victim_alive else 'terminated'}"
    )


# ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=200, help="timed validations per SQL text and side")
    parser.add_argument(
        "--peer-python",
        default=DEFAULT_PEER_PYTHON,
        help=f"interpreter with postgres-mcp installed ({DEFAULT_PEER_PYTHON})",
    )
    parser.add_argument(
        "--database-url", default=DEFAULT_URL, help=f"server to create the bench database on ({DEFAULT_URL})"
    )
    parser.add_argument(
        "--no-execute",
        action="store_true",
        help="do not run the peer's accepted attacks on the bench database",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if not (Path(args.peer_python).is_file() and os.access(args.peer_python, os.X_OK)):
        print(f"no peer interpreter at {args.peer_python}; create it with: {PEER_SETUP}")
        sys.exit(2)

    started = time.perf_counter()
    all_entries = entries()
    with Peer(args.peer_python) as peer:
        try:
            first = peer.ask({"mode": "validate", "sqls": [e.sql for e in all_entries]})
        except PeerUnavailable as exc:
            print(f"{args.peer_python} cannot run SafeSqlDriver ({exc}); make it with: {PEER_SETUP}")
            sys.exit(2)
        for entry, peer_verdict in zip(all_entries, first["verdicts"], strict=True):
            entry.peer = peer_verdict

        name = f"openclaw_bench_guard_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_conninfo(args.database_url, dbname=name)
        try:
            valid = [e for e in all_entries if e.kind == "valid"]
            functions, failed = asyncio.run(prepare(url, valid))
            measure(all_entries, functions, peer, args.repeat)
            peer.close()
            versions = first["versions"]
            print(
                f"ours: openclaw.mcp.guard.check_query, pglast {version('pglast')},"
                f" Python {platform.python_version()}\npeer: {first['validator']},"
                f" postgres-mcp {versions['postgres-mcp']}, pglast {versions['pglast']},"
                f" Python {versions['python']} ({args.peer_python})"
            )
            print(
                f"{len(all_entries)} SQL texts: {len(all_entries) - len(valid)} attacks"
                f" (tests/test_mcp.py ATTACKS), {len(valid)} valid queries ({len(PHASE7)} PHASE7"
                f" + {len(ANALYST_QUERIES)} analyst queries),"
                f" {len(valid) - len(failed)} of which ran on the bench database\n"
            )
            for entry, error in failed:
                print(f"  {entry.label} does not run on the bench database: {error}")
            print_correctness(all_entries)
            print_timing(all_entries, args.repeat)
            if not args.no_execute:
                execute_accepted(url, all_entries, args.peer_python)
        finally:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
