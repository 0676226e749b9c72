"""Database values as JSON: what `--json` prints and what the MCP tools return."""

from __future__ import annotations

import dataclasses
import math
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):  # numeric: an int when whole, else a float, else (NaN, huge) text
        if not value.is_finite() or abs(value.adjusted()) > 300:
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**300:
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # inet, ranges, and whatever else: their Postgres text form


def iso_duration(value: timedelta) -> str:
    """ISO 8601, as Postgres prints an interval with `intervalstyle = iso_8601` (`P1DT-1H`
    there; here `P33DT4H`, `PT-1S`): each field carries the sign. Not Python's str(),
    `-1 day, 23:59:59` for minus one second, which no client parses."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    days, rest = divmod(abs(micros), 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    time = "".join(f"{sign}{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    if seconds or fraction:
        time += f"{sign}{seconds}" + (f".{fraction:06d}".rstrip("0") if fraction else "") + "S"
    if not days and not time:
        return "PT0S"
    return "P" + (f"{sign}{days}D" if days else "") + (f"T{time}" if time else "")
