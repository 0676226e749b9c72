"""Records as outbox entries: a dataclass to the JSON the spool keeps, and back.

Each component owns its records (`llm.records.LlmCall`, `cron.records.CronExecution`,
`gateway.metrics.MetricsSnapshot`, the session entries of `sessions.mirror`), writes them
with `insert_batch`, and names the handler that ships its kind of entry (an
`OUTBOX_HANDLERS` mapping next to the record). The composition root, `openclaw.app`,
hands all of them to the flusher.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol, TypeVar, get_type_hints

from openclaw.db.sanitize import pg_value

R = TypeVar("R")


class Record(Protocol):
    """A row of a table that travels through the outbox: its columns, and its values in
    that order (as Postgres may store them: a record may clamp or flatten its fields)."""

    @classmethod
    def columns(cls) -> list[str]: ...

    def row(self) -> tuple[Any, ...]: ...


_FIELD_NAMES: dict[type, list[str]] = {}
_TYPED_FIELDS: dict[type, tuple[frozenset[str], frozenset[str]]] = {}


def field_names(record_type: type) -> list[str]:
    """A dataclass's fields, in order: the columns of a record that stores each as it is."""
    if record_type not in _FIELD_NAMES:
        _FIELD_NAMES[record_type] = [f.name for f in fields(record_type)]
    return _FIELD_NAMES[record_type]


def row_getter(record_type: type) -> Callable[[Any], tuple[Any, ...]]:
    """The fields' values in order. A shallow getter: dataclasses.astuple deep-copies every
    value, which alone costs more than the COPY it feeds."""
    getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*field_names(record_type))
    return getter


def _typed_fields(record_type: type) -> tuple[frozenset[str], frozenset[str]]:
    """The names of the UUID fields and of the datetime fields (JSON holds them as text)."""
    if record_type not in _TYPED_FIELDS:
        hints = get_type_hints(record_type)
        uuids = {name for name, hint in hints.items() if uuid.UUID in (hint, *getattr(hint, "__args__", ()))}
        times = {name for name, hint in hints.items() if datetime in (hint, *getattr(hint, "__args__", ()))}
        _TYPED_FIELDS[record_type] = (frozenset(uuids), frozenset(times))
    return _TYPED_FIELDS[record_type]


def to_payload(record: Record) -> dict[str, Any]:
    """The outbox entry of `record`: its row by column, with what Postgres would refuse made
    storable (openclaw.db.sanitize) here, once, so the flusher ships it as it is."""
    payload: dict[str, Any] = {}
    for name, value in zip(record.columns(), record.row(), strict=True):
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        payload[name] = pg_value(value)
    return payload


def from_payload(record_type: type[R], payload: dict[str, Any]) -> R:
    """The dataclass of an outbox entry whose keys are its fields (fields an older openclaw
    did not write get their defaults)."""
    uuids, times = _typed_fields(record_type)
    values = dict(payload)
    for name in uuids & values.keys():
        if values[name] is not None:
            values[name] = uuid.UUID(values[name])
    for name in times & values.keys():
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    return record_type(**values)
