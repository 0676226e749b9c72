"""PostgreSQL access: where the server is, the pool, migrations, runtime writes."""

from openclaw.db.database import Database
from openclaw.db.migrate import MigrationStatus, migrate, migration_status
from openclaw.db.target import DatabaseTarget, TargetSource, redact_url, resolve_target

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
