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
        return str(value)
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
