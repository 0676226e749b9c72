"""The durable local spool: rows on their way to Postgres.

A SQLite file in WAL mode (`$OPENCLAW_HOME/outbox/spool.db`). `append` returns once the
entry is committed to the WAL: from then on it survives a Postgres outage and a
`kill -9` of the process (not a power cut: synchronous=NORMAL, which keeps an append at
tens of microseconds). Entries leave the spool only after Postgres confirmed them;
entries Postgres refuses for good are moved to a `dead` table, so one bad row cannot
block the rest. Several processes may share one spool.

Each database has a spool of its own (see `openclaw.outbox.targets`): a `meta` table in
the file records which one, so that entries reach the database they were written for.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    seq           INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    error         TEXT NOT NULL,
    failed_at_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at_ms: int


def _now_ms() -> int:
    return int(time.time() * 1000)


class Spool:
    def __init__(self, path: Path | str, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.path = path = Path(path)
        self.max_entries = max_entries
        self.rejected = 0  # entries refused because the spool was full (a metric)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)

    def append(self, kind: str, payload: dict[str, Any]) -> bool:
        return self.append_many([(kind, payload)])

    def append_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> bool:
        """Store entries durably, in order. False (and nothing stored) if the spool is full."""
        rows = [
            (kind, orjson.dumps(payload).decode(), _now_ms())  # orjson: this is on the turn path
            for kind, payload in items
        ]
        with self._lock:
            if self._pending_upper_bound() + len(rows) > self.max_entries:
                self.rejected += len(rows)
                return False
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO entries (kind, payload, created_at_ms) VALUES (?, ?, ?)", rows
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:  # disk full, I/O error: refuse loudly, never crash the caller
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self.rejected += len(rows)
                log.error("outbox: %d entries refused, the spool cannot be written: %s", len(rows), exc)
                return False
        return True

    def _pending_upper_bound(self) -> int:
        # Two index probes instead of count(*): seq only grows, so the span bounds the count.
        low, high = self._conn.execute("SELECT min(seq), max(seq) FROM entries").fetchone()
        return 0 if low is None else high - low + 1

    def peek(self, limit: int) -> list[Entry]:
        """The oldest entries, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, kind, payload, created_at_ms FROM entries ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        # One parse for the whole batch: much cheaper than a parse per entry.
        payloads = orjson.loads("[" + ",".join(row[2] for row in rows) + "]") if rows else []
        return [
            Entry(seq, kind, payload, created)
            for (seq, kind, _, created), payload in zip(rows, payloads, strict=True)
        ]

    def remove(self, seqs: Iterable[int]) -> None:
        with self._lock:
            self._conn.executemany("DELETE FROM entries WHERE seq = ?", [(s,) for s in seqs])

    def remove_through(self, seq: int) -> None:
        """Remove every entry up to `seq`: one statement for a whole shipped batch (the
        flusher handles the oldest entries in order, so all of them are done)."""
        with self._lock:
            self._conn.execute("DELETE FROM entries WHERE seq <= ?", (seq,))

    def bury(self, entry: Entry, error: str) -> None:
        """Move an entry Postgres will never accept to the dead table."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "INSERT OR REPLACE INTO dead (seq, kind, payload, created_at_ms, error, failed_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.seq,
                    entry.kind,
                    orjson.dumps(entry.payload).decode(),
                    entry.created_at_ms,
                    error,
                    _now_ms(),
                ),
            )
            self._conn.execute("DELETE FROM entries WHERE seq = ?", (entry.seq,))
            self._conn.execute("COMMIT")

    def pending(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT count(*) FROM entries").fetchone()
        return int(count)

    def dead(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT count(*) FROM dead").fetchone()
        return int(count)

    def meta(self) -> dict[str, str]:
        """What the spool records about itself (e.g. the database its entries are for)."""
        with self._lock:
            rows = self._conn.execute("SELECT key, value FROM meta").fetchall()
        return {str(k): str(v) for k, v in rows}

    def record_meta(self, values: Mapping[str, str]) -> dict[str, str]:
        """Record the values not recorded yet (a value once set is kept); return all."""
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", list(values.items())
            )
        return self.meta()

    def prepend(
        self,
        entries: Iterable[tuple[int, str, str, int]],
        dead: Iterable[tuple[int, str, str, int, str, int]],
        meta: Mapping[str, str],
        *,
        last_seq: int,
    ) -> None:
        """Put entries (seq, kind, payload JSON, created_at_ms) and dead ones (the same plus
        error, failed_at_ms), whose seqs are at most `last_seq`, ahead of every entry of
        this spool, in the order of their seq, and set `meta`: one transaction. For entries
        adopted from another spool: they are older than the ones here and ship first."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                (low,) = self._conn.execute(
                    "SELECT min(s) FROM (SELECT min(seq) AS s FROM entries"
                    " UNION ALL SELECT min(seq) FROM dead)"
                ).fetchone()
                # Shift the given seqs below every seq used here (seqs may go negative).
                shift = min(1, 1 if low is None else low) - 1 - last_seq
                self._conn.executemany(
                    "INSERT INTO entries (seq, kind, payload, created_at_ms) VALUES (? + ?, ?, ?, ?)",
                    ((seq, shift, *rest) for seq, *rest in entries),
                )
                self._conn.executemany(
                    "INSERT INTO dead (seq, kind, payload, created_at_ms, error, failed_at_ms)"
                    " VALUES (? + ?, ?, ?, ?, ?, ?)",
                    ((seq, shift, *rest) for seq, *rest in dead),
                )
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items())
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()
