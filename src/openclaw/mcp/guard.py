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
from pglast.enums import A_Expr_Kind, SubLinkType
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
# Measured on PostgreSQL 15 (issue 12, the red team's second list), work done with no
# interrupt check once its input is made:
# - Geometry: path <-> path and polygon <-> polygon compare every segment with every other
#   (5,000 points a side ran 7.5 s past a 2 s deadline; 20,000 ignored pg_terminate_backend
#   for 90 s). The views hold no geometric value: the types are refused outright (casts,
#   typed literals, column definitions, every function taking or returning one, from the
#   catalog), which leaves their operators nothing to work on.
# - Containment: jsonb @> and <@ of arrays, ?| and ?&, array @>, <@ and && compare every
#   element with every other: 20,000 elements a side ran 0.4 to 1.7 s under a 0.1 s timeout,
#   jsonb @> of 25,000 3.6 s, a 10-element literal @> a jsonb_agg of 1M 0.45 s. Their
#   operands must have a size the query's text fixes (_Checker._fixed_size); so must the
#   arguments of the functions behind them, and both sides of jsonb - text[] (20,000 keys
#   against 20,000 elements: 0.57 s under a 0.1 s timeout).
# - Input functions of arrays, ranges and multiranges, like JSON's: a cast to int[] of 40M
#   characters ran 0.5 s under a 0.1 s timeout (2.5 s per 100M); a multirange of 700,000
#   ranges 4.2 s and 4 GB. Parsed from literals and stored columns only, as JSON.
# - Bulk: one row's expressions run with no check between them, and many functions work
#   through their whole input at once (per 100M: array_fill 1 s, array_remove 0.5 s,
#   upper() 1.25 s, quote_literal 0.4-0.5 s, md5 0.1-0.25 s, and the result's own length()
#   and left() when it is sent; repeat() itself is stopped by the timeout). What the
#   query's text makes (repeat()'s width times its count, pads, format() widths,
#   array_fill()'s elements) is summed per query, and each function or operator going
#   through more than MIN_CHARGED_CHARS of it counts it PASS_UNITS times again, up to
#   MAX_GENERATED_UNITS.
GEOMETRIC_TYPES = frozenset({"point", "line", "lseg", "box", "path", "polygon", "circle"})
# Types whose input function parses a whole text at once, as JSON's (and arrays of any type).
PARSED_TYPES = frozenset(
    {
        "int4range",
        "int8range",
        "numrange",
        "tsrange",
        "tstzrange",
        "daterange",
        "int4multirange",
        "int8multirange",
        "nummultirange",
        "tsmultirange",
        "tstzmultirange",
        "datemultirange",
    }
)
# The budget: 200M characters is what `repeat('x', 200000000)` makes, which the server cuts
# to 4,000 (its length() and left() then take ~0.25 s each, uninterrupted).
MAX_GENERATED_UNITS = 200_000_000
ELEMENT_UNITS = 10  # an element of array_fill(): 1 s per 100M to make, 0.5 s to array_remove
# A function or operator that goes through generated text counts it again, this many times:
# upper() takes 1.25 s per 100M characters, quote_literal() 0.5 s, md5() 0.1-0.25 s, against
# 0.15 s for the length() the server applies anyway.
PASS_UNITS = 8
UNKNOWN_WIDTH_CHARS = 100_000  # repeat() of a column (a tool output may be long): per copy
MAX_CONTAINED_LITERALS = 10_000_000  # characters x characters of two literals compared
# A generated text is charged again at each function or operator that goes through it,
# but for those the timeout stops (regular expressions, replace(), string_to_array(),
# to_tsvector()) and those that read little of it or fast (length: 0.05 s per 40M).
MIN_CHARGED_CHARS = 1_000_000
_STOPPABLE_PASSES = frozenset(
    {
        "regexp_match",
        "regexp_matches",
        "regexp_replace",
        "regexp_split_to_array",
        "regexp_split_to_table",
        "regexp_count",
        "regexp_instr",
        "regexp_like",
        "regexp_substr",
        "substring",
        "replace",
        "string_to_array",
        "string_to_table",
        "to_tsvector",
        "length",
        "char_length",
        "character_length",
        "octet_length",
        "bit_length",
        "left",
        "right",
        "substr",
        "strpos",
        "position",
        "starts_with",
        "array_length",
        "cardinality",
    }
)
_GENERATORS = frozenset({"repeat", "lpad", "rpad", "array_fill"})  # counted as they make it
_REGEX_OPERATORS = frozenset({"~", "~*", "!~", "!~*", "~~", "~~*", "!~~", "!~~*"})
_OP_KINDS = (A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_OP_ANY, A_Expr_Kind.AEXPR_OP_ALL)
# The functions behind those operators, which can be called by name, and jsonb - text[].
_CONTAINMENT_FUNCTIONS = frozenset(
    {
        "arraycontains",
        "arraycontained",
        "arrayoverlap",
        "jsonb_contains",
        "jsonb_contained",
        "jsonb_exists_any",
        "jsonb_exists_all",
        "jsonb_delete",
    }
)
_CONTAINMENT_OPERATORS = frozenset({"@>", "<@", "&&", "?|", "?&"})
# Calls whose result holds as many elements as the call has arguments, whatever they are:
# an operand of a containment operator may be built with them.
_FIXED_SIZE_CALLS = frozenset(
    {
        "jsonb_build_array",
        "jsonb_build_object",
        "json_build_array",
        "json_build_object",
        "to_jsonb",
        "to_json",
        "lower",
        "upper",
        "btrim",
        "ltrim",
        "rtrim",
        "now",
        "date_trunc",
        "int4range",
        "int8range",
        "numrange",
        "tsrange",
        "tstzrange",
        "daterange",
    }
)
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
    # names whose every overload takes or returns a geometric type: refused
    geometric: frozenset[str] = frozenset()
    # names whose every overload returns an array (converted element by element when cast)
    array_valued: frozenset[str] = frozenset()
    # names of type input functions (an argument of type cstring): literals only
    input_functions: frozenset[str] = frozenset()


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
    try:
        _Checker(functions).check(statement)
    except RecursionError:  # the checks that follow an expression down (sizes, bulk)
        raise QueryRefused("the query nests its expressions too deeply to be checked") from None
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
        self.generated = 0  # units of bulk the query's text makes (MAX_GENERATED_UNITS)
        # Containment operands read from columns: refused if the query computes them.
        self.contained_columns: list[tuple[str, ...]] = []
        self.from_functions: list[ast.RangeFunction] = []
        # Calls and operators that go through their input at once, charged at the end with
        # the bulk of their operands; the output columns of nested SELECTs, by name.
        self.passes: list[ast.FuncCall | ast.A_Expr] = []
        self.outputs: list[tuple[str, object]] = []
        self.named_bulk: dict[str, int] = {}
        self.bulk_seen: dict[int, int] = {}  # id(node): its bulk, once the names are known

    def check(self, statement: ast.Node) -> None:
        self.root = statement.query if isinstance(statement, ast.ExplainStmt) else statement
        self(statement)
        self._check_parsed_columns()
        self._check_contained_columns()
        self._charge_passes()
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
            self.passes.append(node)
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
            elif names and _parsed_type(node.typeName):
                array = bool(node.typeName and _is_array(node.typeName))
                what = "an array type" if array else names[-1]
                if not (array and names[-1].lstrip("_") not in PARSED_TYPES and self._array_valued(node.arg)):
                    self._check_parsed(node.arg, f"a cast to {what}", parser="input function")
        elif isinstance(node, ast.TypeName):
            names = [n.sval.lower() for n in node.names or ()]
            if names and (names[-1] in GEOMETRIC_TYPES or names[-1].lstrip("_") in GEOMETRIC_TYPES):
                raise QueryRefused(_GEOMETRIC_REFUSED)
            if names and names[-1].lstrip("_") == "xml":
                raise QueryRefused(_XML_REFUSED)
        elif isinstance(node, ast.ColumnDef) and node.typeName is not None:
            # `AS x(a int4multirange)` after jsonb_to_record() parses a JSON string as the type
            names = [n.sval.lower() for n in node.typeName.names or ()]
            if names and names[-1].lstrip("_") in PARSED_TYPES:
                raise QueryRefused(
                    f"a column definition of type {names[-1]} is not allowed: its input function"
                    " would parse a computed text, which Postgres cannot stop"
                )
        elif isinstance(node, ast.RangeSubselect) and node.alias is not None:
            self.computed |= {str(c.sval).lower() for c in node.alias.colnames or ()}
            self._note_aliases(node.alias.colnames, node.subquery)
        elif isinstance(node, ast.CommonTableExpr):
            self.computed |= {str(c.sval).lower() for c in node.aliascolnames or ()}
            self._note_aliases(node.aliascolnames, node.ctequery)
        elif isinstance(node, ast.A_Expr) and node.lexpr is not None:
            self.passes.append(node)
            operator = node.name[-1].sval if node.name else ""
            if operator == "-" and any(self._array_like(o) for o in (node.lexpr, node.rexpr)):
                operator = "- (jsonb minus keys)"  # jsonb - text[]: each key against each
            if operator in _CONTAINMENT_OPERATORS | {"- (jsonb minus keys)"} and node.kind in _OP_KINDS:
                before = len(self.contained_columns)
                for operand in (node.lexpr, node.rexpr):
                    self._check_contained(operand, operator)
                sizes = _literal_chars(node.lexpr) * _literal_chars(node.rexpr)
                if len(self.contained_columns) == before and sizes > MAX_CONTAINED_LITERALS:
                    # two literals, each at most MAX_SQL_CHARS: 4,500 jsonb elements a side, 0.63 s
                    raise QueryRefused(
                        f"{operator} of two literals this long is not allowed (the product of their"
                        f" lengths is over {MAX_CONTAINED_LITERALS:,}): Postgres compares every"
                        " element with every other and cannot stop it"
                    )
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
            self.from_functions.append(node)
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
            self._note_output(target)
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

    def _note_aliases(self, names: object, select: object) -> None:
        """`(SELECT ...) AS s(a, b)`, `WITH w(a, b)`: the columns renamed by position."""
        while isinstance(select, ast.SelectStmt) and select.larg is not None:
            select = select.larg
        targets = select.targetList or () if isinstance(select, ast.SelectStmt) else ()
        for alias, target in zip(names or (), targets, strict=False):  # type: ignore[call-overload]
            if isinstance(target, ast.ResTarget):
                self.outputs.append((str(alias.sval).lower(), target.val))

    def _note_output(self, target: ast.ResTarget) -> None:
        value = target.val
        while isinstance(value, ast.TypeCast):
            value = value.arg
        name = target.name
        if not name and isinstance(value, ast.ColumnRef) and value.fields:
            name = getattr(value.fields[-1], "sval", None)
        if not name and isinstance(value, ast.FuncCall) and value.funcname:
            name = value.funcname[-1].sval
        self.outputs.append(((name or "?column?").lower(), target.val))

    def _bulk(self, root: object) -> int:
        """The characters of generated text an expression carries (the query's own literals
        and what repeat(), pads and array_fill() make of them, through any function or
        operator, or a column of a nested SELECT that holds it); stored values count 0.
        Worked out with a stack, not recursion: expressions may nest thousands deep."""
        stack: list[tuple[object, bool]] = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in self.bulk_seen:
                continue
            own, parts = self._bulk_parts(node)
            pending = [p for p in parts if id(p) not in self.bulk_seen]
            if pending and not ready:
                stack.append((node, True))
                stack.extend((p, False) for p in pending)
            else:
                self.bulk_seen[id(node)] = own + sum(self.bulk_seen.get(id(p), 0) for p in parts)
        return self.bulk_seen[id(root)]

    def _bulk_parts(self, node: object) -> tuple[int, list[object]]:
        """A node's own bulk, and the nodes whose bulk it carries too."""
        if isinstance(node, ast.A_Const):
            return len(str(getattr(getattr(node, "val", None), "sval", None) or "")), []
        if isinstance(node, ast.TypeCast):
            return 0, [node.arg]
        if isinstance(node, ast.ColumnRef):
            last = (node.fields or (None,))[-1]
            return self.named_bulk.get(str(getattr(last, "sval", "")).lower(), 0), []
        if isinstance(node, ast.SubLink) and isinstance(node.subselect, ast.SelectStmt):
            targets = node.subselect.targetList or ()
            return 0, [t.val for t in targets if isinstance(t, ast.ResTarget)]
        if isinstance(node, ast.A_Expr):
            return 0, [o for o in (node.lexpr, node.rexpr) if o is not None]
        if isinstance(node, ast.A_ArrayExpr):
            return 0, list(node.elements or ())
        if isinstance(node, ast.FuncCall) and node.funcname:
            name = node.funcname[-1].sval.lower()
            args = list(node.args or ())
            count = _literal_int(args[1]) if len(args) >= 2 else None
            if name == "repeat" and count is not None:
                width = _static_chars(args[0])
                return (UNKNOWN_WIDTH_CHARS if width is None else width) * max(count, 0), []
            if name in _PADDERS and count is not None:
                return max(count, 0), args[2:]
            if name == "array_fill" and len(args) >= 2:
                return _fill_units(args[0], _literal_dims(args[1]) or [0]), []
            return 0, args
        return 0, []

    def _charge_passes(self) -> None:
        """Each function or operator that goes through a generated bulk (over
        MIN_CHARGED_CHARS) counts it again against the query's budget: upper() of 40M
        characters took 0.5 s, and nothing stops it; a column of a nested SELECT counts at
        every reference."""
        for _ in range(4):  # a column of a column of a nested SELECT...
            for name, value in self.outputs:
                self.named_bulk[name] = max(self.named_bulk.get(name, 0), self._bulk(value))
            self.bulk_seen.clear()
        for node in self.passes:
            if isinstance(node, ast.FuncCall):
                name = node.funcname[-1].sval.lower() if node.funcname else ""
                args = list(node.args or ())
                if name in _STOPPABLE_PASSES or name in _GENERATORS:
                    continue
                what = f"function {name}()"
            else:
                name = node.name[-1].sval if node.name else ""
                if node.kind != A_Expr_Kind.AEXPR_OP or name in _REGEX_OPERATORS:
                    continue
                args = [o for o in (node.lexpr, node.rexpr) if o is not None]
                what = f"operator {name}"
            carried = sum(self._bulk(a) for a in args)
            if carried > MIN_CHARGED_CHARS:
                self._generate(carried * PASS_UNITS, f"{what}, going through a generated text,")

    def _check_parsed(self, node: object, what: str, parser: str = "JSON parser") -> None:
        """The text a JSON parser (or an array's, range's, multirange's input function) is
        given: a literal, or a column (cast or not), which is checked once the whole query
        is seen. ARRAY[...] cast to an array type: each element is cast."""
        size = _static_chars(node)
        if size is not None and size <= MAX_PARSED_JSON_CHARS:
            return  # literals, or text built from them to a size known here
        while isinstance(node, ast.TypeCast):
            node = node.arg
        if isinstance(node, ast.A_ArrayExpr) and parser != "JSON parser":
            for element in node.elements or ():
                self._check_parsed(element, what, parser)
            return
        fields = node.fields if isinstance(node, ast.ColumnRef) else None
        last = fields[-1] if fields else None
        if isinstance(last, ast.String):
            self.parsed_columns.append(last.sval or "")
            return
        raise QueryRefused(_computed_json(what, parser))

    def _array_valued(self, node: object) -> bool:
        """An array (not a text), which a cast to another array type converts element by
        element: ARRAY(SELECT ...), or a call of a function that returns arrays only."""
        while isinstance(node, ast.TypeCast):
            node = node.arg
        if isinstance(node, ast.SubLink):
            return node.subLinkType == SubLinkType.ARRAY_SUBLINK
        parts = (node.funcname or ()) if isinstance(node, ast.FuncCall) else ()
        return bool(parts) and parts[-1].sval.lower() in self.functions.array_valued

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
        if name in self.functions.input_functions and not all(_bounded_literal(a) for a in call.args or ()):
            raise QueryRefused(
                f"function {qualified}() is a type's input function: it may parse a text literal of at"
                f" most {MAX_PARSED_LITERAL_CHARS} characters only (write a cast), since Postgres"
                " cannot stop it once started"
            )
        if name in GEOMETRIC_TYPES or name in self.functions.geometric:
            raise QueryRefused(_GEOMETRIC_REFUSED)
        if name in _CONTAINMENT_FUNCTIONS:
            for arg in call.args or ():
                self._check_contained(arg, f"function {qualified}()", "each argument of")
        if name in _PADDERS:
            length = (call.args or [None, None])[1] if len(call.args or ()) >= 2 else None
            value = getattr(length, "val", None)
            if not isinstance(value, ast.Integer):
                raise QueryRefused(f"function {qualified}() takes a whole-number literal length here")
            self._pad(value.ival or 0, f"function {qualified}()")
            self._generate(value.ival or 0, f"function {qualified}()")
        if name == "format":
            for width in _format_widths(call, qualified):
                self._pad(width, f"function {qualified}()")
                self._generate(width, f"function {qualified}()")
        if name == "repeat":
            count = (call.args or [None, None])[-1]
            value = getattr(count, "val", None)
            if len(call.args or ()) != 2 or not isinstance(value, ast.Integer):
                raise QueryRefused(
                    "function repeat() takes a whole-number literal count here, not an expression"
                )
            if (value.ival or 0) > MAX_REPEAT_COUNT:
                raise QueryRefused(f"function repeat() may repeat at most {MAX_REPEAT_COUNT:,} times")
            base = _static_chars((call.args or [None])[0])
            width = UNKNOWN_WIDTH_CHARS if base is None else base
            self._generate(width * max(value.ival or 0, 0), "function repeat()")
        if name == "array_fill":
            args = call.args or ()
            dims = _literal_dims(args[1]) if len(args) >= 2 else None
            if dims is None:
                raise QueryRefused(
                    "function array_fill() takes its dimensions as ARRAY[...] of whole-number literals here"
                )
            self._generate(_fill_units(args[0], dims), "function array_fill()")
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

    def _generate(self, units: int, what: str) -> None:
        """Count what the query's text makes against its budget: each function goes through
        its whole input with no interrupt check, and one row's expressions run together."""
        self.generated += max(units, 0)
        if self.generated > MAX_GENERATED_UNITS:
            raise QueryRefused(
                f"{what} makes more than the query's budget of {MAX_GENERATED_UNITS:,} characters"
                f" (an array element counts {ELEMENT_UNITS} and its width; a function or operator"
                f" going through a generated text counts it {PASS_UNITS} times again), counting every"
                " repeat(), pad, format() width and array_fill() of the query: Postgres cannot stop"
                " the functions that go through it"
            )

    def _check_contained(self, node: object, operator: str, each: str = "each side of") -> None:
        if not self._fixed_size(node):
            raise QueryRefused(
                f"{each} {operator} must have a size the query's text fixes: a literal, a"
                " stored column, ARRAY[...] or jsonb_build_array/object() of such, cast or not; not a"
                " subquery, an aggregate or another computed array or document: Postgres compares"
                " every element with every other and cannot stop it"
            )

    def _array_like(self, node: object) -> bool:
        """An expression that is an array by its form: ARRAY[...], ARRAY(SELECT ...), a call
        of a function that returns arrays only, or a subquery selecting one."""
        while isinstance(node, ast.TypeCast):
            if node.typeName is not None and _is_array(node.typeName):
                return True
            node = node.arg
        if isinstance(node, ast.A_ArrayExpr):
            return True
        if isinstance(node, ast.SubLink) and isinstance(node.subselect, ast.SelectStmt):
            targets = node.subselect.targetList or ()
            return node.subLinkType == SubLinkType.ARRAY_SUBLINK or any(
                isinstance(t, ast.ResTarget) and self._array_like(t.val) for t in targets
            )
        return self._array_valued(node)

    def _fixed_size(self, node: object) -> bool:
        """An operand of a containment operator whose element count the query's text fixes
        (its columns are recorded, checked once the computed names are known)."""
        if isinstance(node, ast.A_Const | ast.ParamRef | ast.SQLValueFunction):
            return True
        if isinstance(node, ast.TypeCast):
            return self._fixed_size(node.arg)
        if isinstance(node, ast.ColumnRef):
            fields = tuple(str(getattr(f, "sval", "*")).lower() for f in node.fields or ())
            self.contained_columns.append(fields)
            return True
        if isinstance(node, ast.A_ArrayExpr):
            return all(self._fixed_size(e) for e in node.elements or ())
        if isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_OP:
            return all(self._fixed_size(o) for o in (node.lexpr, node.rexpr) if o is not None)
        if isinstance(node, ast.FuncCall) and node.funcname and node.over is None:
            name = node.funcname[-1].sval.lower()
            if name in UNINTERRUPTIBLE:  # a tsquery, its text checked as any call's
                return True
            return name in _FIXED_SIZE_CALLS and all(self._fixed_size(a) for a in node.args or ())
        return False

    def _check_contained_columns(self) -> None:
        """Columns compared by containment: refused if the query computes them (a subquery's,
        a CTE's, or a function's in FROM whose arguments are no fixed-size values)."""
        if not self.contained_columns:
            return
        computed = set(self.computed)
        bulky = False
        for item in self.from_functions:
            calls = [f[0] for f in item.functions or () if f]
            alias = item.alias
            names = {str(alias.aliasname).lower()} if alias else set()
            names |= {str(c.sval).lower() for c in (alias.colnames or () if alias else ())}
            calls_ = [c for c in calls if isinstance(c, ast.FuncCall)]
            if len(calls_) == len(calls) and all(self._fixed_size(a) for c in calls_ for a in c.args or ()):
                computed -= names  # its rows come from stored values or literals
            else:
                bulky = True
                computed |= names | {c.funcname[-1].sval.lower() for c in calls_ if c.funcname}
        while True:
            more = {alias for alias, source in self.renamed if source in computed} - computed
            if not more:
                break
            computed |= more
        for fields in self.contained_columns:
            if any(f in computed for f in fields) or (bulky and len(fields) == 1):
                raise QueryRefused(
                    f"{'.'.join(fields)} is computed by the query: a containment operator compares it"
                    " element by element with the other side, which Postgres cannot stop; compare"
                    " stored columns and literals"
                )

    def _check_attribute(self, field: str | None, *, whole_row_only: bool) -> None:
        if not field:
            return
        name = field.lower()
        if _REFUSED_XML.search(name) and name in self.functions.known:
            raise QueryRefused(_XML_REFUSED)
        if name in GEOMETRIC_TYPES or name in self.functions.geometric:
            raise QueryRefused(_GEOMETRIC_REFUSED)
        if name in self.functions.input_functions:
            raise QueryRefused(f".{field} calls the input function {name}() on a value that is no literal")
        if name in UNINTERRUPTIBLE | JSON_PARSERS | _PADDERS or name in ("repeat", "format", "array_fill"):
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


