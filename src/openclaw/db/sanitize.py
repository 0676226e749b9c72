"""Values PostgreSQL refuses, made storable.

Text may not contain NUL characters (chat text and model output sometimes do), jsonb may
not contain the \\u0000 escape, and INT columns hold 32 bits. One such value would make a
whole batch fail, so writers pass values through here: NUL becomes U+FFFD, integers are
clamped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REPLACEMENT = "\ufffd"
INT32 = (-(2**31), 2**31 - 1)
INT16 = (-(2**15), 2**15 - 1)


def pg_text(value: str | None) -> str | None:
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", REPLACEMENT)


def pg_json_text(value: str | None) -> str | None:
    """JSON text for a jsonb column."""
    if value is None or ("\\u0000" not in value and "\x00" not in value):
        return value
    return value.replace("\\u0000", "\\ufffd").replace("\x00", REPLACEMENT)


def clamp(value: int | None, bounds: tuple[int, int] = INT32) -> int | None:
    if value is None:
        return None
    return max(bounds[0], min(bounds[1], value))


def pg_value(value: Any) -> Any:
    """A row value with NULs replaced in text and in lists of text."""
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, list):
        return [pg_text(v) if isinstance(v, str) else v for v in value]
    return value


def pg_row(row: Sequence[Any]) -> Sequence[Any]:
    """`row`, or a cleaned copy if a text value holds a NUL. The check is one loop without
    calls: the flusher and the importer run it for every row."""
    for value in row:
        kind = type(value)
        if (kind is str and "\x00" in value) or (
            kind is list and any(type(v) is str and "\x00" in v for v in value)
        ):
            return tuple(map(pg_value, row))
    return row
