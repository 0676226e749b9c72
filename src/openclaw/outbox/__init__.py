"""The durable outbox: observability rows and session mirrors on their way to Postgres."""

from openclaw.outbox.flusher import Flusher, Handler
from openclaw.outbox.spool import Entry, Spool

__all__ = ["Entry", "Flusher", "Handler", "Spool"]
