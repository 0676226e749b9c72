"""Which spool holds the entries of which database.

Entries must reach the database they were written for, whatever database the process
that ships them points at. So every database has a spool of its own under
`$OPENCLAW_HOME/outbox/`, `spool-<hash>.db`, the hash of a stable identity of the target:

- a URL or a `key=value` conninfo string: what picks the server and the database (hosts,
  host addresses, ports, dbname, user, service), parsed by libpq with libpq's defaults
  filled in (the PG* environment variables, the OS user, port 5432), without connecting:
  the spool opens while Postgres is down. The password and the options that do not pick
  the database (sslmode, application_name, ...) are left out, so changing them strands
  nothing.
- the embedded server: its data directory.

Identities are compared as written after that normalization (host names in lower case),
never resolved: `localhost` and `127.0.0.1` are two identities, and the entries of one
wait (each start names them in a warning) until openclaw points at it again. Nothing is
shipped to a database that only might be the same.

Each spool records its target in its `meta` table (`description`, with no secret in it),
and `other_spools` lists the spools of other databases that hold entries.

The spool of earlier versions, `outbox/spool.db`, recorded no database. Its entries may be
for any database the home's processes pointed at (DATABASE_URL is per process), and
shipping them to the wrong one is not harmless: mirror entries set token totals and delete
sessions by key. So no process ships them on its own guess: each start warns while the
file holds entries, and `adopt_legacy_spool` moves them, ahead of the database's own
entries, into the spool of the database a person names. The file itself is left in place
(a process of the earlier version may still have it open).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from openclaw.db.target import DatabaseTarget
from openclaw.errors import ConfigError, OpenclawError
from openclaw.outbox.flusher import flush_lock_path
from openclaw.outbox.spool import DEFAULT_MAX_ENTRIES, DEFAULT_MEMORY_ENTRIES, Spool

log = logging.getLogger(__name__)

LEGACY_SPOOL = "spool.db"
# The command that runs adopt_legacy_spool, named in the warnings.
ADOPT_COMMAND = "openclaw db adopt-outbox"

# meta keys of a spool
TARGET = "target"  # the identity (JSON, no secret)
DESCRIPTION = "description"  # the same for a person
LEGACY_ADOPTED = "legacy_adopted"  # the id of the last adoption of spool.db copied in
# meta keys of the legacy spool while an adoption runs
ADOPTING = "adopting"  # id of the adoption
ADOPTING_TARGET = "adopting_target"
ADOPTING_DESCRIPTION = "adopting_description"
ADOPTING_THROUGH = "adopting_through"  # the entries up to this seq are being moved


@dataclass(frozen=True, slots=True)
class SpoolTarget:
    """The database a spool is for: `identity` decides, `description` is for people."""

    identity: str
    description: str

    @property
    def file_name(self) -> str:
        return f"spool-{hashlib.sha256(self.identity.encode()).hexdigest()[:16]}.db"


def outbox_dir(home: Path) -> Path:
    return home / "outbox"


def spool_target(target: DatabaseTarget) -> SpoolTarget:
    if target.is_embedded:
        assert target.pgdata is not None
        pgdata = str(target.pgdata.expanduser().resolve())
        return SpoolTarget(json.dumps({"embedded": pgdata}), f"embedded server in {pgdata}")
    assert target.url is not None
    return _conninfo_target(target.url)


def _conninfo_target(url: str) -> SpoolTarget:
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        # libpq's reason may quote a piece of the string, password included: not shown.
        raise ConfigError(
            "the database URL is neither a valid postgresql:// URL nor a valid key=value string"
        ) from None
    defaults = {opt.keyword.decode(): (opt.val or b"").decode() for opt in pq.Conninfo.get_defaults()}

    def value(name: str) -> str:
        return str(params.get(name) or "").strip() or defaults.get(name, "")

    hosts = value("host").split(",")
    addrs = value("hostaddr").split(",")
    ports = value("port").split(",")
    count = max(len(hosts), len(addrs))
    hosts += [""] * (count - len(hosts))
    addrs += [""] * (count - len(addrs))
    if len(ports) == 1:  # one port for every host
        ports *= count
    ports += [""] * (count - len(ports))
    default_port = defaults.get("port") or "5432"
    servers = [
        (_host(h), a.strip(), _port(p) or default_port) for h, a, p in zip(hosts, addrs, ports, strict=False)
    ]
    user = value("user")
    identity: dict[str, object] = {"servers": servers, "dbname": value("dbname") or user, "user": user}
    shown_hosts, shown_addrs, shown_ports = (list(column) for column in zip(*servers, strict=True))
    shown: dict[str, str | None] = {
        "host": ",".join(shown_hosts) if any(shown_hosts) else None,  # none: the default socket
        "hostaddr": ",".join(shown_addrs) if any(shown_addrs) else None,
        "port": shown_ports[0] if len(set(shown_ports)) == 1 else ",".join(shown_ports),
        "dbname": value("dbname") or user,
        "user": user,
    }
    service = value("service")
    if service:  # its values come from pg_service.conf, which is not read here
        identity["service"] = shown["service"] = service
    description = make_conninfo("", **{k: v for k, v in shown.items() if v})
    return SpoolTarget(json.dumps(identity, sort_keys=True, separators=(",", ":")), description)


def _host(host: str) -> str:
    host = host.strip()
    if host.startswith("/"):  # a Unix socket directory
        return os.path.normpath(host)
    if host.startswith("@"):  # an abstract socket
        return host
    return host.lower()


def _port(port: str) -> str:
    port = port.strip()
    return str(int(port)) if port.isdigit() else port


def configured_limits(section: Mapping[str, object]) -> dict[str, int]:
    """The `outbox` section of the gateway config: `max_entries` (on disk, default 1,000,000)
    and `memory_entries` (held in memory while the disk cannot be written, default 10,000)."""
    limits = {"max_entries": DEFAULT_MAX_ENTRIES, "memory_entries": DEFAULT_MEMORY_ENTRIES}
    for name in limits:
        value = section.get(name, limits[name])
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000_000:
            raise ConfigError(f"outbox.{name} must be a whole number from 1 to 1000000000")
        limits[name] = value
    return limits


def open_spool(
    home: Path,
    target: DatabaseTarget,
    *,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    memory_entries: int = DEFAULT_MEMORY_ENTRIES,
) -> Spool:
    """The spool of `target`'s database, created on first use. Logs a warning for each
    other spool of the home with entries waiting for their own database."""
    spool = _open_for(home, spool_target(target), max_entries, memory_entries)
    try:
        _warn_about_others(home, target)
    except (OSError, sqlite3.Error) as exc:  # a warning must not stop the process
        log.warning("outbox: cannot look at the other spools in %s: %s", outbox_dir(home), exc)
    return spool


def _warn_about_others(home: Path, target: DatabaseTarget) -> None:
    for other in other_spools(home, target):
        if other.pending:
            log.warning("%s", other.describe())


def _open_for(
    home: Path, wanted: SpoolTarget, max_entries: int, memory_entries: int = DEFAULT_MEMORY_ENTRIES
) -> Spool:
    spool = Spool(
        outbox_dir(home) / wanted.file_name,
        max_entries=max_entries,
        memory_entries=memory_entries,
        meta={TARGET: wanted.identity, DESCRIPTION: wanted.description},
    )
    try:
        recorded = spool.meta()
    except sqlite3.Error:
        return spool  # the disk cannot be read or written now: the spool says so, and holds entries in memory
    except BaseException:
        spool.close()
        raise
    if recorded.get(TARGET, wanted.identity) != wanted.identity:  # a hash collision, a file copied by hand
        spool.close()
        raise OpenclawError(
            f"{spool.path} holds entries for {recorded.get(DESCRIPTION, 'another database')},"
            f" not for {wanted.description}"
        )
    return spool


class OtherSpool(NamedTuple):
    """A spool with entries for another database: waiting (`pending`) or set aside (`dead`)."""

    description: str
    pending: int
    dead: int
    path: Path
    legacy: bool  # an earlier openclaw's spool.db: the database was not recorded

    def describe(self) -> str:
        """One line for a person: what waits, for which database, and what ships it."""
        if self.legacy:
            return (
                f"outbox: {self.pending} entries in {self.path} were written by an earlier openclaw, which"
                f" did not record their database; nothing ships them until '{ADOPT_COMMAND}' is run"
                " against the database they are for"
            )
        return (
            f"outbox: {self.pending} entries wait for {self.description} (in {self.path});"
            " they ship when openclaw points at that database again"
        )


def other_spools(home: Path, current: DatabaseTarget | None = None) -> list[OtherSpool]:
    """The spools under `home`, but `current`'s, that hold entries (waiting or dead).
    Never connects to a database; a spool file that cannot be read is logged and skipped."""
    skip = spool_target(current).file_name if current is not None else None
    found = []
    for path in sorted(outbox_dir(home).glob("spool*.db")):
        if path.name == skip:
            continue
        try:
            other = _read_spool(path)
        except sqlite3.Error as exc:
            log.warning("outbox: cannot read %s: %s", path, exc)
            continue
        if other.pending or other.dead:
            found.append(other)
    return found


def _read_spool(path: Path) -> OtherSpool:
    conn = sqlite3.connect(path, timeout=5)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        pending = dead = 0
        if "entries" in tables:  # (none in a spool another process is creating this instant)
            (pending,) = conn.execute("SELECT count(*) FROM entries").fetchone()
            (dead,) = conn.execute("SELECT count(*) FROM dead").fetchone()
    finally:
        conn.close()
    legacy = path.name == LEGACY_SPOOL
    if legacy and ADOPTING in meta:
        description = f"{meta[ADOPTING_DESCRIPTION]} (an adoption was interrupted: run it again)"
    elif legacy:
        description = "a database an earlier openclaw did not record"
    else:
        description = str(meta.get(DESCRIPTION, "an unrecorded database"))
    return OtherSpool(description, int(pending), int(dead), path, legacy)


class Adopted(NamedTuple):
    pending: int
    dead: int


def adopt_legacy_spool(home: Path, target: DatabaseTarget, *, wait_s: float = 30.0) -> Adopted:
    """Move the entries (and dead entries) of an earlier openclaw's `outbox/spool.db` into
    the spool of `target`, ahead of that spool's own entries: a person's statement that they
    are for that database. Never connects to it. An interrupted adoption is finished by
    running it again for the same database; another database is refused until then.
    Returns how many entries moved."""
    legacy_path = outbox_dir(home) / LEGACY_SPOOL
    if not legacy_path.exists():
        return Adopted(0, 0)
    wanted = spool_target(target)
    # No flusher may be halfway through a batch of either file (an earlier openclaw's
    # flusher takes the same lock on spool.db).
    with _flush_locked(legacy_path, wait_s), _flush_locked(outbox_dir(home) / wanted.file_name, wait_s):
        spool = _open_for(home, wanted, DEFAULT_MAX_ENTRIES)
        legacy = sqlite3.connect(legacy_path, isolation_level=None, timeout=5)
        try:
            legacy.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            # 1. Mark what moves where in spool.db (appends go on above `through`).
            legacy.execute("BEGIN IMMEDIATE")
            meta = dict(legacy.execute("SELECT key, value FROM meta").fetchall())
            if ADOPTING in meta and meta[ADOPTING_TARGET] != wanted.identity:
                legacy.execute("ROLLBACK")
                raise OpenclawError(
                    f"the entries of {legacy_path} are being adopted for {meta[ADOPTING_DESCRIPTION]}:"
                    " finish that first (run the adoption again against that database)"
                )
            if ADOPTING in meta:
                adoption, through = meta[ADOPTING], int(meta[ADOPTING_THROUGH])
            else:
                (through,) = legacy.execute(
                    "SELECT max(s) FROM (SELECT max(seq) AS s FROM entries"
                    " UNION ALL SELECT max(seq) FROM dead)"
                ).fetchone()
                if through is None:
                    legacy.execute("COMMIT")
                    return Adopted(0, 0)
                adoption = str(uuid.uuid4())
                legacy.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [
                        (ADOPTING, adoption),
                        (ADOPTING_TARGET, wanted.identity),
                        (ADOPTING_DESCRIPTION, wanted.description),
                        (ADOPTING_THROUGH, str(through)),
                    ],
                )
            legacy.execute("COMMIT")
            (pending,) = legacy.execute("SELECT count(*) FROM entries WHERE seq <= ?", (through,)).fetchone()
            (dead,) = legacy.execute("SELECT count(*) FROM dead WHERE seq <= ?", (through,)).fetchone()
            # 2. Copy them, with the adoption's id, in one transaction of the target's spool.
            if spool.meta().get(LEGACY_ADOPTED) != adoption:
                spool.prepend(
                    legacy.execute(
                        "SELECT seq, kind, payload, created_at_ms FROM entries WHERE seq <= ? ORDER BY seq",
                        (through,),
                    ),
                    legacy.execute(
                        "SELECT seq, kind, payload, created_at_ms, error, failed_at_ms"
                        " FROM dead WHERE seq <= ?",
                        (through,),
                    ),
                    {LEGACY_ADOPTED: adoption},
                    last_seq=through,
                )
            # 3. Forget them in spool.db.
            legacy.execute("BEGIN IMMEDIATE")
            # (a spool that keeps counters keeps them by triggers: nothing to count here)
            legacy.execute("DELETE FROM entries WHERE seq <= ?", (through,))
            legacy.execute("DELETE FROM dead WHERE seq <= ?", (through,))
            legacy.execute(
                "DELETE FROM meta WHERE key IN (?, ?, ?, ?)",
                (ADOPTING, ADOPTING_TARGET, ADOPTING_DESCRIPTION, ADOPTING_THROUGH),
            )
            legacy.execute("COMMIT")
        finally:
            if legacy.in_transaction:
                legacy.execute("ROLLBACK")
            legacy.close()
            spool.close()
    log.warning(
        "outbox: %d entries (and %d dead ones) of an earlier openclaw's %s adopted for %s",
        pending,
        dead,
        legacy_path,
        wanted.description,
    )
    return Adopted(int(pending), int(dead))


@contextlib.contextmanager
def _flush_locked(spool_path: Path, wait_s: float) -> Iterator[None]:
    spool_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(flush_lock_path(spool_path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OpenclawError(
                        f"{spool_path} is being flushed by another process: try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the flock
