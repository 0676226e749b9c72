"""Running the assistant's SQL: checked, then run by the reader role inside a read-only
transaction with a statement timeout, through the extended protocol, N+1 rows at most,
its values cut by the server before they are sent."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, pq
from psycopg.types.json import set_json_loads

from openclaw.errors import DatabaseError, TransientError, first_line
from openclaw.jsonable import to_jsonable
from openclaw.mcp.calls import Deadline
from openclaw.mcp.guard import CheckedQuery, FunctionPolicy, QueryRefused, check_query
from openclaw.mcp.limits import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_MS

MAX_CELL_CHARS = 4_000  # a longer text value is cut: the assistant's context is not a dump
MAX_CELL_ITEMS = 100  # elements of an array or keys of an object shown per value
MAX_RESULT_CHARS = 1_000_000  # of JSON per result: rows past it are not read
MAX_VALUE_BYTES = 100_000  # a bigger non-text value is left out by the server, never sent
MAX_COLUMNS = 100
MAX_PLAN_LINE_CHARS = 100_000  # a line of EXPLAIN, or a whole plan in FORMAT JSON
ROW_BATCH_CELLS = 500  # cells per fetch: with the caps above, a batch stays under ~50 MB
# Text types, which the server cuts to MAX_CELL_CHARS itself: text, varchar, bpchar, name.
_TEXT_OIDS = frozenset({25, 1043, 1042, 19})

# Every function the catalog holds under a name whose overloads are all stable or
# immutable, in the schemas a reader's unqualified names resolve to.
_ALLOWED_FUNCTIONS = """
SELECT lower(p.proname)
  FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('pg_catalog', 'reader')
 GROUP BY p.proname
HAVING bool_and(p.provolatile <> 'v') AND NOT bool_or(p.prosecdef AND n.nspname = 'pg_catalog')
"""


# Every function name with an overload that one argument of a composite type can call:
# `t.f` means f(t) when t has no column f (pseudo-types that a row matches, row types,
# and domains, counted in for caution).
_WHOLE_ROW_FUNCTIONS = """
SELECT DISTINCT lower(p.proname)
  FROM pg_proc AS p LEFT JOIN pg_type AS t ON t.oid = p.proargtypes[0]
 WHERE p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1
   AND (t.typtype IN ('c', 'd')
        OR t.oid IN ('record'::regtype, 'anyelement'::regtype, '"any"'::regtype, 'anynonarray'::regtype,
                     'anycompatible'::regtype, 'anycompatiblenonarray'::regtype)
        OR (p.pronargs = 1 AND p.provariadic IN ('anyelement'::regtype, '"any"'::regtype,
                                                 'anycompatible'::regtype)))
"""


# Every function name whose overloads all take or return a geometric type (point, line,
# lseg, box, path, polygon, circle, or an array of one): the views hold none, and their
# distances and containment run in quadratic time that no timeout stops (openclaw.mcp.guard).
_GEOMETRIC_FUNCTIONS = """
SELECT lower(p.proname)
  FROM pg_proc AS p
 GROUP BY p.proname
HAVING bool_and(EXISTS (
         SELECT 1
           FROM unnest(p.proargtypes::oid[] || p.prorettype) AS a (t)
           JOIN pg_type AS ty ON ty.oid = a.t
           LEFT JOIN pg_type AS el ON el.oid = ty.typelem AND ty.typcategory = 'A'
          WHERE ty.typcategory = 'G' OR el.typcategory = 'G'))
"""


# Every function name whose overloads all return an array: cast to another array type, its
# value is converted element by element, not parsed from a text.
_ARRAY_VALUED_FUNCTIONS = """
SELECT lower(p.proname)
  FROM pg_proc AS p JOIN pg_type AS t ON t.oid = p.prorettype
 GROUP BY p.proname
