"""Outbox entries reach the database they were written for, whatever database the process
that ships them points at (issue 10 §4.7)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import orjson
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from openclaw.app import open_runtime
from openclaw.db import Database
from openclaw.db.records import to_payload
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.errors import OpenclawError
from openclaw.llm.records import LLM_CALL, LlmCall
from openclaw.outbox import Adopted, Flusher, Spool, adopt_legacy_spool, open_spool, other_spools
from openclaw.outbox.targets import (
    ADOPT_COMMAND,
    ADOPTING,
    ADOPTING_DESCRIPTION,
    ADOPTING_TARGET,
    ADOPTING_THROUGH,
    LEGACY_ADOPTED,
    spool_target,
)
from tests.conftest import create_database, database_url, drop_database
from tests.test_outbox import HANDLERS


@pytest.fixture
def other_db_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A second fresh, migrated database on the same server."""
    name = create_database(pg_server_url, template=template_database)
    yield database_url(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture(autouse=True)
def no_libpq_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)


def as_url(conninfo: str) -> str:
    """The same connection parameters as a postgresql:// URL."""
    params = conninfo_to_dict(conninfo)
    dbname = params.pop("dbname")
    return f"postgresql:///{dbname}?{urlencode(params)}"


def allow_connections(server_url: str, url: str, allow: bool) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(str(conninfo_to_dict(url)["dbname"])), sql.Literal(allow)
            )
        )


@contextlib.contextmanager
def unavailable(server_url: str, url: str) -> Iterator[None]:
    """The database at `url` refuses connections (as if down) within the block: unlike a
    URL of some other server, the outbox entries written meanwhile are still for it."""
    allow_connections(server_url, url, False)
    try:
        yield
    finally:
        allow_connections(server_url, url, True)


def llm_calls(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [str(row[0]) for row in conn.execute("SELECT id FROM llm_calls ORDER BY id")]


def outbox_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("openclaw.outbox")]


