"""The durable local spool: rows on their way to Postgres.

A SQLite file in WAL mode (`$OPENCLAW_HOME/outbox/spool-<hash>.db`, see `targets`).

**One writer thread per process.** Every write (appends, removals, moves to `dead`) goes
through it, so no SQLite I/O ever runs on the event loop. Appends that arrive together are
committed in one transaction (group commit), so the cost of a commit is paid per batch,
not per row. Three ways to append:

- `submit()` hands the entry over and returns at once: for the turn path's observability
  rows (LLM calls), committed within milliseconds. A `kill -9` in that window may lose
  the newest of them; nothing else does.
- `await put()` returns once the entry is committed (or, see below, held): for writes a
  user was told are kept (session writes during an outage, cron runs, snapshots).
- `append()` does the same for code that is not async (the CLI, tests): it blocks.

Once committed, an entry survives a Postgres outage and a `kill -9` of the process (not a
power cut: synchronous=NORMAL). Entries leave the spool only after Postgres confirmed them;
the ones Postgres refuses for what they hold are moved to `dead` with the reason, where a
person can look at them and requeue them (`openclaw outbox`). Several processes may share
one spool.

**Counting is O(1).** A `counters` table holds the number of entries and of dead ones,
kept by triggers (so every writer keeps it true, an earlier openclaw's too); `stats()`
reads a copy in memory that the writer thread refreshes after each commit (two
primary-key lookups), and `refresh()` re-reads it for what other processes did. Nothing
scans the table but the first open of an earlier version's file, which counts it once.

**A disk that cannot be written** (full, read-only, gone) is a state, not a crash: the
spool opens anyway, appends go to a bounded list in memory (`memory_entries`, counted
in `stats().held_in_memory`), which the flusher ships from memory while Postgres answers,
and the writer tries the disk again every second, moving what is held there, in order.
Beyond the bound, entries are refused and counted. When a shipped entry cannot be removed
from a full disk, it is remembered as shipped (and not shipped again) until the removal
goes through.

An entry of a session (kinds `session.*` with a `key`) is indexed by that key (a virtual
column), so that a session's new writes can wait for its own spooled ones and for
nothing else (`has_pending`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 1_000_000
DEFAULT_MEMORY_ENTRIES = 10_000  # held in memory while the disk cannot be written
RETRY_DISK_S = 1.0  # how often a disk that failed is tried again
GROUP_MAX_ROWS = 2000  # appends committed in one transaction, at most
REFUSAL_LOG_EVERY_S = 60.0
# Entries held in memory are numbered from here: after every entry on disk (whose seqs
# may also be negative: adopted entries go before the others).
MEMORY_SEQ_START = 2**62

# The session an entry belongs to, as SQL and as Python (the same rule).
_SESSION_OF = "CASE WHEN kind LIKE 'session.%' THEN json_extract(payload, '$.key') END"


def session_of(kind: str, payload: Mapping[str, Any]) -> str | None:
    key = payload.get("key") if kind.startswith("session.") else None
    return key if isinstance(key, str) else None


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    session_key   TEXT GENERATED ALWAYS AS ({_SESSION_OF}) VIRTUAL
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
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
# An earlier version's file has no session_key column: added on open (virtual: nothing
# is rewritten, and its writers' entries get one too).
_ADD_SESSION_KEY = (
    f"ALTER TABLE entries ADD COLUMN session_key TEXT GENERATED ALWAYS AS ({_SESSION_OF}) VIRTUAL"
)
_SESSION_INDEX = (
    "CREATE INDEX IF NOT EXISTS entries_by_session ON entries (session_key, seq)"
    " WHERE session_key IS NOT NULL"
)
_COUNTING = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_{name} AFTER {event} ON {table}"
    f" BEGIN UPDATE counters SET value = value {sign} 1 WHERE name = '{counter}'; END"
    for table, counter in (("entries", "pending"), ("dead", "dead"))
    for name, event, sign in (("in", "INSERT", "+"), ("out", "DELETE", "-"))
]


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at_ms: int
    session_key: str | None = None
    in_memory: bool = False  # held in memory: the disk could not be written


@dataclass(frozen=True, slots=True)
class DeadEntry:
    seq: int
    kind: str
    payload: str  # JSON, as stored
    created_at_ms: int
    error: str
    failed_at_ms: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    pending: int  # on disk, every process's
    dead: int
    held_in_memory: int  # not on disk: it could not be written
    refused: int  # by this process, since it started: full, or no disk and no memory left
    oldest_created_at_ms: int | None
    unwritable: str | None  # why the disk cannot be written, while it cannot


class _Row(NamedTuple):
    kind: str
    payload: str
    created_at_ms: int
    session_key: str | None


class _Append(NamedTuple):
    rows: list[_Row]
    done: Future[bool] | None


class _Job(NamedTuple):
    work: Callable[[sqlite3.Connection], Any]
    done: Future[Any]


_STOP = object()
T = TypeVar("T")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _json(payload: Mapping[str, Any]) -> str:
    try:
        return orjson.dumps(payload).decode()  # orjson: this is on the turn path
    except TypeError:  # a lone surrogate (a provider's broken JSON, a split emoji): made storable
        return orjson.dumps(_storable(payload)).decode()


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def _resolve(done: Future[Any] | None, value: Any) -> None:
    if done is not None and not done.done():
        done.set_result(value)


class SpoolUnavailableError(sqlite3.OperationalError):
    """The spool file cannot be opened (its directory is unwritable, or the disk is full)."""


class Spool:
    def __init__(
        self,
        path: Path | str,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        memory_entries: int = DEFAULT_MEMORY_ENTRIES,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self._meta = dict(meta or {})  # recorded whenever the file is opened (once written, kept)
        self.max_entries = max_entries
        self.memory_entries = memory_entries
        self.refused = 0
        self._pending = 0
        self._dead = 0
        self._oldest_ms: int | None = None
        self._unwritable: str | None = None
        self._queued = 0  # rows handed to the writer, not yet committed or held
        self._count_lock = threading.Lock()  # _queued and refused change in several threads
        self._held: deque[tuple[int, _Row]] = deque()  # (memory seq, row), oldest first
        self._held_dead: list[tuple[_Row, str, int]] = []  # refused by Postgres: (row, error, failed at)
        self._held_lock = threading.Lock()
        self._memory_seq = itertools.count(MEMORY_SEQ_START)
        self._shipped_unremoved: set[int] = set()  # shipped, but the disk refused the removal
        self._shipped_lock = threading.Lock()
        self._last_refusal_log = 0.0
        self._last_disk_try = 0.0
        self._conn: sqlite3.Connection | None = None  # the writer thread's
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        opened: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(opened,), name="openclaw-spool", daemon=True)
        self._thread.start()
        opened.result()  # the first try to open the file (a failure is a state, see _open)

    # ---- appending ------------------------------------------------------------------

    def submit(self, kind: str, payload: dict[str, Any]) -> bool:
        """Hand an entry to the writer; never blocks. False if refused (the spool is full)."""
        return self._enqueue([(kind, payload)], None)

    async def put(self, kind: str, payload: dict[str, Any]) -> bool:
        """Store an entry; True once committed (or held in memory, see the module doc).
        Cancelling the caller does not take the entry back."""
        done: Future[bool] = Future()
        if not self._enqueue([(kind, payload)], done):
            return False
        return await asyncio.shield(asyncio.wrap_future(done))

    def append(self, kind: str, payload: dict[str, Any]) -> bool:
        """`put` for code that is not async: blocks until the entry is committed."""
        return self.append_many([(kind, payload)])

    def append_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> bool:
        """Store entries, in order, all or none; blocks until committed. False if refused."""
        done: Future[bool] = Future()
        if not self._enqueue(items, done):
            return False
        return done.result()

    def _enqueue(self, items: Sequence[tuple[str, dict[str, Any]]], done: Future[bool] | None) -> bool:
        if self._closed:
            raise RuntimeError("the spool is closed")
        if not items:
            _resolve(done, True)
            return True
        now = _now_ms()
        rows = [_Row(kind, _json(payload), now, session_of(kind, payload)) for kind, payload in items]
        with self._count_lock:
            if self._pending + self._queued + len(self._held) + len(rows) > self.max_entries:
                full = True
            else:
                full = False
                self._queued += len(rows)
        if full:
            self._refuse(len(rows), f"the outbox is full ({self.max_entries} entries, outbox.max_entries)")
            return False
        if done is not None:
            done.set_running_or_notify_cancel()  # from now on the writer decides, not a cancellation
        self._queue.put(_Append(rows, done))
        return True

    def _refuse(self, count: int, reason: str) -> None:
        with self._count_lock:
            self.refused += count
            now = time.monotonic()
            say = now - self._last_refusal_log >= REFUSAL_LOG_EVERY_S  # not a line per entry
            if say:
                self._last_refusal_log = now
        if say:
            log.error("outbox: entries refused, %d so far: %s", self.refused, reason)

    # ---- reading (blocking: from a thread, or code that is not async) ----------------

    def stats(self) -> SpoolStats:
        """What the spool holds, from memory (no I/O)."""
        return SpoolStats(
            self._pending,
            self._dead + len(self._held_dead),
            len(self._held),
            self.refused,
            self._oldest_ms,
            self._unwritable,
        )

    def pending(self) -> int:
        """Entries waiting, on disk (every process's) and in memory. Reads the counter:
        blocking but O(1); on the event loop, use `stats()`."""
        self._read_counts()
        return self._pending + len(self._held)

    def dead(self) -> int:
        """Entries set aside (the counter, as `pending`)."""
        self._read_counts()
        return self._dead + len(self._held_dead)

    def _read_counts(self) -> None:
        self._read(self._read_counters, None)  # the counters, as another process left them

    def _read(self, query: Callable[[sqlite3.Connection], T], otherwise: T) -> T:
        """`query` on the reading connection; `otherwise` when the file cannot be read (not
        made yet, a read-only directory without its -shm file, a disk gone)."""
        with self._reader_lock:
            if self._closed:
                return otherwise
            if self._reader is None:
                try:
                    self._reader = sqlite3.connect(
                        f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                    )
                    self._reader.execute("PRAGMA busy_timeout=5000")
                except sqlite3.Error:
                    return otherwise
            try:
                return query(self._reader)
            except sqlite3.Error as exc:
                log.debug("outbox: cannot read %s: %s", self.path, exc)
                self._reader.close()
                self._reader = None  # opened again next time
                return otherwise

    def peek(self, limit: int, *, after: int | None = None) -> list[Entry]:
        """The oldest entries (after seq `after`), in order; then those held in memory.
        Entries shipped but not yet removed are left out; one whose payload cannot be
        read is set aside."""
        with self._shipped_lock:
            skip = set(self._shipped_unremoved)
        rows: list[tuple[int, str, str, int]] = self._read(
            lambda db: db.execute(  # (not the virtual session_key: a JSON parse a row, in SQLite)
                "SELECT seq, kind, payload, created_at_ms FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (-(2**63) if after is None else after, limit + len(skip)),
            ).fetchall(),
            [],
        )
        rows = [row for row in rows if row[0] not in skip][:limit]
        entries = self._parsed(rows)
        if len(entries) < limit:
            with self._held_lock:
                newer = (item for item in self._held if after is None or item[0] > after)
                held = list(itertools.islice(newer, limit - len(entries)))
            entries += [
                Entry(seq, row.kind, orjson.loads(row.payload), row.created_at_ms, row.session_key, True)
                for seq, row in held
            ]
        return entries

    def _parsed(self, rows: list[tuple[int, str, str, int]]) -> list[Entry]:
        try:  # one parse for the whole batch: much cheaper than a parse per entry
            payloads = orjson.loads("[" + ",".join(row[2] for row in rows) + "]") if rows else []
        except orjson.JSONDecodeError:  # one of them is not JSON (edited by hand?): find it
            payloads = []
            for seq, kind, text, created in rows:
                try:
                    payloads.append(orjson.loads(text))
                except orjson.JSONDecodeError as exc:
                    self.bury(Entry(seq, kind, {}, created), f"the entry is not JSON: {exc}")
                    payloads.append(None)
        return [
            Entry(seq, kind, payload, created, session_of(kind, payload))
            for (seq, kind, _, created), payload in zip(rows, payloads, strict=True)
            if payload is not None
        ]

    def entries_of(self, session_key: str) -> list[Entry]:
        """The entries of one session waiting, oldest first (an index lookup), then those
        held in memory. Entries shipped but not yet removed are left out."""
        with self._shipped_lock:
            skip = set(self._shipped_unremoved)
        rows: list[tuple[int, str, str, int]] = self._read(
            lambda db: db.execute(
                "SELECT seq, kind, payload, created_at_ms FROM entries WHERE session_key = ? ORDER BY seq",
                (session_key,),
            ).fetchall(),
            [],
        )
        entries = self._parsed([row for row in rows if row[0] not in skip])
        with self._held_lock:
            held = [(seq, row) for seq, row in self._held if row.session_key == session_key]
        return entries + [
            Entry(seq, row.kind, orjson.loads(row.payload), row.created_at_ms, row.session_key, True)
            for seq, row in held
        ]

    def has_pending(self, session_key: str) -> bool:
        """Whether entries of this session wait (an index probe)."""
        with self._held_lock:
            if any(row.session_key == session_key for _, row in self._held):
                return True
        with self._shipped_lock:
            skip = set(self._shipped_unremoved)
        seqs: list[tuple[int]] = self._read(
            lambda db: db.execute(
                "SELECT seq FROM entries WHERE session_key = ? ORDER BY seq LIMIT ?",
                (session_key, len(skip) + 1),
            ).fetchall(),
            [],
        )
        return any(seq not in skip for (seq,) in seqs)

    def pending_sessions(self) -> set[str]:
        """The sessions with entries waiting (a scan of the session index: at start only)."""
        keys: set[str] = self._read(
            lambda db: {
                row[0]
                for row in db.execute(
                    "SELECT DISTINCT session_key FROM entries WHERE session_key IS NOT NULL"
                )
            },
            set(),
        )
        with self._held_lock:
            keys |= {row.session_key for _, row in self._held if row.session_key}
        return keys

    def dead_entries(self, *, kind: str | None = None, limit: int = 100) -> list[DeadEntry]:
        rows: list[tuple[int, str, str, int, str, int]] = self._read(
            lambda db: db.execute(
                "SELECT seq, kind, payload, created_at_ms, error, failed_at_ms FROM dead"
                " WHERE ?1 IS NULL OR kind = ?1 ORDER BY seq LIMIT ?2",
                (kind, limit),
            ).fetchall(),
            [],
        )
        return [DeadEntry(*row) for row in rows]

    # For a person (`openclaw outbox`): reads a command makes once, never the turn path's.

    def dead_by_kind(self) -> dict[str, int]:
        """Dead entries per kind, on disk (a GROUP BY over `dead`, which stays small)."""
        return self._count_by_kind("dead")

    def pending_by_kind(self) -> dict[str, int]:
        """Entries waiting per kind, on disk (not those held in memory). A GROUP BY that
        scans the whole backlog, about a second per million entries: for `openclaw outbox
        status`, not for /health or the turn path (`stats()` is O(1))."""
        return self._count_by_kind("entries")

    def _count_by_kind(self, table: str) -> dict[str, int]:
        rows: list[tuple[str, int]] = self._read(
            lambda db: db.execute(
                f"SELECT kind, count(*) FROM {table} GROUP BY kind ORDER BY kind"
            ).fetchall(),
            [],
        )
        return {str(kind): int(count) for kind, count in rows}

    def dead_seqs(self, seqs: Iterable[int]) -> set[int]:
        """Which of these seqs are dead entries (a primary-key probe each)."""
        wanted = sorted(set(seqs))

        def query(db: sqlite3.Connection) -> set[int]:
            found: set[int] = set()
            for start in range(0, len(wanted), 500):  # within SQLite's limit of parameters
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    int(row[0]) for row in db.execute(f"SELECT seq FROM dead WHERE seq IN ({marks})", chunk)
                )
            return found

        return self._read(query, set()) if wanted else set()

    def meta(self) -> dict[str, str]:
        """What the spool records about itself (e.g. the database its entries are for)."""
        return self._call(lambda conn: dict(conn.execute("SELECT key, value FROM meta").fetchall()))

    # ---- writing through the writer thread (blocking) ---------------------------------

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        done: Future[T] = Future()
        self._queue.put(_Job(work, done))
        return done.result()

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget shipped entries, and wait for the disk. One the disk cannot forget now
        (full) is remembered as shipped, and forgotten when it can."""
        self.forget_shipped(seqs)
        self.sync()

    def forget_shipped(self, seqs: Iterable[int]) -> None:
        """Forget shipped entries without waiting for the disk: the flusher ships its next
        batch while the writer thread deletes this one (`sync()` waits for it)."""
        seqs = list(seqs)
        memory = {s for s in seqs if s >= MEMORY_SEQ_START}
        if memory:
            with self._held_lock:
                self._held = deque(item for item in self._held if item[0] not in memory)
        on_disk = [s for s in seqs if s < MEMORY_SEQ_START]
        if on_disk:
            with self._shipped_lock:
                self._shipped_unremoved.update(on_disk)
            self._queue.put(_Job(self._forget_shipped, Future()))  # a full disk: the writer retries

    def _forget_shipped(self, conn: sqlite3.Connection) -> None:
        with self._shipped_lock:
            seqs = sorted(self._shipped_unremoved)
        with _transaction(conn):
            for low, high in _runs(seqs):  # a shipped batch is mostly one run of seqs
                conn.execute("DELETE FROM entries WHERE seq BETWEEN ? AND ?", (low, high))
        with self._shipped_lock:
            self._shipped_unremoved.difference_update(seqs)

    def bury(self, entry: Entry, error: str) -> None:
        """Move an entry Postgres will never accept to the dead table, with the reason. Never
        raises: when the disk cannot take it now, it is set aside in memory and written to
        `dead` once the disk can be written (and counted as dead meanwhile)."""
        row = _Row(entry.kind, _json(entry.payload), entry.created_at_ms, entry.session_key)
        if entry.in_memory:
            with self._held_lock:
                self._held = deque(item for item in self._held if item[0] != entry.seq)
        else:

            def work(conn: sqlite3.Connection) -> None:
                with _transaction(conn):
                    conn.execute(
                        "INSERT OR REPLACE INTO dead (seq, kind, payload, created_at_ms, error, failed_at_ms)"
                        " SELECT seq, kind, payload, created_at_ms, ?, ? FROM entries WHERE seq = ?",
                        (error, _now_ms(), entry.seq),
                    )
                    conn.execute("DELETE FROM entries WHERE seq = ?", (entry.seq,))

            try:
                self._call(work)
                return
            except sqlite3.Error:  # a full disk: as for one held in memory, and not shipped again
                with self._shipped_lock:
                    self._shipped_unremoved.add(entry.seq)
        with self._held_lock:
            if len(self._held_dead) < self.memory_entries:
                self._held_dead.append((row, error, _now_ms()))
                return
        log.error(
            "outbox: a %s entry refused by Postgres is lost (no disk, no memory): %s", entry.kind, error
        )

    def requeue(self, seqs: Iterable[int] | None = None, *, kind: str | None = None) -> int:
        """Move dead entries back in line, at their old place (all of them, or of a kind,
        or the given ones). Returns how many moved."""
        chosen = None if seqs is None else list(seqs)

        def work(conn: sqlite3.Connection) -> int:
            where, params = _dead_selection(chosen, kind)
            with _transaction(conn):
                moved = conn.execute(
                    "INSERT OR IGNORE INTO entries (seq, kind, payload, created_at_ms)"
                    f" SELECT seq, kind, payload, created_at_ms FROM dead{where}",
                    params,
                ).rowcount
                conn.execute(f"DELETE FROM dead{where}", params)
            return moved

        return self._call(work)

    def drop(self, seqs: Iterable[int] | None = None, *, kind: str | None = None) -> int:
        """Delete dead entries for good. Returns how many."""
        chosen = None if seqs is None else list(seqs)

        def work(conn: sqlite3.Connection) -> int:
            where, params = _dead_selection(chosen, kind)
            with _transaction(conn):
                return conn.execute(f"DELETE FROM dead{where}", params).rowcount

        return self._call(work)

    def record_meta(self, values: Mapping[str, str]) -> dict[str, str]:
        """Record the values not recorded yet (a value once set is kept); return all."""

        def work(conn: sqlite3.Connection) -> dict[str, str]:
            conn.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", list(values.items()))
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())

        return self._call(work)

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
        entries, dead = list(entries), list(dead)  # read here: they may come from a cursor of this thread

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                (low,) = conn.execute(
                    "SELECT min(s) FROM (SELECT min(seq) AS s FROM entries"
                    " UNION ALL SELECT min(seq) FROM dead)"
                ).fetchone()
                # Shift the given seqs below every seq used here (seqs may go negative).
                shift = min(1, 1 if low is None else low) - 1 - last_seq
                conn.executemany(
                    "INSERT INTO entries (seq, kind, payload, created_at_ms) VALUES (? + ?, ?, ?, ?)",
                    ((seq, shift, *rest) for seq, *rest in entries),
                )
                conn.executemany(
                    "INSERT INTO dead (seq, kind, payload, created_at_ms, error, failed_at_ms)"
                    " VALUES (? + ?, ?, ?, ?, ?, ?)",
                    ((seq, shift, *rest) for seq, *rest in dead),
                )
                conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items()))

        self._call(work)

    def sync(self) -> None:
        """Wait until every entry handed over so far is committed (or held). Blocking."""
        with contextlib.suppress(sqlite3.Error):  # no disk: they are held, which is all there is
            self._call(lambda conn: None)

    def refresh(self) -> SpoolStats:
        """Read the counters again (other processes append and flush too). Blocking."""
        with contextlib.suppress(sqlite3.Error):  # the disk is gone: the last figures stand
            self._call(self._read_counters)
        return self.stats()

    def close(self) -> None:
        """Commit what was handed over (or keep holding it), stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        if self._held or self._held_dead:
            log.error(
                "outbox: %d entries (and %d set aside as refused) held in memory are lost: %s",
                len(self._held),
                len(self._held_dead),
                self._unwritable or f"{self.path} could not be written",
            )

    # ---- the writer thread ------------------------------------------------------------

    def _run(self, opened: Future[None]) -> None:
        self._open()
        opened.set_result(None)
        while True:
            try:
                waiting = self._held or self._held_dead or self._shipped_unremoved
                item = self._queue.get(timeout=RETRY_DISK_S if waiting else None)
            except queue.Empty:  # try the disk again with what is held, and what is to forget
                self._retry_disk()
                continue
            appends: list[_Append] = []
            while isinstance(item, _Append):
                appends.append(item)
                if sum(len(a.rows) for a in appends) >= GROUP_MAX_ROWS:
                    item = None
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            try:
                if appends:
                    self._write(appends)
                if isinstance(item, _Job):
                    self._do(item)
            except Exception as exc:  # a bug: the thread must live on, and no caller wait forever
                log.exception("outbox: the spool's writer failed")
                for a in appends:
                    if a.done is not None and not a.done.done():
                        a.done.set_exception(exc)
                if isinstance(item, _Job) and not item.done.done():
                    item.done.set_exception(exc)
            if item is _STOP:
                with contextlib.suppress(Exception):
                    self._write([], force=True)
                if self._conn is not None:
                    self._conn.close()
                return

    def _retry_disk(self) -> None:
        try:
            self._write([], force=True)
            if self._shipped_unremoved and self._conn is not None:
                self._forget_shipped(self._conn)
                self._read_counters(self._conn)
        except sqlite3.Error:
            pass  # still full: the next try
        except Exception:
            log.exception("outbox: the spool's writer failed")

    def _open(self) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        self._last_disk_try = time.monotonic()
        conn = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_xinfo(entries)")}
            with _transaction(conn):
                if "session_key" not in columns:  # a spool of an earlier version
                    conn.execute(_ADD_SESSION_KEY)
                conn.execute(_SESSION_INDEX)
                conn.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", self._meta.items())
                # Counted once (the only scan: an earlier version's file), then by triggers.
                known = {row[0] for row in conn.execute("SELECT name FROM counters")}
                if "pending" not in known:
                    conn.execute("INSERT INTO counters SELECT 'pending', count(*) FROM entries")
                if "dead" not in known:
                    conn.execute("INSERT INTO counters SELECT 'dead', count(*) FROM dead")
                for trigger in _COUNTING:
                    conn.execute(trigger)
            self._read_counters(conn)
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            self._set_unwritable(exc)
            return None
        self._conn = conn
        return conn

    def _read_counters(self, conn: sqlite3.Connection) -> None:
        counts = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        oldest = conn.execute(
            "SELECT created_at_ms FROM entries WHERE seq = (SELECT min(seq) FROM entries)"
        ).fetchone()
        self._pending = max(int(counts.get("pending", 0)), 0)
        self._dead = max(int(counts.get("dead", 0)), 0)
        self._oldest_ms = None if oldest is None else int(oldest[0])

    def _set_unwritable(self, exc: BaseException) -> None:
        reason = f"{self.path} cannot be written: {exc}"
        if self._unwritable != reason:
            log.error(
                "outbox: %s; entries are held in memory (up to %d) and the disk is tried again every %.0f s",
                reason,
                self.memory_entries,
                RETRY_DISK_S,
            )
        self._unwritable = reason

    def _write(self, appends: list[_Append], *, force: bool = False) -> None:
        """Commit the held rows and then these, in order, in one transaction; what the disk
        refuses is held in memory, up to the bound."""
        rows = [row for a in appends for row in a.rows]
        with self._count_lock:
            self._queued -= len(rows)
        try_disk = self._unwritable is None or force or time.monotonic() - self._last_disk_try >= RETRY_DISK_S
        conn = self._open() if try_disk else None
        if conn is not None and (rows or self._held or self._held_dead):
            self._last_disk_try = time.monotonic()
            if self._commit(conn, rows):
                for a in appends:
                    _resolve(a.done, True)
                return
        # The disk refused: hold what fits in memory.
        for a in appends:
            with self._held_lock:
                fits = len(self._held) + len(a.rows) <= self.memory_entries
                if fits:
                    self._held.extend((next(self._memory_seq), row) for row in a.rows)
            if not fits:
                self._refuse(len(a.rows), self._unwritable or "the spool cannot be written")
            _resolve(a.done, fits)

    def _commit(self, conn: sqlite3.Connection, rows: list[_Row]) -> bool:
        """Write what is held (set-aside rows to `dead`, then waiting ones), then `rows`, in
        one transaction. False if the disk refused."""
        with self._held_lock:
            held, held_dead = list(self._held), list(self._held_dead)
        try:
            with _transaction(conn):
                for row, error, failed_at_ms in held_dead:  # a seq from the entries' sequence
                    seq = conn.execute(
                        "INSERT INTO entries (kind, payload, created_at_ms) VALUES (?, ?, ?)", row[:3]
                    ).lastrowid
                    conn.execute(
                        "INSERT INTO dead (seq, kind, payload, created_at_ms, error, failed_at_ms)"
                        " SELECT seq, kind, payload, created_at_ms, ?, ? FROM entries WHERE seq = ?",
                        (error, failed_at_ms, seq),
                    )
                    conn.execute("DELETE FROM entries WHERE seq = ?", (seq,))
                conn.executemany(
                    "INSERT INTO entries (kind, payload, created_at_ms) VALUES (?, ?, ?)",
                    [row[:3] for _, row in held] + [row[:3] for row in rows],
                )
        except sqlite3.Error as exc:
            self._set_unwritable(exc)
            return False
        if self._unwritable is not None:
            log.warning("outbox: %s can be written again", self.path)
        self._unwritable = None
        written = {seq for seq, _ in held}
        with self._held_lock:  # (the flusher may have shipped and removed some meanwhile)
            self._held = deque(item for item in self._held if item[0] not in written)
            del self._held_dead[: len(held_dead)]
        with contextlib.suppress(sqlite3.Error):  # figures only: the rows are in
            self._read_counters(conn)
        return True

    def _do(self, job: _Job) -> None:
        conn = self._open()
        if conn is None:
            job.done.set_exception(SpoolUnavailableError(self._unwritable or f"{self.path} cannot be opened"))
            return
        try:
            result = job.work(conn)
            with contextlib.suppress(sqlite3.Error):
                self._read_counters(conn)
        except BaseException as exc:  # handed back to the caller, in its thread
            job.done.set_exception(exc)
        else:
            job.done.set_result(result)


def _runs(seqs: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted seqs as (first, last) runs of consecutive numbers."""
    for _, run in itertools.groupby(enumerate(seqs), key=lambda pair: pair[1] - pair[0]):
        numbers = [seq for _, seq in run]
        yield numbers[0], numbers[-1]


def _dead_selection(seqs: list[int] | None, kind: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if seqs is not None:
        clauses.append(f"seq IN ({','.join('?' * len(seqs)) or 'NULL'})")
        params += seqs
    if kind is not None:
        clauses.append("kind = ?")
        params.append(kind)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
