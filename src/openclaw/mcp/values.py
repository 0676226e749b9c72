"""Database values as the MCP tools return them: every value Postgres can hold comes back
(none fails the whole answer), and none comes back unbounded.

Loaders (`register_loaders`): psycopg turns timestamps, dates and times into Python's
datetime types, which cannot hold `infinity`, `-infinity`, BC dates, years past 9999 or
`24:00:00`; one such value made the whole query fail. Those values come back as Postgres
prints them. Intervals come back in ISO 8601 (`P1M3DT4H`), as Postgres prints them with
`intervalstyle = iso_8601`: Python's timedelta would turn a month into 30 days.

Caps (`cap_value`, `cap_rows`): the curated tools' answers, whatever the tables hold (a
2 MB issue title once came back whole), are bounded per value, per list and per answer.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from psycopg import DataError
from psycopg.adapt import Buffer, Loader
from psycopg.pq import Format
from psycopg.types.string import TextLoader

from openclaw.jsonable import to_jsonable

if TYPE_CHECKING:
    from psycopg import AsyncConnection, AsyncCursor
    from psycopg.abc import AdaptContext

# What a curated answer holds at most. A text value is cut at MAX_VALUE_CHARS: the most
# that the write tools accept in one value (a description, set_context's JSON), so what
# they wrote reads back whole. Lists and objects show MAX_VALUE_ITEMS entries (the write
# tools take at most 200 files_changed), nesting MAX_DEPTH levels. An answer stops taking
# rows past MAX_ANSWER_CHARS of JSON and says `truncated`: a curated answer is a summary,
# and 200,000 characters is already some 50,000 tokens of the assistant's context.
MAX_VALUE_CHARS = 10_000
MAX_VALUE_ITEMS = 200
MAX_DEPTH = 32
MAX_ANSWER_CHARS = 200_000


_CUT_MARKER = re.compile(r"…\[(\d+) more characters\]\Z")


def cut_text(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`text`, or its first `limit` characters and how many more there were (the same
    marker as query's cut values). A text the server cut already (cut_sql) keeps its
    marker, and its count if it is cut again."""
    if len(text) <= limit:
        return text
    kept, more = len(text), 0
    if (marker := _CUT_MARKER.search(text)) is not None:
        kept, more = marker.start(), int(marker[1])
        if kept <= limit:
            return text
    return f"{text[:limit]}…[{kept + more - limit} more characters]"


def cut_sql(column: str, limit: int = MAX_VALUE_CHARS) -> str:
    """The SQL that cuts a text column on the server, with cut_text's marker: a long value
    is never sent whole. `column` is our own SQL, never an argument."""
    return (
        f"CASE WHEN length({column}) > {limit} THEN left({column}, {limit}) || '…['"
        f" || (length({column}) - {limit}) || ' more characters]' ELSE {column} END"
    )


# What JSON sends for more than the character itself: quotes and backslashes take two,
# the other control characters six (\u0001); counted so that a budget of characters is one
# of characters sent (100 chat messages of control characters once made 1.1 MB of answer).
_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def _json_chars(text: str) -> int:
    """How many characters `text` takes as a JSON string, quotes left out."""
    extra = 0
    for found in _ESCAPED.finditer(text):
        extra += 1 if found[0] in '"\\\b\f\n\r\t' else 5
    return len(text) + extra


def _chars_within(text: str, room: int) -> int:
    """How many of `text`'s first characters fit in `room` characters of JSON."""
    used = 0
    for i, char in enumerate(text):
        used += _json_chars(char)
        if used > room:
            return i
    return len(text)


