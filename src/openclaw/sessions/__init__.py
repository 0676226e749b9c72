"""Chat sessions: one interface, three backends (sqlite, postgres, dual), and the importer."""

from __future__ import annotations

from pathlib import Path

from openclaw.db.database import Database
from openclaw.errors import UsageError
from openclaw.outbox import Spool
from openclaw.sessions.models import Backend, SessionInfo, SessionStats
from openclaw.sessions.store import SessionStore

__all__ = ["Backend", "SessionInfo", "SessionStats", "SessionStore", "configured_backend", "open_store"]


def configured_backend(setting: str | None) -> Backend:
    """The backend the settings name (`OPENCLAW_SESSIONS_BACKEND`, else `sessions.backend`
    of the gateway config: `Settings.sessions_backend`), else postgres.

    `sqlite` (the openclaw-rs file) and `dual` are explicit choices for a cutover; a home
    with such files that Postgres lacks is told so (`openclaw.sessions.legacy`)."""
    value = setting or "postgres"
    try:
        return Backend(value.strip().lower())
    except ValueError:
        allowed = ", ".join(b.value for b in Backend)
        raise UsageError(f"unknown sessions backend {value!r} (expected one of: {allowed})") from None


def open_store(
    backend: Backend, *, agent: str, home: Path, database: Database | None = None, spool: Spool | None = None
) -> SessionStore:
    from openclaw.sessions.mirror import DualSessionStore
    from openclaw.sessions.postgres_store import PostgresSessionStore
    from openclaw.sessions.resilient import ResilientSessionStore
    from openclaw.sessions.sqlite_store import SqliteSessionStore, sessions_db_path

    if backend is Backend.SQLITE:
        return SqliteSessionStore(sessions_db_path(home, agent), agent)
    if backend is Backend.POSTGRES:
        if database is None:
            raise ValueError("the postgres backend needs a database")
        store = PostgresSessionStore(database, agent)
        # Without a spool (a one-off command) errors propagate; with one, an outage is ridden out.
        return store if spool is None else ResilientSessionStore(store, spool)
    if spool is None:
        raise ValueError("the dual backend needs the outbox spool")
    return DualSessionStore(SqliteSessionStore(sessions_db_path(home, agent), agent), spool)
