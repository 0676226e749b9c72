"""A PostgreSQL server of a test's own, which it may stop and start for real (an outage)
without touching the machine's shared server."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from openclaw.db import migrate

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateCluster:
    """A PostgreSQL 15 server of one test (or bench run) in `root`, on a free loopback port,
    stopped and started at will; never the machine's shared server.

    initdb refuses to run as root: as root, the server runs as the `postgres` user, which
    then needs to reach `root` (the directories above it get o+x, traversal only)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pgdata = root / "pgdata"
        self.log = root / "server.log"
        self.port = _free_port()
        self._user = "postgres" if os.geteuid() == 0 else None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, program: str, *args: str) -> None:
        try:
            subprocess.run(
                [str(PG_BIN / program), *args],
                cwd=self.root,  # the postgres user may not read the caller's directory
                check=True,
                capture_output=True,
                timeout=120,
                user=self._user,
                # Its own group too, and no other: in root's group, the directories above
                # `root` (0701, as mktemp makes them) would stay closed to it.
                group=self._user,
                extra_groups=[] if self._user else None,
            )
        except subprocess.CalledProcessError as exc:  # say why, not only the exit status
            raise AssertionError(f"{program} failed: {exc.stderr.decode(errors='replace')[-2000:]}") from None

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            owner = pwd.getpwnam(self._user)
            for parent in [self.root, *self.root.parents]:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "utf8", "--no-sync"
        )

    def start(self) -> None:
        # TCP only: a socket path under a test's tmp_path may be longer than Unix allows.
        # fsync off: a test's data need not survive a power cut, and fsyncs are slow on CI.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; `immediate` is a crash as far as clients can tell."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        """A new, empty database on this server; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def migrated_database(self, name: str) -> str:
        """A new database with openclaw's schema; its URL (not from a running event loop)."""
        url = self.create_database(name)
        asyncio.run(_migrate(url))
        return url


async def _migrate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[PrivateCluster]:
    """A running private server, stopped at the end of the test whatever happened."""
    cluster = PrivateCluster(tmp_path / "cluster")
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.running():
            cluster.stop()
