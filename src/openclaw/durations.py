"""Durations as people type them: 30m, 24h, 7d."""

from __future__ import annotations

import re
from datetime import timedelta

from openclaw.errors import UsageError

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, what: str = "--since") -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{what} {text!r}: give a number and a unit, e.g. 30m, 1h, 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})
