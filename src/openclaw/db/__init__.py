"""PostgreSQL access: where the server is, the pool, migrations, runtime writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openclaw.db.migrate import MigrationStatus, migrate, migration_status
from openclaw.db.target import DatabaseTarget, TargetSource, redact_url, resolve_target

if TYPE_CHECKING:
    from openclaw.db.database import Database

__all__ = [
    "Database",
    "DatabaseTarget",
    "MigrationStatus",
    "TargetSource",
    "migrate",
    "migration_status",
    "redact_url",
    "resolve_target",
]


def __getattr__(name: str) -> type[Database]:
    """`Database`, imported on first use: it loads psycopg and the pool, which a command that
    only needs to know where the database is (`mcp serve` until its client is answered)
    does without. The rest of the package imports psycopg only when it runs."""
    if name == "Database":
        from openclaw.db.database import Database

        return Database
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
