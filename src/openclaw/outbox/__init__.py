"""The durable outbox: observability rows and session mirrors on their way to Postgres."""

from openclaw.outbox.flusher import Flusher, Handler
from openclaw.outbox.spool import Entry, Spool
from openclaw.outbox.targets import Adopted, OtherSpool, adopt_legacy_spool, open_spool, other_spools

__all__ = [
    "Adopted",
    "Entry",
    "Flusher",
    "Handler",
    "OtherSpool",
    "Spool",
    "adopt_legacy_spool",
    "open_spool",
    "other_spools",
]
