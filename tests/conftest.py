"""Test fixtures: a real PostgreSQL server and a fresh database per test.

The server is `OPENCLAW_TEST_DATABASE_URL` when set (CI points it at the machine's
server), otherwise an embedded server started for this test run. Each test gets its own
database, copied from a template database that was migrated once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from openclaw.cli.app import main
from openclaw.db import Database, DatabaseTarget, TargetSource, migrate
from openclaw.db.embedded import _pgserver, stop_embedded


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admin URL of the server the tests run against."""
    url = os.environ.get("OPENCLAW_TEST_DATABASE_URL")
    if url:
        yield url
        return
    pgdata = tmp_path_factory.mktemp("embedded") / "pgdata"
    server = _pgserver().get_server(pgdata, cleanup_mode=None)
    yield server.get_uri()
    stop_embedded(pgdata)


def create_database(server_url: str, *, template: str | None = None) -> str:
    name = f"openclaw_test_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return name


def drop_database(server_url: str, name: str) -> None:
    from openclaw.db.reader import READER, WRITER, login_role

    with _admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        # Its reader and writer roles belong to the server: they must not pile up there.
        for kind in (READER, WRITER):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login_role(kind, name))))


def database_url(server_url: str, name: str) -> str:
    return make_conninfo(server_url, dbname=name)


async def _migrate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    name = create_database(pg_server_url)
    asyncio.run(_migrate(database_url(pg_server_url, name)))
    yield name
    drop_database(pg_server_url, name)


class FreshDatabases:
    """Migrated databases copied from the template, made a few tests ahead and dropped
    behind, in worker threads: copying and dropping cost a few hundred ms a test, which the
    server spends while tests run instead of on their clock."""

    AHEAD = 3

    def __init__(self, server_url: str, template: str) -> None:
        self._server_url = server_url
        self._template = template
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fresh-databases")
        self._ready: deque[Future[str]] = deque(self._make() for _ in range(self.AHEAD))

    def _make(self) -> Future[str]:
        return self._workers.submit(create_database, self._server_url, template=self._template)

    def take(self) -> str:
        name = self._ready.popleft().result()
        self._ready.append(self._make())
        return name

    def give_back(self, name: str) -> None:
        self._workers.submit(drop_database, self._server_url, name)

    def close(self) -> None:
        while self._ready:
            self.give_back(self._ready.popleft().result())
        self._workers.shutdown(wait=True)


@pytest.fixture(scope="session")
def fresh_databases(pg_server_url: str, template_database: str) -> Iterator[FreshDatabases]:
    databases = FreshDatabases(pg_server_url, template_database)
    yield databases
    databases.close()


@pytest.fixture
def db_url(pg_server_url: str, fresh_databases: FreshDatabases) -> Iterator[str]:
    """A fresh, migrated database of its own."""
    name = fresh_databases.take()
    yield database_url(pg_server_url, name)
    fresh_databases.give_back(name)


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """An open pool on a fresh, migrated database."""
    db = await Database.open(DatabaseTarget(TargetSource.OPTION, url=db_url))
    yield db
    await db.close()


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database without openclaw's schema."""
    name = create_database(pg_server_url)
    yield database_url(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own $OPENCLAW_HOME, an empty gateway config and no DATABASE_URL of the machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OPENCLAW_HOME", str(home))
    gateway_config = tmp_path / "gateway-config.json"  # empty: not the machine's /etc file
    gateway_config.write_text("{}")
    monkeypatch.setenv("GATEWAY_CONFIG", str(gateway_config))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return home


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


class Cli:
    """Runs `openclaw` in this process against a test database."""

    def __init__(self, capsys: pytest.CaptureFixture[str], database_url: str | None) -> None:
        self._capsys = capsys
        self.database_url = database_url

    def __call__(self, *args: str) -> CliResult:
        self._capsys.readouterr()
        prefix = ["--database-url", self.database_url] if self.database_url else []
        code = main([*prefix, *args])
        out, err = self._capsys.readouterr()
        assert "Traceback" not in err, err
        return CliResult(code, out, err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], db_url: str) -> Cli:
    return Cli(capsys, db_url)
