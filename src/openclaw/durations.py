"""Durations as people type them: 30m, 24h, 7d."""

from __future__ import annotations

import re
from datetime import timedelta

from openclaw.errors import UsageError

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
# Every use looks back from now: further than this reaches no data, and far further is
# past what a date can hold (3000000d ran into an OverflowError, reported as a crash).
MAX_DURATION = timedelta(days=36_525)  # 100 years


class DurationTooLong(UsageError):
    """A well-formed duration past MAX_DURATION."""


def parse_duration(text: str, what: str = "--since") -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{what} {text!r}: give a number and a unit, e.g. 30m, 1h, 7d")
    # Compared before timedelta() is built, which overflows past 999,999,999 days; the
    # number is shown only when short (it is a tool's argument, echoed in the error).
    number = match[1]
    if len(number) > 12 or int(number) * _SECONDS[match[2]] > MAX_DURATION.total_seconds():
        shown = text.strip() if len(number) <= 20 else f"{number[:20]}…{match[2]}"
        raise DurationTooLong(f"{what} {shown}: at most {MAX_DURATION.days}d (100 years) back")
    return timedelta(seconds=int(number) * _SECONDS[match[2]])
