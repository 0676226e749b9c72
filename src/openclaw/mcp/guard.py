"""The parser wall of `query(sql)`: one read-only statement, known-safe functions only.

This is the second of four walls (reference mcp.md): the database role that can only
SELECT from curated views is the first and the real boundary; after this come the
extended protocol and a READ ONLY transaction with a statement timeout. The check is
done on pglast's parse tree, not on the text, and every node of the tree is visited, so
a function is found wherever it hides: in FROM (`pg_read_file(...)` as a table, the hole
another server had), in a CTE, a subquery, a LATERAL, an ORDER BY or a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

from openclaw.errors import UsageError
from openclaw.mcp.limits import MAX_SQL_CHARS

# Volatile in the catalog, yet they change nothing and leak nothing; analysts use them.
HARMLESS_VOLATILE = frozenset(
    {
        "random",
        "random_normal",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        "pg_relation_size",
        "pg_total_relation_size",
        "pg_table_size",
        "pg_indexes_size",
        "pg_database_size",
        "pg_tablespace_size",
        "pg_partition_tree",
        "pg_partition_ancestors",
        "pg_jit_available",
        # what a server is doing: replication and lock waits
        "pg_is_in_recovery",
        "pg_is_wal_replay_paused",
        "pg_get_wal_replay_pause_state",
        "pg_current_wal_lsn",
        "pg_last_wal_receive_lsn",
        "pg_last_wal_replay_lsn",
        "pg_last_xact_replay_timestamp",
        "pg_blocking_pids",
        "pg_safe_snapshot_blocking_pids",
    }
)
# Refused by name whatever their volatility: they run SQL given as text (ts_stat,
# ts_rewrite, query_to_xml...), read whole tables or files, take a transaction id, sleep.
_REFUSED_NAMES = re.compile(
    r"(_to_xml|xmlschema|^dblink|^pg_read|^pg_ls_|^pg_stat_file|^pg_file|^lo_|^txid_current$"
    r"|^txid_current_if_assigned$|^pg_current_xact_id|^pg_stat_reset|^set_config$|^pg_sleep|^ts_stat$"
    r"|^ts_rewrite$|^openclaw_explain$)"
)
# Parsers that never check for interrupts, in time that grows with the square of their
# input: `plainto_tsquery('simple', repeat('w ', 150000))` ran 16 s past a 5 s timeout and
# ignored pg_terminate_backend. They may parse a string literal of bounded length only,
# never an expression (a column, repeat(), a subquery): written as a call, as a cast to
# tsquery, as the query of `text @@ text`, or through the functions behind these.
UNINTERRUPTIBLE = frozenset(
    {
        "to_tsquery",
        "plainto_tsquery",
        "phraseto_tsquery",
        "websearch_to_tsquery",
        "tsquery",  # the cast in function form
        "tsqueryin",  # the type's input function, which casts call
        "ts_match_tt",  # text @@ text: plainto_tsquery of its second argument
    }
)
MAX_PARSED_LITERAL_CHARS = 1_000
# repeat() builds its text from a count: a literal one, at most this (Postgres's own
# limit on a value is 1 GB).
MAX_REPEAT_COUNT = 200_000_000
_MATCH_OPERATORS = frozenset({"@@", "@@@"})
_TSQUERY_OPERATORS = frozenset({"&&", "||", "<->", "!!"})
_MODIFYING = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_STATEMENT_NAMES = {
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
    "TransactionStmt": "a transaction command",
    "VariableSetStmt": "SET",
    "CopyStmt": "COPY",
    "DoStmt": "DO",
    "CallStmt": "CALL",
    "LockStmt": "LOCK",
    "DropStmt": "DROP",
    "TruncateStmt": "TRUNCATE",
    "GrantStmt": "GRANT",
    "GrantRoleStmt": "GRANT",
}


class QueryRefused(UsageError):
    """The SQL is not a single read-only statement made of allowed parts."""


@dataclass(frozen=True, slots=True)
class FunctionPolicy:
    """What the catalog says: the names whose every overload is stable or immutable; every
    function name (to recognise `(x).f`, Postgres's other way to write `f(x)`); and the
    names that `t.f` can call, f(t) with t's whole row, when t has no column f."""

    allowed: frozenset[str]
    known: frozenset[str]
    whole_row: frozenset[str]


@dataclass(frozen=True, slots=True)
class CheckedQuery:
    sql: str  # the one statement's text, without a trailing semicolon
    is_select: bool  # False: EXPLAIN, which cannot run inside a cursor


def check_query(sql: str, functions: FunctionPolicy) -> CheckedQuery:
    """Accept one SELECT (or EXPLAIN of one) whose every function is allowed by `functions`
    or harmless; raise `QueryRefused` with the reason otherwise."""
    if not sql.strip():
        raise QueryRefused("the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused(f"the query is longer than {MAX_SQL_CHARS} characters")
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        raise QueryRefused(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise QueryRefused(f"exactly one statement is allowed, this has {len(statements)}")
    raw = statements[0]
    statement = raw.stmt
    assert statement is not None
    is_select = isinstance(statement, ast.SelectStmt)
    if isinstance(statement, ast.ExplainStmt):
        if not isinstance(statement.query, ast.SelectStmt):
            raise QueryRefused(f"EXPLAIN is allowed of a SELECT only, not of {_kind(statement.query)}")
        if any(option.defname == "analyze" and _on(option.arg) for option in statement.options or ()):
            # It runs the query and counts the rows a view's filter removed: hidden rows
            # would show through. Plain EXPLAIN shows the plan.
            raise QueryRefused("EXPLAIN ANALYZE is not allowed; plain EXPLAIN is")
    elif not is_select:
        raise QueryRefused(f"only SELECT (or EXPLAIN SELECT) is allowed, not {_kind(statement)}")
    _Checker(functions).check(statement)
    # The statement's own text (pglast gives character offsets; a length of 0 means "to
    # the end"): psycopg declares a cursor around it, so no semicolon may follow, and a
    # line break ends a trailing comment.
    start = raw.stmt_location or 0
    text = sql[start : start + raw.stmt_len] if raw.stmt_len else sql[start:]
    return CheckedQuery(text.strip().rstrip(";") + "\n", is_select)


def _kind(node: object) -> str:
    name = type(node).__name__
    return _STATEMENT_NAMES.get(name, name.removesuffix("Stmt").upper() or name)


class _Checker(Visitor):
    def __init__(self, functions: FunctionPolicy) -> None:
        super().__init__()
        self.functions = functions
        # `t.f` with two names is checked once the whole tree is seen (the target list
        # comes before FROM): whether FROM holds a function decides what f(t) may be.
        self.two_part: list[str] = []
        self.function_in_from = False

    def check(self, statement: ast.Node) -> None:
        self(statement)
        for field in self.two_part:
            # f(t) is tried only if t has no column f, with t's row as the argument. A
            # table's, view's, subquery's or CTE's row is composite, which few functions
            # take (so `per.system` is a column, not the TABLESAMPLE method system()). A
            # function's in FROM may be a scalar (`g.pg_sleep FROM generate_series(1, 1)
            # AS g` is pg_sleep(g)), under names hard to foresee (`FROM CAST(2 AS float8)`
            # is called float8): with one in the query, every such name is checked.
            self._check_attribute(field, whole_row_only=not self.function_in_from)

    def visit(self, ancestors: object, node: object) -> None:
        if isinstance(node, _MODIFYING):
            raise QueryRefused(f"{_kind(node)} is not allowed, not even inside a WITH")
        if isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                raise QueryRefused("SELECT INTO creates a table; it is not allowed")
            if node.lockingClause:
                raise QueryRefused("FOR UPDATE/SHARE takes row locks; it is not allowed")
        elif isinstance(node, ast.FuncCall):
            self._check_call(node)
        elif isinstance(node, ast.TypeCast):
            names = [n.sval.lower() for n in (node.typeName.names if node.typeName else None) or ()]
            if names and names[-1] == "tsquery" and not _bounded_literal(node.arg):
                raise QueryRefused(_unbounded("a cast to tsquery"))
        elif isinstance(node, ast.A_Expr) and node.lexpr is not None:
            operator = node.name[-1].sval if node.name else ""
            # tsquery @@ tsvector, or @@ with a query on the right: text @@ text parses its
            # right side with plainto_tsquery, whatever the operand is.
            columns = _tsquery_columns(ancestors) if operator in _MATCH_OPERATORS else frozenset()
            if operator in _MATCH_OPERATORS and not (
                _safe_query(node.rexpr, columns) or _safe_query(node.lexpr, columns, literal_ok=False)
            ):
                raise QueryRefused(
                    f"the right side of {operator} must be a text literal of at most"
                    f" {MAX_PARSED_LITERAL_CHARS} characters or a tsquery built from one, such as"
                    " to_tsquery('simple', 'word') or a column q of `FROM to_tsquery(...) AS q` in the"
                    " same SELECT: Postgres cannot stop its text search parser"
                )
        # `(x).f` and `t.c.f` call f(x) when f is not a field: check such names as calls.
        elif isinstance(node, ast.A_Indirection):
            for part in node.indirection or ():
                if isinstance(part, ast.String):
                    self._check_attribute(part.sval, whole_row_only=False)
        elif isinstance(node, ast.ColumnRef):
            fields = node.fields or ()
            last = fields[-1] if fields else None
            if len(fields) > 2 and isinstance(last, ast.String):
                self._check_attribute(last.sval, whole_row_only=False)
            elif len(fields) == 2 and isinstance(last, ast.String) and last.sval:
                self.two_part.append(last.sval)
        elif isinstance(node, ast.RangeFunction):
            self.function_in_from = True

    def _check_call(self, call: ast.FuncCall) -> None:
        parts = [n.sval.lower() for n in call.funcname or ()]
        name = parts[-1]
        qualified = ".".join(parts)
        if len(parts) > 1 and parts[0] not in ("pg_catalog", "reader"):
            raise QueryRefused(f"function {qualified}() is outside the allowed schemas")
        if _REFUSED_NAMES.search(name):
            raise QueryRefused(
                f"function {qualified}() is not allowed: it reads files, runs SQL or has effects"
            )
        if name in UNINTERRUPTIBLE and not all(_bounded_literal(a) for a in call.args or ()):
            raise QueryRefused(_unbounded(f"function {qualified}()"))
        if name == "repeat":
            count = (call.args or [None, None])[-1]
            value = getattr(count, "val", None)
            if len(call.args or ()) != 2 or not isinstance(value, ast.Integer):
                raise QueryRefused(
                    "function repeat() takes a whole-number literal count here, not an expression"
                )
            if (value.ival or 0) > MAX_REPEAT_COUNT:
                raise QueryRefused(f"function repeat() may repeat at most {MAX_REPEAT_COUNT:,} times")
        if name in HARMLESS_VOLATILE or name in self.functions.allowed:
            return
        raise QueryRefused(
            f"function {qualified}() is not allowed: it is unknown or has side effects (volatile)"
        )

    def _check_attribute(self, field: str | None, *, whole_row_only: bool) -> None:
        if not field:
            return
        name = field.lower()
        if name in UNINTERRUPTIBLE or name == "repeat":  # (x).f is f(x): never a literal
            raise QueryRefused(f".{field} calls the function {name}() on a value that is no literal")
        if name in HARMLESS_VOLATILE or name in self.functions.allowed:
            return
        callable_ = self.functions.whole_row if whole_row_only else self.functions.known
        if name in callable_ or _REFUSED_NAMES.search(name):
            raise QueryRefused(f".{field} calls the function {name}(), which is not allowed")


def _bounded_literal(node: object) -> bool:
    """A constant (or a constant cast to a type, such as 'simple'::regconfig) whose text is
    at most MAX_PARSED_LITERAL_CHARS long."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if not isinstance(node, ast.A_Const):
        return False
    value = getattr(node, "val", None)
    text = getattr(value, "sval", None)
    return text is None or len(text) <= MAX_PARSED_LITERAL_CHARS


def _tsquery_columns(ancestors: object) -> frozenset[tuple[str, ...]]:
    """The column references that name a tsquery made in FROM by a parser call (checked as
    any call) of the nearest SELECT: `q` and `q.q` for `FROM to_tsquery(...) AS q`. Only
    that SELECT's own FROM: a SELECT nested between would resolve the name first, to a
    column of its own. Two items of one FROM with a column of the name make Postgres
    refuse the reference as ambiguous."""
    select = None
    while ancestors is not None and getattr(ancestors, "node", None) is not None:
        if isinstance(ancestors.node, ast.SelectStmt):  # type: ignore[attr-defined]
            select = ancestors.node  # type: ignore[attr-defined]
            break
        ancestors = ancestors.parent  # type: ignore[attr-defined]
    names: set[tuple[str, ...]] = set()
    items = list(select.fromClause or ()) if select is not None else []
    while items:
        item = items.pop()
        if isinstance(item, ast.JoinExpr):
            items += [item.larg, item.rarg]
        elif isinstance(item, ast.RangeFunction) and not item.is_rowsfrom:
            functions = item.functions or ()
            call = functions[0][0] if len(functions) == 1 else None
            parts = [n.sval.lower() for n in getattr(call, "funcname", None) or ()]
            if not parts or parts[-1] not in UNINTERRUPTIBLE - {"ts_match_tt"}:  # a tsquery or none
                continue
            alias = item.alias.aliasname if item.alias else parts[-1]
            column = str(alias)
            if item.alias and item.alias.colnames:
                column = str(item.alias.colnames[0].sval)
            alias = str(alias)
            names |= {(alias,), (column,), (alias, column)}
    return frozenset(names)


def _safe_query(
    node: object, columns: frozenset[tuple[str, ...]] = frozenset(), *, literal_ok: bool = True
) -> bool:
    """An operand of @@ that is no unbounded text to parse: a bounded literal, a call of a
    tsquery parser (whose arguments are checked as any call's), a tsquery made in FROM
    (`columns`), or tsqueries combined with &&, ||, <-> and !!."""
    if isinstance(node, ast.ColumnRef):
        fields = tuple(getattr(f, "sval", None) for f in node.fields or ())
        return fields in columns
    if isinstance(node, ast.FuncCall):
        parts = node.funcname or ()
        return bool(parts) and parts[-1].sval.lower() in UNINTERRUPTIBLE
    if isinstance(node, ast.TypeCast):
        names = [n.sval.lower() for n in (node.typeName.names if node.typeName else None) or ()]
        return (names[-1:] == ["tsquery"] or literal_ok) and _bounded_literal(node)
    if isinstance(node, ast.A_Expr) and node.name and node.name[-1].sval in _TSQUERY_OPERATORS:
        operands = [o for o in (node.lexpr, node.rexpr) if o is not None]
        return all(_safe_query(o, columns, literal_ok=False) for o in operands)
    return literal_ok and _bounded_literal(node)


def _unbounded(what: str) -> str:
    return (
        f"{what} may parse only a text literal of at most {MAX_PARSED_LITERAL_CHARS} characters,"
        " not an expression or a column: Postgres cannot stop its text search parser once started"
    )


def _on(value: object) -> bool:
    """An EXPLAIN option's value: none means on, as do true, on, 1 and yes."""
    if value is None:
        return True
    given = getattr(value, "boolval", None)
    if given is None:
        given = getattr(value, "sval", None) or getattr(value, "ival", None)
    return str(given).lower() not in ("false", "off", "0", "no")
