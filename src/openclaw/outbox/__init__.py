"""The durable outbox: observability rows and session mirrors on their way to Postgres."""

from openclaw.outbox.flusher import Flusher, Handler
from openclaw.outbox.spool import DeadEntry, Entry, Spool, SpoolStats
from openclaw.outbox.targets import (
    Adopted,
    OtherSpool,
    adopt_legacy_spool,
    configured_limits,
    open_spool,
    other_spools,
)

__all__ = [
    "Adopted",
    "DeadEntry",
    "Entry",
    "Flusher",
    "Handler",
    "OtherSpool",
    "Spool",
    "SpoolStats",
    "adopt_legacy_spool",
    "configured_limits",
    "open_spool",
    "other_spools",
]