def _computed_json(what: str, parser: str = "JSON parser") -> str:
    return (
        f"{what} must be a literal, a stored column, or a text built from literals (repeat(), ||)"
        f" of at most {MAX_PARSED_JSON_CHARS:,} characters, not another computed text: Postgres"
        f" cannot stop its {parser} once started"
    )


_GEOMETRIC_REFUSED = (
    "geometric types (point, line, lseg, box, path, polygon, circle) are not allowed here: their"
    " distances and containment take quadratic time that no timeout stops (the views hold none)"
)


def _is_array(type_name: ast.TypeName) -> bool:
    names = [n.sval.lower() for n in type_name.names or ()]
    return bool(type_name.arrayBounds) or bool(names and names[-1].startswith("_"))


def _parsed_type(type_name: ast.TypeName | None) -> bool:
    """An array, range or multirange type: its input function parses a whole text at once."""
    if type_name is None:
        return False
    names = [n.sval.lower() for n in type_name.names or ()]
    return _is_array(type_name) or bool(names and names[-1] in PARSED_TYPES)


def _literal_int(node: object) -> int | None:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    value = getattr(node, "val", None)
    return value.ival if isinstance(value, ast.Integer) else None


def _literal_chars(node: object) -> int:
    """The characters of the literals in an expression (at least 1)."""
    total = 1
    nodes = [node]
    while nodes:
        item = nodes.pop()
        if isinstance(item, ast.A_Const):
            total += len(str(getattr(getattr(item, "val", None), "sval", None) or ""))
        elif isinstance(item, ast.Node):
            nodes.extend(getattr(item, name) for name in item)
        elif isinstance(item, tuple | list):
            nodes.extend(item)
    return total


