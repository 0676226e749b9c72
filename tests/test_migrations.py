from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from openclaw.db import migrate, migration_status
from openclaw.db.migrate import MIGRATIONS_TABLE, Migration, init_sql, load_migrations
from openclaw.db.tables import TABLES
from openclaw.errors import MigrationError

REPO = Path(__file__).resolve().parents[1]


async def _connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def _tables(conn: psycopg.AsyncConnection) -> set[str]:
    cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row[0] for row in await cur.fetchall()}


async def test_migrate_applies_once_then_nothing(empty_db_url: str) -> None:
    async with await _connect(empty_db_url) as conn:
        first = await migrate(conn)
        second = await migrate(conn)
        status = await migration_status(conn)
        tables = await _tables(conn)
    assert [m.version for m in first] == [m.version for m in load_migrations()]
    assert second == []
    assert status.up_to_date and not status.unknown
    assert set(TABLES) | {MIGRATIONS_TABLE} <= tables


async def test_concurrent_migrators_apply_each_file_once(empty_db_url: str) -> None:
    connections = [await _connect(empty_db_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in connections))
        rows = await (
            await connections[0].execute(f"SELECT version, count(*) FROM {MIGRATIONS_TABLE} GROUP BY version")
        ).fetchall()
    finally:
        for c in connections:
            await c.close()
    applied_counts = sorted(len(r) for r in results)
    assert applied_counts == [0, 0, 0, len(load_migrations())]
    assert all(count == 1 for _, count in rows)


async def test_edited_migration_is_refused(db_url: str) -> None:
    edited = [replace(m, sql=m.sql + "\n-- edited\n") if m.version == 1 else m for m in load_migrations()]
    async with await _connect(db_url) as conn:
        with pytest.raises(MigrationError, match=r"0001_init\.sql was edited after it was applied"):
            await migrate(conn, edited)


async def test_failing_migration_rolls_back_and_is_not_recorded(db_url: str) -> None:
    bad = Migration(9999, "broken", "CREATE TABLE half_done (id int); SELECT 1/0;")
    async with await _connect(db_url) as conn:
        with pytest.raises(MigrationError, match=r"9999_broken\.sql failed: division by zero"):
            await migrate(conn, [*load_migrations(), bad])
        assert "half_done" not in await _tables(conn)
        versions = await (await conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")).fetchall()
    assert (9999,) not in versions


async def test_migration_unknown_to_this_version_is_reported(db_url: str) -> None:
    async with await _connect(db_url) as conn:
        await conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum, execution_ms)"
            " VALUES (9000, 'from_the_future', 'x', 1)"
        )
        status = await migration_status(conn)
        assert [m.version for m in status.unknown] == [9000]
        assert await migrate(conn) == []  # a newer schema does not stop an older openclaw


def test_repo_init_sql_is_the_generated_one() -> None:
    assert (REPO / "migrations" / "init.sql").read_text() == init_sql(), (
        "migrations/init.sql is stale: run `openclaw db init-sql > migrations/init.sql`"
    )


async def test_init_sql_then_migrate_keeps_data(empty_db_url: str) -> None:
    script = (REPO / "migrations" / "init.sql").read_bytes()
    async with await _connect(empty_db_url) as conn:
        await conn.execute(script)  # as Docker's initdb would
        await conn.execute(script)  # and idempotent
        await conn.execute("INSERT INTO task_log (description) VALUES ('before migrate')")
        applied = await migrate(conn)
        rows = await (await conn.execute("SELECT description FROM task_log")).fetchall()
    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    assert rows == [("before migrate",)]


async def test_every_migration_is_idempotent(db_url: str) -> None:
    async with await _connect(db_url) as conn:
        for migration in load_migrations():
            await conn.execute(migration.sql.encode())


def test_migrations_checksum_ignores_line_endings() -> None:
    m = load_migrations()[0]
    assert replace(m, sql=m.sql.replace("\n", "\r\n")).checksum == m.checksum


