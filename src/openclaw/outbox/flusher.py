"""Ships spooled entries to Postgres in batches, in order, idempotently.

Each batch runs in one Postgres transaction; entries leave the spool only after it
committed. A replay after a crash between the commit and the removal is harmless because
every handler writes with a client-made key (ON CONFLICT DO NOTHING / a monotonic update).

What a failure means is decided by `classify` (SQLSTATE):
- Postgres unavailable (or read-only, or not migrated yet): the batch waits; the flusher
  tries again within a second, so it ships again soon after Postgres answers.
- a bad row: the batch is split in halves, each in a savepoint, until the rows Postgres
  refuses are found; only those are moved to `dead`, with their reason, and the rest ship
  in the same transaction.
- a bug (an exception that is not a database error) or a kind no handler knows: that kind
  is halted in this process (`halted`, shown by /health, /metrics and `openclaw outbox
  status`), its entries are kept, and so are the later entries of the same sessions; the
  other kinds flow. A halted kind is tried again every `halt_retry_s`.

Only one process flushes a spool at a time (an flock); the others just append.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from openclaw.db.database import Database
from openclaw.outbox.classify import Verdict, classify, describe
from openclaw.outbox.spool import Entry, Spool

log = logging.getLogger(__name__)

Handler = Callable[[AsyncConnection, list[dict[str, Any]]], Awaitable[None]]


def flush_lock_path(spool_path: Path) -> Path:
    """The file whose flock the process flushing a spool holds (earlier versions too)."""
    return spool_path.with_name(spool_path.name + ".flush.lock")


class _KindFailedError(Exception):
    """A handler failed with something that is not a database error: a bug for its kind."""

    def __init__(self, kind: str, cause: BaseException) -> None:
        super().__init__(kind)
        self.kind = kind
        self.cause = cause


@dataclass(frozen=True, slots=True)
class _Batch:
    locked_out: bool = False  # another process is flushing
    read: int = 0  # entries looked at
    shipped: int = 0  # entries that left the spool (shipped or moved to dead)


class Flusher:
    def __init__(
        self,
        spool: Spool,
        database: Database,
        handlers: Mapping[str, Handler],
        *,
        batch_size: int = 5000,
        interval_s: float = 0.5,
        max_backoff_s: float = 1.0,
        connect_timeout_s: float = 5.0,
        halt_retry_s: float = 60.0,
    ) -> None:
        self.spool = spool
        self.database = database
        self.handlers = dict(handlers)
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.halt_retry_s = halt_retry_s
        self.shipped = 0
        self.buried = 0
        self.last_error: str | None = None  # why Postgres cannot take the entries now
        self.halted: dict[str, str] = {}  # kind -> why it is not shipped (a bug, no handler)
        self._lock_path = flush_lock_path(spool.path)
        self._after: int | None = None  # the round's position: entries up to here were seen
        self._held_sessions: set[str] = set()  # sessions with an entry held back this round
        self._held_in_round = False
        self._revisit_at = 0.0
        self._ahead: tuple[int, asyncio.Future[list[Entry]]] | None = None  # (after, the batch read ahead)

    async def flush_once(self) -> int:
        """Ship one batch; return how many entries left the spool (0 if none or another
        process is flushing). Raises if Postgres cannot take them now (see `classify`)."""
        return (await self._flush_batch()).shipped

    async def _flush_batch(self) -> _Batch:
        with self._flush_lock() as locked:
            if not locked:
                return _Batch(locked_out=True)
            return await self._flush_locked()

    @contextlib.contextmanager
    def _flush_lock(self) -> Iterator[bool]:
        """The flock that makes one process the flusher of a spool. On a directory that
        cannot be written, the lock file may be missing: then no other process can be
        writing there either, and the rows held in memory ship without it."""
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            try:
                fd = os.open(self._lock_path, os.O_RDONLY)  # flock works on a read-only fd
            except OSError:
                yield True
                return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the flock

    async def _peek(self) -> list[Entry]:
        """The next batch: read ahead while the one before shipped, when it follows on."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == self._after:
            return await ahead[1]
        if ahead is not None:
            ahead[1].cancel()
        return await asyncio.to_thread(self.spool.peek, self.batch_size, after=self._after)

    async def _flush_locked(self) -> _Batch:
        entries = await self._peek()
        if not entries:
            self._end_round()
            return _Batch()
        to_ship = self._shippable(entries)
        if len(entries) == self.batch_size:  # more to come: read it while this batch ships
            after = entries[-1].seq
            self._ahead = (
                after,
                asyncio.ensure_future(asyncio.to_thread(self.spool.peek, self.batch_size, after=after)),
            )
        try:
            bad = await self._ship(to_ship)
        except _KindFailedError as exc:
            self._halt(exc.kind, f"a bug: {describe(exc.cause)}")
            return _Batch(read=len(entries))  # the same batch again, without that kind
        self.last_error = None
        bad_seqs = {entry.seq for entry, _ in bad}
        done = [e.seq for e in to_ship if e.seq not in bad_seqs]
        # First: what shipped is never sent again, whatever happens next. The rows leave the
        # disk while the next batch ships.
        self.spool.forget_shipped(done)
        for entry, reason in bad:
            log.error("outbox: %s entry %d set aside: %s", entry.kind, entry.seq, reason)
            await asyncio.to_thread(self.spool.bury, entry, reason)
        self.shipped += len(done)
        self.buried += len(bad)
        self._after = entries[-1].seq
        if len(entries) < self.batch_size:  # the end is near: the next round starts over
            self._end_round()
        return _Batch(read=len(entries), shipped=len(to_ship))

    def _shippable(self, entries: Sequence[Entry]) -> list[Entry]:
        """The entries to ship now: not of a halted kind, and not behind a held entry of
        their session (a session's writes land in order)."""
        chosen = []
        for entry in entries:
            if entry.kind not in self.handlers and entry.kind not in self.halted:
                self._halt(entry.kind, f"no handler for kind {entry.kind!r}: a newer openclaw's?")
            if entry.kind in self.halted or (entry.session_key in self._held_sessions):
                self._held_in_round = True
                if entry.session_key is not None:
                    self._held_sessions.add(entry.session_key)
                continue
            chosen.append(entry)
        return chosen

    def _end_round(self) -> None:
        """Every entry was looked at. Start again from the first, at once if nothing was
        held back, else once `halt_retry_s` has passed (trying the halted kinds again)."""
        if not self._held_in_round:
            self._after = None
            return
        if not self._revisit_at:
            self._revisit_at = time.monotonic() + self.halt_retry_s
            return
        if time.monotonic() >= self._revisit_at:
            self._after, self._revisit_at, self._held_in_round = None, 0.0, False
            self._held_sessions.clear()
            if self.halted:
                log.warning("outbox: trying the halted kinds again: %s", ", ".join(sorted(self.halted)))
            self.halted.clear()

    def _halt(self, kind: str, reason: str) -> None:
        if kind not in self.halted:
            log.error(
                "outbox: %s entries are not shipped (%s); they are kept, and so are the later writes"
                " of their sessions",
                kind,
                reason,
            )
        self.halted[kind] = reason

    async def _ship(self, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        """Ship in one transaction; return the entries Postgres refused, with the reason."""
        if not entries:
            return []
        async with self.database.connection(wait_s=self.connect_timeout_s) as conn, conn.transaction():
            return await self._ship_isolating(conn, entries)  # its halves are savepoints of this

    async def _ship_isolating(
        self, conn: AsyncConnection, entries: Sequence[Entry]
    ) -> list[tuple[Entry, str]]:
        try:
            async with conn.transaction():  # a savepoint: a refusal undoes only this part
                await self._apply(conn, entries)
        except _KindFailedError:
            raise
        except Exception as exc:  # classified, not swallowed: all but a refused row goes on up
            if classify(exc) is not Verdict.BAD_ROW:
                raise
            if len(entries) == 1:
                return [(entries[0], describe(exc))]
            middle = len(entries) // 2
            return await self._ship_isolating(conn, entries[:middle]) + await self._ship_isolating(
                conn, entries[middle:]
            )
        return []

    async def _apply(self, conn: AsyncConnection, entries: Sequence[Entry]) -> None:
        for kind, group in groupby(entries, key=lambda e: e.kind):
            try:
                await self.handlers[kind](conn, [e.payload for e in group])
            except Exception as exc:  # classified, not swallowed: a handler's bug marks its kind
                if classify(exc) is Verdict.BUG:
                    raise _KindFailedError(kind, exc) from exc
                raise

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Flush until nothing more can ship; False if Postgres could not take the entries
        or time ran out."""

        async def until_done() -> None:
            while True:
                batch = await self._flush_batch()
                if batch.locked_out:
                    await asyncio.sleep(0.05)  # another process holds the flush lock
                elif not batch.read:
                    await asyncio.to_thread(self.spool.sync)  # what shipped has left the disk
                    return  # the end of a round: everything that can ship has

        self._after = None  # from the first entry
        try:
            await asyncio.wait_for(self._synced_then(until_done()), timeout_s)
        except TimeoutError:
            self.last_error = self.last_error or "time ran out"
            return False
        except Exception as exc:  # a bug must not fail the caller's shutdown: logged, then False
            if classify(exc) is not Verdict.RETRY and not isinstance(exc, OSError):
                log.exception("outbox: flushing failed")
            self.last_error = describe(exc)
            return False
        return True

    async def _synced_then(self, work: Awaitable[None]) -> None:
        await asyncio.to_thread(self.spool.sync)  # what was handed over just before is in
        await work

    async def run(self, stop: asyncio.Event) -> None:
        """Flush until `stop` is set. While Postgres cannot take the entries, try again
        every `max_backoff_s` at most: soon after it answers, the entries flow again."""
        backoff = self.interval_s
        while not stop.is_set():
            try:
                batch = await self._flush_batch()
                if self.last_error is not None:
                    log.warning("outbox: Postgres takes entries again")
                self.last_error = None
                backoff = self.interval_s
            except Exception as exc:  # unavailable, the spool failing, or a bug (logged): keep going
                batch = _Batch()
                reason = describe(exc)
                if classify(exc) is not Verdict.RETRY and not isinstance(exc, OSError):
                    log.exception("outbox: flushing failed")
                elif self.last_error is None:  # once per outage, not once per try
                    log.warning(
                        "outbox: Postgres cannot take entries (%s); %d wait",
                        reason,
                        self.spool.stats().pending,
                    )
                self.last_error = reason
                backoff = min(backoff * 2, self.max_backoff_s)
            try:  # figures for /health: what other processes did too
                await asyncio.to_thread(self.spool.refresh)
            except Exception:  # a bug in the figures must not end the flushing loop
                log.exception("outbox: reading the spool's figures failed")
            if batch.read == self.batch_size and self.last_error is None:
                continue  # more waiting: no pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