def _fill_units(value: object, dims: list[int]) -> int:
    """What array_fill(value, dims) makes: ELEMENT_UNITS and the value's width per element."""
    elements = 1
    for dim in dims:
        elements *= max(dim, 0)
    while isinstance(value, ast.TypeCast):
        value = value.arg
    constant = getattr(value, "val", None) if isinstance(value, ast.A_Const) else None
    if isinstance(value, ast.A_Const):
        width = len(str(getattr(constant, "sval", None) or getattr(constant, "ival", None) or ""))
    else:
        width = _static_chars(value) or UNKNOWN_WIDTH_CHARS
    return elements * (ELEMENT_UNITS + width)


def _literal_dims(node: object) -> list[int] | None:
    """array_fill()'s dimensions: ARRAY[n, ...] of integer literals, or a literal '{n,...}'."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if isinstance(node, ast.A_ArrayExpr):
        dims = [_literal_int(e) for e in node.elements or ()]
        return None if None in dims else [d or 0 for d in dims]
    text = getattr(getattr(node, "val", None), "sval", None)
    if isinstance(text, str) and re.fullmatch(r"\s*\{\s*\d+(\s*,\s*\d+)*\s*\}\s*", text):
        return [int(d) for d in re.findall(r"\d+", text)]
    return None


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
