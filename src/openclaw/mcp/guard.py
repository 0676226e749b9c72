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
# Other work that Postgres (15) does without checking for interrupts, measured under a
# 1 s statement_timeout (issue 12, the kin of the text-search parsers):
# - XML, through libxml2: xml_is_well_formed() of a 160 MB text ran 21 s and reached 7.2 GB;
#   a cast to xml 13.8 s and 6.9 GB; xmlparse() of 80 MB 6.7 s; xpath() over 20 MB 4 s;
#   xmlelement() escaping 200 MB 3.7 s. The views hold no XML: refused outright.
# - JSON parsing: a cast to json of a 200 MB generated text ran 9 s (3.4 GB), to jsonb
#   3.7 s. A literal (at most MAX_SQL_CHARS long) or a stored column is parsed; a
#   computed text is not (a column that the query computes, in a subquery or a function
#   in FROM, counts as computed).
# - lpad()/rpad() fill character by character: 200M characters took 2.4 s; format()'s
#   width as much (%999999999s: 3.4 s, 2 GB); and one row's expressions run with no
#   check between them (100 pads of 10M in one row: 5.7 s). Their lengths and widths are
#   literals, at most MAX_PAD_CHARS in all per query (20M took 0.27 s); format's template
#   is a literal.
# Measured and left alone, since the timeout stops them (at most 0.3 s late): the regex
# engine, on compile (repeat('[[:alpha:]]', 100000) as a pattern) and on match (with
# backreferences over 30,000 characters), regexp_replace/_matches/_split over 200 MB,
# similar to, substring(... from pattern); string_to_array over 200 MB; to_tsvector;
# factorial(30000); numeric powers (they stop at 131,072 digits); replace(); md5().
_REFUSED_XML = re.compile(r"xml|xpath")
JSON_TYPES = frozenset({"json", "jsonb", "jsonpath"})
# The types' input functions, which a cast calls and which can be called by name.
JSON_PARSERS = frozenset({"json_in", "jsonb_in", "jsonpath_in"})
MAX_PAD_CHARS = 10_000_000
# A computed text whose size the query fixes (literals, repeat() and pads of them, joined
# with ||) may be parsed as JSON up to this size: 1M characters take jsonb ~15 ms.
MAX_PARSED_JSON_CHARS = 1_000_000
_PADDERS = frozenset({"lpad", "rpad"})
# A format() conversion: %[position$][flags][width]type, width digits or * (an argument).
_FORMAT_SPEC = re.compile(r"%(?:\d+\$)?-?(\*(?:\d+\$)?|\d+)?([sIL%])?")
# The names Postgres gives an output column that is no column reference and has no alias.
_GENERIC_COLUMN_NAMES = frozenset(
    {"?column?", "case", "array", "coalesce", "greatest", "least", "nullif", "row", "exists"}
)
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
        # JSON parsed from a column: allowed if the column is stored, not computed by the
        # query (checked once every name the query computes is known).
        self.parsed_columns: list[str] = []
        self.computed: set[str] = set()
        self.renamed: list[tuple[str, str]] = []  # (alias, column it renames) in subqueries
        self.root: object = None
        self.padded = 0  # characters of lpad/rpad lengths and format() widths, in all

    def check(self, statement: ast.Node) -> None:
        self.root = statement.query if isinstance(statement, ast.ExplainStmt) else statement
        self(statement)
        self._check_parsed_columns()
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
            if node is not self.root:
                self._note_computed(node)
        elif isinstance(node, ast.FuncCall):
            self._check_call(node)
        elif isinstance(node, ast.XmlExpr | ast.XmlSerialize | ast.RangeTableFunc):
            raise QueryRefused(_XML_REFUSED)
        elif isinstance(node, ast.TypeCast):
            names = [n.sval.lower() for n in (node.typeName.names if node.typeName else None) or ()]
            if names and names[-1] == "tsquery" and not _bounded_literal(node.arg):
                raise QueryRefused(_unbounded("a cast to tsquery"))
            if names and names[-1] == "xml":
                raise QueryRefused(_XML_REFUSED)
            if names and names[-1] in JSON_TYPES:
                self._check_parsed(node.arg, f"a cast to {names[-1]}")
        elif isinstance(node, ast.RangeSubselect) and node.alias is not None:
            self.computed |= {str(c.sval).lower() for c in node.alias.colnames or ()}
        elif isinstance(node, ast.CommonTableExpr):
            self.computed |= {str(c.sval).lower() for c in node.aliascolnames or ()}
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
            if node.alias is not None:
                self.computed.add(str(node.alias.aliasname).lower())
                self.computed |= {str(c.sval).lower() for c in node.alias.colnames or ()}

    def _note_computed(self, select: ast.SelectStmt) -> None:
        """The output names of a nested SELECT (a subquery, a CTE, a branch of a UNION) that
        hold a computed value: a query above may read them as if they were stored."""
        if select.larg is not None:  # UNION, INTERSECT, EXCEPT: named by their first branch,
            branch = select.larg  # whatever the others hold in the same place
            while branch.larg is not None:
                branch = branch.larg
            for target in branch.targetList or ():
                value = target.val if isinstance(target, ast.ResTarget) else None
                while isinstance(value, ast.TypeCast):
                    value = value.arg
                fields = value.fields if isinstance(value, ast.ColumnRef) else None
                name = target.name if isinstance(target, ast.ResTarget) else None
                name = name or (fields[-1].sval if fields and isinstance(fields[-1], ast.String) else None)
                if name:
                    self.computed.add(name.lower())
        if select.valuesLists:
            width = max(len(row) for row in select.valuesLists)
            self.computed |= {f"column{i}" for i in range(1, width + 1)}
        for target in select.targetList or ():
            if not isinstance(target, ast.ResTarget):
                continue
            value = target.val
            while isinstance(value, ast.TypeCast):  # a column cast is the column's value
                value = value.arg
            fields = value.fields if isinstance(value, ast.ColumnRef) else None
            last = fields[-1] if fields else None
            if isinstance(last, ast.String):
                source = (last.sval or "").lower()
                if target.name and target.name.lower() != source:
                    self.renamed.append((target.name.lower(), source))
                continue
            if target.name:
                self.computed.add(target.name.lower())
            else:
                self.computed |= _GENERIC_COLUMN_NAMES
                if isinstance(value, ast.FuncCall) and value.funcname:
                    self.computed.add(value.funcname[-1].sval.lower())

    def _check_parsed(self, node: object, what: str) -> None:
        """The text a JSON parser is given: a literal, or a column (cast or not), which is
        checked once the whole query is seen."""
        size = _static_chars(node)
        if size is not None and size <= MAX_PARSED_JSON_CHARS:
            return  # literals, or text built from them to a size known here
        while isinstance(node, ast.TypeCast):
            node = node.arg
        fields = node.fields if isinstance(node, ast.ColumnRef) else None
        last = fields[-1] if fields else None
        if isinstance(last, ast.String):
            self.parsed_columns.append(last.sval or "")
            return
        raise QueryRefused(_computed_json(what))

    def _check_parsed_columns(self) -> None:
        computed = set(self.computed)
        while True:  # an alias of a computed column is computed
            more = {alias for alias, source in self.renamed if source in computed} - computed
            if not more:
                break
            computed |= more
        for column in self.parsed_columns:
            if self.function_in_from or column.lower() in computed:
                raise QueryRefused(
                    _computed_json(f"the JSON parsed from {column}")
                    + ("; with a function in FROM, only literals" if self.function_in_from else "")
                )

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
        if _REFUSED_XML.search(name):
            raise QueryRefused(_XML_REFUSED)
        if name in JSON_PARSERS:
            for arg in call.args or ():
                self._check_parsed(arg, f"function {qualified}()")
        if name in _PADDERS:
            length = (call.args or [None, None])[1] if len(call.args or ()) >= 2 else None
            value = getattr(length, "val", None)
            if not isinstance(value, ast.Integer):
                raise QueryRefused(f"function {qualified}() takes a whole-number literal length here")
            self._pad(value.ival or 0, f"function {qualified}()")
        if name == "format":
            for width in _format_widths(call, qualified):
                self._pad(width, f"function {qualified}()")
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

    def _pad(self, chars: int, what: str) -> None:
        """Count padding against the statement's budget: one row's expressions are computed
        with no interrupt check between them, so 100 pads of 10M took 5.7 s, not 0.13 s."""
        self.padded += max(chars, 0)
        if self.padded > MAX_PAD_CHARS:
            raise QueryRefused(
                f"{what} pads to more than {MAX_PAD_CHARS:,} characters, counting every pad and"
                " format() width of the query: Postgres cannot stop it while it pads"
            )

    def _check_attribute(self, field: str | None, *, whole_row_only: bool) -> None:
        if not field:
            return
        name = field.lower()
        if _REFUSED_XML.search(name) and name in self.functions.known:
            raise QueryRefused(_XML_REFUSED)
        if name in UNINTERRUPTIBLE | JSON_PARSERS | _PADDERS or name in ("repeat", "format"):
            # (x).f is f(x): never a literal
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


