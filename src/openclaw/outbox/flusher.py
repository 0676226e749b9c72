"""Ships spooled entries to Postgres in batches, in order, idempotently.

Each batch runs in one Postgres transaction; entries leave the spool only after it
committed. A replay after a crash between the commit and the removal is harmless because
every handler writes with a client-made key (ON CONFLICT DO NOTHING / a monotonic
update). When Postgres refuses a batch for its content (not for being unreachable), the
entries are retried one by one and the ones refused again are moved aside, loudly.
Only one process flushes a spool at a time (an flock), the others just append.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout

from openclaw.db.database import Database
from openclaw.outbox.spool import Entry, Spool

log = logging.getLogger(__name__)

Handler = Callable[[AsyncConnection, list[dict[str, Any]]], Awaitable[None]]

# Reasons to keep the entries and try later: Postgres unreachable, or not migrated yet
# (the schema, or the rights on it, come once someone runs the migrations).
UNAVAILABLE = (
    psycopg.OperationalError,
    PoolTimeout,
    OSError,
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.InsufficientPrivilege,
)


def flush_lock_path(spool_path: Path) -> Path:
    """The file whose flock the process flushing a spool holds (earlier versions too)."""
    return spool_path.with_name(spool_path.name + ".flush.lock")


class Flusher:
    def __init__(
        self,
        spool: Spool,
        database: Database,
        handlers: Mapping[str, Handler],
        *,
        batch_size: int = 5000,
        interval_s: float = 0.5,
        max_backoff_s: float = 30.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.spool = spool
        self.database = database
        self.handlers = dict(handlers)
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.shipped = 0
        self.buried = 0
        self.last_error: str | None = None
        self._lock_path = flush_lock_path(spool.path)

    async def flush_once(self) -> int:
        """Ship one batch; return how many entries left the spool (0 if none or another
        process is flushing). Raises one of UNAVAILABLE if Postgres cannot be reached."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            entries = self.spool.peek(self.batch_size)
            known = [e for e in entries if e.kind in self.handlers]
            for entry in entries:
                if entry.kind not in self.handlers:
                    self._bury(entry, f"no handler for entry kind {entry.kind!r}")
            try:
                await self._ship(known)
            except UNAVAILABLE:
                raise
            except Exception:  # refused for its content (or a handler's bug): find which entry
                await self._ship_one_by_one(known)
                return len(entries)
            if entries:
                self.spool.remove_through(entries[-1].seq)  # shipped, or buried above
            self.shipped += len(known)
            return len(entries)
        finally:
            os.close(fd)  # releases the flock

    async def _ship(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        async with self.database.connection(wait_s=self.connect_timeout_s) as conn:
            for kind, group in groupby(entries, key=lambda e: e.kind):
                await self.handlers[kind](conn, [e.payload for e in group])

    async def _ship_one_by_one(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            try:
                await self._ship([entry])
            except UNAVAILABLE:
                raise
            except Exception as exc:
                self._bury(entry, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
                continue
            self.spool.remove([entry.seq])
            self.shipped += 1

    def _bury(self, entry: Entry, error: str) -> None:
        log.error("outbox: %s entry %d moved aside: %s", entry.kind, entry.seq, error)
        self.spool.bury(entry, error)
        self.buried += 1

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Flush until the spool is empty; False if Postgres was unreachable or time ran out."""

        async def until_empty() -> None:
            while self.spool.pending():
                if not await self.flush_once():
                    await asyncio.sleep(0.05)  # another process holds the flush lock

        try:
            await asyncio.wait_for(until_empty(), timeout_s)
        except (TimeoutError, *UNAVAILABLE) as exc:
            self.last_error = " ".join(str(exc).split()) or type(exc).__name__
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Flush until `stop` is set, backing off while Postgres is unreachable."""
        backoff = self.interval_s
        while not stop.is_set():
            try:
                shipped = await self.flush_once()
                self.last_error = None
                backoff = self.interval_s
            except Exception as exc:  # unreachable, or the spool itself failing (disk full): keep going
                shipped = 0
                self.last_error = " ".join(str(exc).split()) or type(exc).__name__
                log.warning(
                    "outbox: Postgres unreachable (%s); %d entries wait",
                    self.last_error,
                    self.spool.pending(),
                )
                backoff = min(backoff * 2, self.max_backoff_s)
            if shipped and shipped == self.batch_size:
                continue  # more waiting: no pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
