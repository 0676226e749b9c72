"""The LLM call log: every call, kept in memory for /logs and persisted through the outbox.

`record()` never waits on Postgres: the entry goes into a ring buffer and into the
durable spool (tens of microseconds), and the outbox flusher ships it to `llm_calls`,
idempotently by the entry's UUID.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass

from openclaw.db.records import to_payload
from openclaw.errors import ConfigError
from openclaw.llm.records import LLM_CALL, LlmCall
from openclaw.outbox import Spool

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 256


def configured_capacity(section: dict[str, object]) -> int:
    """`llm_log.capacity` of the gateway config: how many calls /logs keeps in memory."""
    value = section.get("capacity", DEFAULT_CAPACITY)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise ConfigError("llm_log.capacity must be a whole number from 1 to 1000000")
    return value


@dataclass(frozen=True, slots=True)
class LogStats:
    total_recorded: int
    buffered: int
    errors: int
    avg_latency_ms: float
    not_persisted: int  # refused by a full spool


class LlmLog:
    def __init__(
        self, spool: Spool | None, *, capacity: int = DEFAULT_CAPACITY, host: str | None = None
    ) -> None:
        self.spool = spool
        self.host = host
        self._entries: deque[LlmCall] = deque(maxlen=capacity)
        self._by_id: dict[uuid.UUID, LlmCall] = {}
        self._lock = threading.Lock()
        self._total = 0
        self._errors = 0
        self._latency_total = 0
        self.not_persisted = 0

    def record(self, call: LlmCall) -> None:
        if call.host is None:
            call.host = self.host
        with self._lock:
            if len(self._entries) == self._entries.maxlen:
                self._by_id.pop(self._entries[0].id, None)
            self._entries.append(call)
            self._by_id[call.id] = call
            self._total += 1
            self._errors += call.error is not None
            self._latency_total += call.latency_ms
        # Handed to the spool's writer thread: no I/O here, on the turn's path.
        if self.spool is not None and not self.spool.submit(LLM_CALL, to_payload(call)):
            self.not_persisted += 1  # the spool logs why (full), once a minute

    def recent(self, limit: int = 50) -> list[LlmCall]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._entries))[:limit]

    def get(self, call_id: uuid.UUID) -> LlmCall | None:
        with self._lock:
            return self._by_id.get(call_id)

    def stats(self) -> LogStats:
        with self._lock:
            avg = self._latency_total / self._total if self._total else 0.0
            return LogStats(self._total, len(self._entries), self._errors, round(avg, 1), self.not_persisted)