_XML_REFUSED = (
    "XML is not allowed here: Postgres parses it with libxml2, which no timeout can stop"
    " (the views hold no XML)"
)


def _computed_json(what: str) -> str:
    return (
        f"{what} must be a literal, a stored column, or a text built from literals (repeat(), ||)"
        f" of at most {MAX_PARSED_JSON_CHARS:,} characters, not another computed text: Postgres"
        " cannot stop its JSON parser once started"
    )


def _static_chars(node: object) -> int | None:
    """The most characters an expression's text can have, when the query alone fixes it:
    literals, casts of them, || of them, repeat() and pads with literal counts; else None."""
    if isinstance(node, ast.TypeCast):
        return _static_chars(node.arg)
    if isinstance(node, ast.A_Const):
        value = getattr(node, "val", None)
        text = getattr(value, "sval", None)
        if text is None:  # a number, a boolean, NULL: its text is short
            return 64
        return len(text)
    if isinstance(node, ast.A_Expr) and node.name and node.name[-1].sval == "||":
        parts = [_static_chars(n) for n in (node.lexpr, node.rexpr) if n is not None]
        return None if None in parts else sum(p for p in parts if p is not None)
    args = (node.args or ()) if isinstance(node, ast.FuncCall) else ()
    if isinstance(node, ast.FuncCall) and node.funcname and len(args) >= 2:
        name = node.funcname[-1].sval.lower()
        count = getattr(getattr(args[1], "val", None), "ival", None)
        if name == "repeat" and isinstance(count, int):
            base = _static_chars(args[0])
            return None if base is None else base * max(count, 0)
        if name in _PADDERS and isinstance(count, int):
            return max(count, 0)
    return None


def _format_widths(call: ast.FuncCall, qualified: str) -> list[int]:
    """format()'s widths: its template must be a literal, each width written in it."""
    template = (call.args or [None])[0]
    text = getattr(getattr(template, "val", None), "sval", None)
    if not isinstance(template, ast.A_Const) or not isinstance(text, str):
        raise QueryRefused(f"function {qualified}() takes a literal template here, not an expression")
    widths = [width for width, _ in _FORMAT_SPEC.findall(text) if width]
    if any(width.startswith("*") for width in widths):
        raise QueryRefused(
            f"function {qualified}() takes widths written in its template here, not * (an argument)"
        )
    return [int(width) for width in widths]


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