def test_upgrade_from_the_plans_own_schema(capsys: pytest.CaptureFixture[str], empty_db_url: str) -> None:
    """An openclaw-rs user ran the plan's init.sql and wrote rows with the plan's shapes."""
    from tests.conftest import Cli

    old_rows = b"""
        INSERT INTO known_issues (title, severity)
            VALUES ('old medium', 'medium'), ('old critical', 'critical'), ('odd', 'URGENT');
        INSERT INTO deployments (host, component, version)
            VALUES ('nixos', 'gateway', '1'), ('nixos', 'gateway', '2');
        INSERT INTO config_snapshots (config_path, config_json)
            VALUES ('/c.json', '{"models": {"providers": {"p": {"apiKey": "sk-plain-secret-12345"}}}}');
        INSERT INTO cron_executions (job_name, agent_name, status) VALUES ('j', 'main', 'exploded');
        INSERT INTO metrics_snapshots (host, completed_requests) VALUES ('nixos', 5);
    """
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute((REPO / "tests" / "plan_init.sql").read_bytes())
        conn.execute(old_rows)
    cli = Cli(capsys, empty_db_url)
    assert "applied 0001_init.sql" in cli("db", "migrate").stdout
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        severities = conn.execute(
            "SELECT severity FROM known_issues WHERE status = 'open' ORDER BY severity DESC"
        ).fetchall()
        assert severities == [("critical",), ("medium",), ("medium",)]  # 'URGENT' became medium
        active = conn.execute("SELECT version FROM deployments WHERE status = 'active'").fetchall()
        assert active == [("2",)]
        # An old row that breaks a new rule is kept; new rows must obey it.
        assert conn.execute("SELECT status FROM cron_executions").fetchall() == [("exploded",)]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO cron_executions (job_name, agent_name, status) VALUES ('j', 'm', 'x')")
        assert conn.execute("SELECT uid IS NOT NULL FROM metrics_snapshots").fetchone() == (True,)
    assert "1 snapshot" in cli("config", "scrub").stdout
    assert "0 snapshots" in cli("config", "scrub").stdout
    with psycopg.connect(empty_db_url) as conn:
        text = conn.execute("SELECT config_json::text FROM config_snapshots").fetchone()
    assert text is not None and "sk-plain-secret" not in text[0] and "[redacted:" in text[0]
    assert "old critical" in cli("issues", "list").stdout


async def test_0007_migrates_a_database_with_a_key_over_the_new_limit(empty_db_url: str) -> None:
    """A key longer than 0007 allows (its index took up to about 2,700 bytes) stays; the
    constraint is added NOT VALID, so new rows obey it and the migration still succeeds.
    Messages written before get their words from the new column, through the index."""
    long_key = "webhook:main:" + "k" * 2000
    before = [m for m in load_migrations() if m.version < 7]
    async with await _connect(empty_db_url) as conn:
        await migrate(conn, before)
        await conn.execute("INSERT INTO sessions (session_key, agent_name) VALUES (%s, 'main')", (long_key,))
        await conn.execute(
            "INSERT INTO messages (session_id, role, content)"
            " SELECT id, 'user', 'the zebra release' FROM sessions"
        )
        applied = await migrate(conn)
        assert "0007_text_limits.sql" in [m.filename for m in applied]
        kept = await (await conn.execute("SELECT session_key FROM sessions")).fetchall()
        assert kept == [(long_key,)]
        validated = await (
            await conn.execute(
                "SELECT convalidated FROM pg_constraint WHERE conname = 'sessions_session_key_length_check'"
            )
        ).fetchall()
        assert validated == [(False,)]  # NOT VALID: the old row breaks it
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(
                "INSERT INTO sessions (session_key, agent_name) VALUES (%s, 'main')", (long_key + "2",)
            )
        await conn.execute("SET enable_seqscan = off")
        search = "SELECT id FROM reader.message_words WHERE words @@ plainto_tsquery('simple', 'zebra')"
        found = await (
            await conn.execute(f"SELECT m.content FROM messages m WHERE m.id IN ({search})")
        ).fetchall()
        plan = await (await conn.execute(f"EXPLAIN {search}")).fetchall()
    assert found == [("the zebra release",)]
    assert "idx_messages_fts" in "\n".join(line for (line,) in plan)


async def test_0007_validates_the_key_limit_on_a_database_that_obeys_it(db_url: str) -> None:
    async with await _connect(db_url) as conn:
        rows = await (
            await conn.execute(
                "SELECT conrelid::regclass::text, convalidated FROM pg_constraint"
                " WHERE conname LIKE '%session_key_length_check' ORDER BY 1"
            )
        ).fetchall()
    assert rows == [("llm_calls", True), ("sessions", True)]