async def test_entries_reach_the_database_they_were_written_for(
    db_url: str,
    other_db_url: str,
    pg_server_url: str,
    isolated_environment: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = isolated_environment
    a = DatabaseTarget(TargetSource.ENV, url=as_url(db_url))
    b = DatabaseTarget(TargetSource.ENV, url=other_db_url)
    calls = [LlmCall(model="m", session_key=f"s{i}") for i in range(7)]
    with unavailable(pg_server_url, db_url):  # database A is down while they are written
        runtime = await open_runtime(a, home=home, require_models=False)
        assert not runtime.postgres_ready
        assert runtime.spool.append_many([(LLM_CALL, to_payload(c)) for c in calls])
        assert await runtime.close(drain_timeout_s=1) == 7

    # The process now points at database B: it ships B's entries, never A's.
    with caplog.at_level(logging.WARNING, logger="openclaw.outbox"):
        runtime = await open_runtime(b, home=home, require_models=False)
        assert runtime.postgres_ready
        assert await runtime.close() == 0
    assert llm_calls(other_db_url) == [] and llm_calls(db_url) == []
    described = spool_target(a).description
    assert "dbname=openclaw_test_" in described and "password" not in described
    [warning] = outbox_warnings(caplog)
    assert warning.startswith(f"outbox: 7 entries wait for {described} (in {home / 'outbox'}/spool-")
    assert warning.endswith("they ship when openclaw points at that database again")
    assert [(o.description, o.pending, o.dead, o.legacy) for o in other_spools(home, b)] == [
        (described, 7, 0, False)
    ]

    # Pointed at A again (as a key=value string this time): they arrive, once.
    for _ in range(2):
        runtime = await open_runtime(
            DatabaseTarget(TargetSource.OPTION, url=db_url), home=home, require_models=False
        )
        assert await runtime.close() == 0
    assert llm_calls(db_url) == sorted(str(c.id) for c in calls)
    assert llm_calls(other_db_url) == []
    assert other_spools(home, a) == [] and other_spools(home) == []


def spool_file(home: Path, url: str) -> Path:
    spool = open_spool(home, DatabaseTarget(TargetSource.ENV, url=url))
    spool.close()
    return spool.path


def test_the_spool_is_picked_by_what_picks_the_database(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = isolated_environment
    # Nothing connects: these hosts do not even resolve.
    same = {
        spool_file(home, url)
        for url in (
            "postgresql://alice:secret@DB.example:5432/app?sslmode=require&application_name=x",
            "host=db.example port=5432 dbname=app user=alice",
            "host=db.example dbname=app user=alice password='another secret' connect_timeout=3",
            "postgres://alice@db.example/app",
        )
    }
    assert len(same) == 1
    (app,) = same
    others = [
        spool_file(home, url)
        for url in (
            "postgresql://alice@db.example/app2",
            "postgresql://bob@db.example/app",
            "postgresql://alice@db2.example/app",
            "postgresql://alice@db.example:5433/app",
            "postgresql://alice@db.example,db2.example/app",
        )
    ]
    assert len({app, *others}) == 6
    # What the string leaves out, libpq's defaults fill in.
    monkeypatch.setenv("PGUSER", "alice")
    assert spool_file(home, "postgresql://db.example/app") == app
    monkeypatch.setenv("PGHOST", "db.example")
    assert spool_file(home, "dbname=app") == app
    # The file says which database it is for, and holds no password.
    with sqlite3.connect(app) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["description"] == "host=db.example port=5432 dbname=app user=alice"
    assert b"secret" not in app.read_bytes()
    # The embedded server's spool is named after its data directory (and it is not started).
    embedded = open_spool(home, DatabaseTarget(TargetSource.EMBEDDED, pgdata=home / "pgdata"))
    assert embedded.meta()["description"] == f"embedded server in {(home / 'pgdata').resolve()}"
    embedded.close()
    assert embedded.path not in {app, *others} and not (home / "pgdata").exists()


async def test_an_earlier_openclaws_spool_ships_only_where_a_person_says(
    db_url: str, isolated_environment: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = isolated_environment
    legacy = Spool(home / "outbox" / "spool.db")  # as openclaw wrote it before spools had targets
    old = [LlmCall(model="old") for _ in range(4)]
    legacy.append_many([(LLM_CALL, to_payload(c)) for c in old])
    legacy.bury(legacy.peek(1)[0], "refused for its content")
    legacy.close()
    target = DatabaseTarget(TargetSource.ENV, url=db_url)
    with caplog.at_level(logging.WARNING, logger="openclaw.outbox"):
        runtime = await open_runtime(target, home=home, require_models=False)
        assert await runtime.close() == 0
    assert llm_calls(db_url) == []  # not shipped on a guess
    assert outbox_warnings(caplog) == [
        f"outbox: 3 entries in {home / 'outbox' / 'spool.db'} were written by an earlier openclaw, which did"
        f" not record their database; nothing ships them until '{ADOPT_COMMAND}' is run against the"
        " database they are for"
    ]
    [listed] = other_spools(home, target)
    assert (listed.pending, listed.dead, listed.legacy) == (3, 1, True)

    spool = open_spool(home, target)
    new = LlmCall(model="new")
    spool.append(LLM_CALL, to_payload(new))  # this database's own entry, written after them
    spool.close()
    assert adopt_legacy_spool(home, target) == Adopted(3, 1)
    assert adopt_legacy_spool(home, target) == Adopted(0, 0)
    assert other_spools(home, target) == []
    spool = open_spool(home, target)
    try:
        assert [e.payload["id"] for e in spool.peek(10)] == [str(c.id) for c in [*old[1:], new]]
        assert spool.dead() == 1
        async with await Database.open(target) as database:
            assert await Flusher(spool, database, HANDLERS).drain(timeout_s=30)
    finally:
        spool.close()
    assert llm_calls(db_url) == sorted(str(c.id) for c in [*old[1:], new])


@pytest.mark.parametrize("copied", [False, True])
def test_an_interrupted_adoption_is_finished_for_its_database_only(
    isolated_environment: Path, copied: bool
) -> None:
    home = isolated_environment
    a = DatabaseTarget(TargetSource.ENV, url="postgresql://u@a.example/db")
    b = DatabaseTarget(TargetSource.ENV, url="postgresql://u@b.example/db")
    legacy = Spool(home / "outbox" / "spool.db")
    legacy.append_many([(LLM_CALL, {"n": i}) for i in range(2)])
    entries = legacy.peek(10)
    # As an adoption for A leaves spool.db when it stops after marking the entries (and,
    # with `copied`, after copying them too, before spool.db forgot them).
    legacy.record_meta(
        {
            ADOPTING: "an-adoption",
            ADOPTING_TARGET: spool_target(a).identity,
            ADOPTING_DESCRIPTION: spool_target(a).description,
            ADOPTING_THROUGH: str(entries[-1].seq),
        }
    )
    spool = open_spool(home, a)
    if copied:
        spool.prepend(
            [(e.seq, e.kind, orjson.dumps(e.payload).decode(), e.created_at_ms) for e in entries],
            [],
            {LEGACY_ADOPTED: "an-adoption"},
            last_seq=entries[-1].seq,
        )
    with pytest.raises(OpenclawError, match=r"being adopted for host=a\.example port=5432 dbname=db user=u"):
        adopt_legacy_spool(home, b)
    [listed] = [o for o in other_spools(home, b) if o.legacy]
    assert listed.legacy and "interrupted" in listed.description and listed.pending == 2
    assert adopt_legacy_spool(home, a) == Adopted(2, 0)
    assert [e.payload for e in spool.peek(10)] == [{"n": 0}, {"n": 1}]  # once
    assert legacy.pending() == 0 and legacy.meta() == {}
    spool.close()
    legacy.close()


async def test_a_sessions_new_messages_land_after_those_an_earlier_run_spooled(
    db_url: str, pg_server_url: str, isolated_environment: Path
) -> None:
    """A run that spooled a session's messages during an outage, then a new run: its
    messages land after the old ones, whether Postgres is back when it starts or only later.
    Only that session waits for the backlog: others go straight to Postgres."""
    from openclaw.chat import Message, Role
    from openclaw.sessions.resilient import ResilientSessionStore

    target = DatabaseTarget(TargetSource.ENV, url=db_url)

    async def say(text: str, key: str) -> None:
        runtime = await open_runtime(target, home=isolated_environment, require_models=False)
        await runtime.store.append_messages(key, [Message(Role.USER, content=text)])
        await runtime.close()

    def stored(key: str) -> list[str]:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id"
                " WHERE s.session_key = %s ORDER BY m.id",
                (key,),
            )
            return [row[0] for row in rows]

    with unavailable(pg_server_url, db_url):
        await say("first", "agent:main:cli:a")
    await say("second", "agent:main:cli:a")  # queued behind the first, both ship
    assert stored("agent:main:cli:a") == ["first", "second"]

    with unavailable(pg_server_url, db_url):
        await say("first", "agent:main:cli:b")
        runtime = await open_runtime(target, home=isolated_environment, require_models=False)
    try:
        assert isinstance(runtime.store, ResilientSessionStore)
        await runtime.store.append_messages("agent:main:cli:b", [Message(Role.USER, content="second")])
        assert runtime.spool.pending() == 2  # queued behind the first, though Postgres is back
        await runtime.store.append_messages("agent:main:cli:c", [Message(Role.USER, content="other")])
        assert stored("agent:main:cli:c") == ["other"]  # another session does not wait
        assert runtime.spool.pending() == 2
        assert await runtime.flusher.drain(timeout_s=30)
    finally:
        await runtime.close()
    assert stored("agent:main:cli:b") == ["first", "second"]