class _Capper:
    """Caps values against one budget of characters, shared by every value of an answer:
    per-value caps alone multiply (200 keys of 200 texts of 10,000 characters each)."""

    def __init__(self, budget: int) -> None:
        self.left = budget

    def cap(self, value: Any, depth: int = 0) -> Any:
        # The common types first (this runs for every value of every answer), then one
        # level at a time: to_jsonable on the whole would recurse as deep as the value is
        # nested, and a JSON document may be nested thousands of levels deep.
        kind = type(value)
        if kind is str:
            room = max(0, min(MAX_VALUE_CHARS, self.left))
            cut = cut_text(value, room)
            sent = _json_chars(cut)
            if sent > room + 40:  # escapes: a control character is sent as 6 (\u0001)
                cut = cut_text(value, _chars_within(value, room))
                sent = _json_chars(cut)
            self.left -= sent + 2
            return cut
        if kind is dict:
            return self._object(value, depth)
        if kind is list or kind is tuple:
            return self._array(value, depth)
        if value is None or kind is bool or kind is int:
            self.left -= 5
            return value if kind is not int or abs(value) < 10**300 else str(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._object({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth)
        if isinstance(value, list | tuple | dict):  # subclasses
            return self.cap(dict(value) if isinstance(value, dict) else list(value), depth)
        converted = to_jsonable(value)  # a float, a date, a UUID...: a number or a text
        if type(converted) is str:
            return self.cap(converted, depth)
        self.left -= 25
        return converted

    def _array(self, value: list[Any] | tuple[Any, ...], depth: int) -> Any:
        if depth >= MAX_DEPTH:
            self.left -= 50
            return f"…[{len(value)} items nested deeper than {MAX_DEPTH} levels]"
        self.left -= 2
        items: list[Any] = []
        for i, item in enumerate(value):
            if i == MAX_VALUE_ITEMS or self.left <= 0:
                items.append(f"…[{len(value) - i} more items]")
                break
            items.append(self.cap(item, depth + 1))
        return items

    def _object(self, value: dict[Any, Any], depth: int) -> Any:
        if depth >= MAX_DEPTH:
            self.left -= 50
            return f"…[{len(value)} items nested deeper than {MAX_DEPTH} levels]"
        self.left -= 2
        capped: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i == MAX_VALUE_ITEMS or self.left <= 0:
                capped["…"] = f"{len(value) - i} more keys"
                break
            name = cut_text(str(key), 1_000)
            self.left -= len(name) + 4
            capped[name] = self.cap(item, depth + 1)
        return capped


def cap_value(value: Any, budget: int = MAX_ANSWER_CHARS) -> Any:
    """A value as JSON with long texts cut, long lists and objects shortened, nesting past
    MAX_DEPTH left out, and about `budget` characters in all (each cut says what is
    missing)."""
    return _Capper(budget).cap(value)


def cap_rows(rows: list[Any], budget: int = MAX_ANSWER_CHARS) -> tuple[list[Any], bool]:
    """The rows, capped, until they hold about `budget` characters of JSON; and whether
    some were left out. The first row is always kept (cut to fit): an answer is never
    empty because of its size alone."""
    capper = _Capper(budget)
    kept: list[Any] = []
    for row in rows:
        if kept and capper.left <= 0:
            return kept, True
        kept.append(capper.cap(row))
    return kept, False


def capped_answer(name: str, rows: list[Any]) -> dict[str, Any]:
    """A curated answer: `{name: rows, "truncated": whether rows were left out}`."""
    kept, truncated = cap_rows(rows)
    return {name: kept, "truncated": truncated}


# -- Loaders ----------------------------------------------------------------------------

# Types whose Python form cannot hold every value Postgres can: psycopg raises DataError
# for the dates and times, and Python's JSON parser a RecursionError for a document nested
# more than about a thousand levels deep (jsonb takes thousands more), a ValueError for a
# number of more than 4,300 digits.
_FALLIBLE_TYPES = ("timestamptz", "timestamp", "date", "time", "timetz", "json", "jsonb")


class _AsPrintedOnOverflow(Loader):
    """The loader of the type registered before (psycopg's, or a JSON parser of the
    caller's), or the text Postgres sent where Python cannot hold the value. Delegates,
    rather than subclasses, so that the C loaders of psycopg_binary keep doing the work."""

    base: type[Loader]

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        self._base = self.base(oid, context)

    def load(self, data: Buffer) -> Any:
        try:
            return self._base.load(data)
        except (DataError, RecursionError, ValueError):  # ValueError: an int past 4,300 digits
            return bytes(data).decode()


# Postgres's default output (intervalstyle = postgres): `1 year 2 mons 3 days 04:05:06.5`,
# each date field with its own sign, the time with one sign for all its fields.
_POSTGRES_INTERVAL = re.compile(
    r"(?:(?P<Y>[+-]?\d+) years? ?)?(?:(?P<M>[+-]?\d+) mons? ?)?(?:(?P<D>[+-]?\d+) days? ?)?"
    r"(?:(?P<sign>[+-])?(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?))?"
)


def iso_interval(text: str) -> str:
    """An interval in Postgres's default text form as ISO 8601, exactly as Postgres prints
    it with `intervalstyle = iso_8601` (`P-10M-3DT4H5M6.5S`, `PT0S`): months stay months.
    A form this does not know (another intervalstyle, `infinity`) is returned as it is."""
    found = _POSTGRES_INTERVAL.fullmatch(text)
    if not text or found is None:
        return text
    sign = "-" if found["sign"] == "-" else ""
    date = "".join(f"{int(found[f])}{f}" for f in ("Y", "M", "D") if found[f] and int(found[f]))
    time = ""
    if found["h"] is not None:
        whole, _, fraction = found["s"].partition(".")
        fraction = fraction.rstrip("0")
        seconds = f"{int(whole)}.{fraction}" if fraction else str(int(whole))
        parts = ((int(found["h"]), "H"), (int(found["m"]), "M"))
        time = "".join(f"{sign}{n}{unit}" for n, unit in parts if n)
        if seconds != "0":
            time += f"{sign}{seconds}S"
    if not date and not time:
        return "PT0S"
    return f"P{date}" + (f"T{time}" if time else "")


class _IsoIntervalLoader(Loader):
    """Intervals in ISO 8601 (iso_interval), from their text."""

    def load(self, data: Buffer) -> str:
        return iso_interval(bytes(data).decode())


def register_loaders(context: AsyncCursor[Any] | AsyncConnection) -> None:
    """On a cursor (or a connection, for every cursor it makes afterwards): timestamps,
    dates, times and JSON documents that Python cannot hold come back as the text Postgres
    sent, intervals in ISO 8601. Arrays and ranges of these types use these loaders too.
    Wraps the loaders registered before: call it after set_json_loads()."""
    adapters = context.adapters
    for name in _FALLIBLE_TYPES:
        info = adapters.types.get(name)
        assert info is not None  # built-in types, always known
        base = adapters.get_loader(info.oid, Format.TEXT)
        if base is None or issubclass(base, _AsPrintedOnOverflow):
            continue  # registered already (a pooled connection is configured once)
        loader = type(f"AsPrinted{name.title()}Loader", (_AsPrintedOnOverflow,), {"base": base})
        adapters.register_loader(info.oid, loader)
    interval = adapters.types.get("interval")
    assert interval is not None
    if adapters.get_loader(interval.oid, Format.TEXT) is not _IsoIntervalLoader:
        adapters.register_loader(interval.oid, _IsoIntervalLoader)
    for name in _RANGE_TYPES:
        info = adapters.types.get(name)
        if info is not None:
            adapters.register_loader(info.oid, TextLoader)


# Ranges as Postgres prints them (`[1,5)`, `(,)`, `{[1,3),[5,7)}`): psycopg's Range
# objects become Python's repr through JSON (`(None, None)` for an unbounded range).
_RANGE_TYPES = tuple(
    f"{base}{kind}"
    for base in ("int4", "int8", "num", "ts", "tstz", "date")
    for kind in ("range", "multirange")
)
