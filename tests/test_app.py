"""The composition root (openclaw.app) and the runtime it opens."""

from __future__ import annotations

import logging

import psycopg
import pytest

from openclaw.agent import runtime
from openclaw.agent.runtime import ensure_schema
from openclaw.db import Database


def test_every_outbox_kind_has_one_handler() -> None:
    from openclaw.app import OUTBOX_HANDLERS, _handlers
    from openclaw.cron.records import CRON_EXECUTION
    from openclaw.gateway.metrics import METRICS_SNAPSHOT
    from openclaw.llm.records import LLM_CALL
    from openclaw.sessions import mirror

    records = {LLM_CALL, METRICS_SNAPSHOT, CRON_EXECUTION}
    sessions = {mirror.CREATE, mirror.MESSAGES, mirror.TOKENS, mirror.TOKENS_ADD, mirror.DELETE}
    assert set(OUTBOX_HANDLERS) == records | sessions
    with pytest.raises(RuntimeError, match="two handlers"):
        _handlers(OUTBOX_HANDLERS, {LLM_CALL: OUTBOX_HANDLERS[LLM_CALL]})


async def test_an_edited_migration_is_said_as_such_not_as_postgres_not_ready(
    db_url: str, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("UPDATE openclaw_migrations SET checksum = 'edited' WHERE version = 1")
    with caplog.at_level(logging.WARNING, logger="openclaw.agent.runtime"):
        assert await ensure_schema(database) is False
    assert "Postgres not ready" not in caplog.text
    assert "the schema cannot be brought up to date: migration 0001" in caplog.text
    assert "was edited after it was applied" in caplog.text


async def test_a_bug_in_migrating_is_not_reported_as_an_outage(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(conn: object) -> None:
        raise TypeError("a bug in the migration runner")

    monkeypatch.setattr(runtime, "migration_status", broken)
    with pytest.raises(TypeError, match="a bug in the migration runner"):
        await ensure_schema(database)


async def test_an_unreachable_server_is_not_ready(caplog: pytest.LogCaptureFixture) -> None:
    from openclaw.db.target import DatabaseTarget, TargetSource
    from tests.private_cluster import _free_port as free_port

    target = DatabaseTarget(TargetSource.OPTION, url=f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    database = await Database.open(target, wait=False, pool_wait_s=1)
    try:
        with caplog.at_level(logging.WARNING, logger="openclaw.agent.runtime"):
            assert await ensure_schema(database) is False
    finally:
        await database.close()
    assert "Postgres not ready" in caplog.text