HAVING bool_and(t.typcategory = 'A' OR t.oid IN ('anyarray'::regtype, 'anycompatiblearray'::regtype))
"""


async def function_policy(conn: AsyncConnection) -> FunctionPolicy:
    async def names(sql: str) -> frozenset[str]:
        return frozenset(r[0] for r in await (await conn.execute(sql)).fetchall())

    return FunctionPolicy(
        allowed=await names(_ALLOWED_FUNCTIONS),
        known=await names("SELECT DISTINCT lower(proname) FROM pg_proc"),
        whole_row=await names(_WHOLE_ROW_FUNCTIONS),
        geometric=await names(_GEOMETRIC_FUNCTIONS),
        array_valued=await names(_ARRAY_VALUED_FUNCTIONS),
        input_functions=await names(
            "SELECT DISTINCT lower(proname) FROM pg_proc WHERE 'cstring'::regtype = ANY (proargtypes)"
        ),
    )


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    oversized: bool = False  # some value over MAX_VALUE_BYTES is shown as null


class QueryFailed(QueryRefused):
    """Postgres refused the query (permission, a typo, too many columns): a usage error."""


class QueryTimedOut(DatabaseError, TransientError):
    """The query ran past the call's deadline and was stopped (Postgres's statement timeout,
    or a cancel). Not the user's mistake, as a refusal is (exit code 1, not 2): a later try,
    on a less busy server, may succeed."""


async def run_checked(
    conn: AsyncConnection,
    query: CheckedQuery,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    deadline: Deadline | None = None,
) -> QueryResult:
    """Run on a connection of the reader role; the connection is left idle, not in error.
    Stops reading at `max_rows` or at MAX_RESULT_CHARS of JSON, whichever comes first.
    Every statement (describe, DECLARE, each FETCH) gets the time left of `deadline` (the
    tool call's; else `timeout_ms` from now), not a whole timeout of its own."""
    deadline = deadline or Deadline(timeout_ms / 1000)
    if conn.info.transaction_status == pq.TransactionStatus.IDLE:
        await conn.set_read_only(True)  # BEGIN READ ONLY, whatever the role says
    # (else the caller's transaction is read only already, and this block is a savepoint)
    rows: list[list[Any]] = []
    size = 0
    truncated = oversized = False
    try:
        async with conn.transaction():
            # SELECT: a server-side cursor, which psycopg declares with the extended protocol,
            # and of which only the rows fetched are computed. EXPLAIN, which can be neither
            # a cursor nor a subquery: a function that cuts its lines (migration 0005), its
            # text passed as a parameter, so the extended protocol too.
            columns, shape = await _capped(conn, query.sql, deadline) if query.is_select else ([], None)
            name = f"openclaw_query_{secrets.token_hex(4)}" if shape else None
            async with conn.cursor(name=name) if name else conn.cursor() as cur:
                set_json_loads(_loads_json, cur)
                # After set_json_loads, which it wraps: infinity, BC dates and JSON nested
                # past Python's parser come back as Postgres prints them, intervals in ISO 8601.
                from openclaw.mcp.values import register_loaders

                register_loaders(cur)
                await deadline.bound_next_statement(conn)
                if shape:
                    await cur.execute(shape.sql)
                else:
                    await cur.execute(
                        'SELECT line AS "QUERY PLAN" FROM reader.openclaw_explain(%s, %s) AS line',
                        (query.sql, MAX_PLAN_LINE_CHARS),
                    )
                columns = columns or [c.name for c in cur.description or ()]
                per_fetch = max(1, min(50, ROW_BATCH_CELLS // max(1, len(columns))))
                while not truncated:
                    if shape:  # each FETCH is a statement of its own, computing its rows
                        await deadline.bound_next_statement(conn)
                    if not (batch := await cur.fetchmany(per_fetch)):
                        break
                    for raw in batch:
                        if shape and shape.flags_oversized:
                            oversized |= bool(raw[-1])
                            raw = raw[:-1]
                        cut = shape.text if shape else [True] * len(raw)  # plan lines: cut
                        row = [v if text else _cell(v) for v, text in zip(raw, cut, strict=True)]
                        size += len(json.dumps(row, ensure_ascii=False, default=str))
                        if len(rows) == max_rows or size > MAX_RESULT_CHARS:
                            truncated = True
                            break
                        rows.append(row)
    except psycopg.errors.QueryCanceled:
        raise QueryTimedOut(
            deadline.timed_out(": the query ran longer than the call's deadline and was stopped")
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise QueryFailed(
            f"{first_line(exc)}; the reader sees only the views of schema reader (describe_schema lists them)"
        ) from None
    except psycopg.Error as exc:
        if conn.broken:  # the server went away: not the query's fault
            raise
        raise QueryFailed(f"Postgres refused the query: {_without_values(first_line(exc))}") from None
    return QueryResult(columns, rows, truncated, oversized)


@dataclass(frozen=True, slots=True)
class _CappedQuery:
    sql: str
    text: list[bool]  # per column: a text the server has cut already
    flags_oversized: bool  # the last column says whether a value was left out


async def _capped(conn: AsyncConnection, sql: str, deadline: Deadline) -> tuple[list[str], _CappedQuery]:
    """The SELECT wrapped so that the server cuts long texts and leaves out huge values
    instead of sending them whole: `SELECT repeat('x', 500000000)` would otherwise be half
    a gigabyte in this process before any cap applied.

    The columns are described first (LIMIT 0 computes no row), then renamed by position,
    since a query's own names may repeat. OFFSET 0 keeps Postgres from folding the query
    into the wrapper, which would compute an expression once per reference to it."""
    # Through a cursor, as the query itself: the extended protocol, one statement only.
    await deadline.bound_next_statement(conn)
    async with conn.cursor(name=f"openclaw_describe_{secrets.token_hex(4)}") as cur:
        await cur.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")
        described = cur.description or []
    if len(described) > MAX_COLUMNS:
        raise QueryFailed(f"the query returns {len(described)} columns; select at most {MAX_COLUMNS}")
    names = [f"c{i}" for i in range(len(described))]
    text = [c.type_code in _TEXT_OIDS for c in described]
    cut, limit = MAX_CELL_CHARS, MAX_VALUE_BYTES
    # Sizes are taken of the text that would be sent: pg_column_size() is the stored size,
    # compressed for a long JSON document, and 12 bytes for a numeric of 131,072 digits.
    # As text, too, char(n) drops its trailing blanks, which its length() does not count.
    exprs = [
        f"CASE WHEN length({n}::text) > {cut} THEN left({n}::text, {cut}) || '…['"
        f" || (length({n}::text) - {cut}) || ' more characters]' ELSE {n}::text END"
        if is_text
        else f"CASE WHEN octet_length({n}::text) <= {limit} THEN {n} END"
        for n, is_text in zip(names, text, strict=True)
    ]
    big = [
        f"octet_length({n}::text) > {limit}" for n, is_text in zip(names, text, strict=True) if not is_text
    ]
    if big:
        exprs.append(f"coalesce({' OR '.join(big)}, false)")
    source = f"(SELECT * FROM ({sql}) AS q OFFSET 0) AS q ({', '.join(names)})" if names else f"({sql}) AS q"
    wrapped = f"SELECT {', '.join(exprs)} FROM {source}"
    return [c.name for c in described], _CappedQuery(wrapped, text, bool(big))


def _loads_json(data: str | bytes) -> Any:
    """JSON as Python, where an integer too long for Python's int() stays text."""
    return json.loads(data, parse_int=lambda digits: int(digits) if len(digits) <= 4_000 else digits)


def _cell(value: Any) -> Any:
    """A value as JSON, with long texts cut and long arrays or objects shortened."""
    value = to_jsonable(value)
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return f"{value[:MAX_CELL_CHARS]}…[{len(value) - MAX_CELL_CHARS} more characters]"
    if isinstance(value, list):
        cells = [_cell(v) for v in value[:MAX_CELL_ITEMS]]
        return cells + (
            [f"…[{len(value) - MAX_CELL_ITEMS} more items]"] if len(value) > MAX_CELL_ITEMS else []
        )
    if isinstance(value, dict):
        items = list(value.items())
        capped = {k: _cell(v) for k, v in items[:MAX_CELL_ITEMS]}
        if len(items) > MAX_CELL_ITEMS:
            capped["…"] = f"{len(items) - MAX_CELL_ITEMS} more keys"
        return capped
    return value


# A value quoted in an error message ("invalid input syntax for type integer: "...") may be
# chat text written by a stranger; identifiers (at most 63 characters, seldom with spaces)
# are what a reader needs to fix the query.
_QUOTED_VALUE = re.compile(r'"(?=[^"]{64,}"|[^"]*\s)[^"]*"')
# A value quoted at the end ("...: "<value>"), where it runs to the end of the line
# whatever quotes it holds: kept only when it is a short word without quotes.
_TRAILING_VALUE = re.compile(r': "(?![^"\s]{1,63}"$).*\Z', re.DOTALL)


def _without_values(message: str) -> str:
    """Values cut out of an error message where they can be told apart (the message is
    sent inside the untrusted-data envelope anyway: this keeps chat text out of it)."""
    message = _TRAILING_VALUE.sub(': "(a value from the data)"', message)
    return _QUOTED_VALUE.sub('"(a value from the data)"', message)


async def run_query(
    conn: AsyncConnection,
    sql: str,
    functions: FunctionPolicy,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    deadline: Deadline | None = None,
) -> QueryResult:
    return await run_checked(
        conn, check_query(sql, functions), max_rows=max_rows, timeout_ms=timeout_ms, deadline=deadline
    )
