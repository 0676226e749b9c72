"""Schema migrations: ordered SQL files shipped in `openclaw.db.migrations`.

Each pending file runs in its own transaction, under a session-level advisory lock so
that two processes migrating at once apply each file exactly once. Applied files are
recorded with a SHA-256 checksum; a file edited after it was applied is an error (add a
new migration instead). Every file is idempotent, so the same SQL concatenated into
`migrations/init.sql` can initialise a database from Docker's initdb, after which
`migrate` records the files as applied without changing anything.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING

from openclaw.errors import MigrationError

if TYPE_CHECKING:
    # psycopg is imported by the functions that run SQL, not with the module: openclaw.db
    # imports this module, and `mcp serve` answers its client before it loads psycopg.
    from psycopg import AsyncConnection

MIGRATIONS_TABLE = "openclaw_migrations"
# pg_advisory_lock key: "openclaw" read as a big-endian int64
LOCK_KEY = int.from_bytes(b"openclaw", "big")

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        # Line endings are normalised so a checkout with CRLF does not look edited.
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@dataclass(slots=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime
    execution_ms: int


@dataclass(slots=True)
class MigrationStatus:
    applied: list[AppliedMigration] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    # Applied in the database but unknown to this openclaw (a newer version migrated it).
    unknown: list[AppliedMigration] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not self.pending


def load_migrations() -> list[Migration]:
    """The migrations shipped with this package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("openclaw.db.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


def init_sql(migrations: list[Migration] | None = None) -> str:
    """All migrations as one idempotent script, the content of `migrations/init.sql`."""
    parts = [
        "-- Generated from src/openclaw/db/migrations/ by `openclaw db init-sql`; do not edit.\n"
        "-- Idempotent: Docker's initdb runs it once, `openclaw db migrate` may run after it.\n"
    ]
    for migration in migrations or load_migrations():
        parts.append(f"\n-- ==== {migration.filename} ====\n\n{migration.sql.rstrip()}\n")
    return "".join(parts)


async def _applied(conn: AsyncConnection) -> list[AppliedMigration]:
    from psycopg.rows import class_row

    exists = await (await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,))).fetchone()
    if not exists or not exists[0]:
        return []
    async with conn.cursor(row_factory=class_row(AppliedMigration)) as cur:
        await cur.execute(
            f"SELECT version, name, checksum, applied_at, execution_ms"
            f" FROM {MIGRATIONS_TABLE} ORDER BY version"
        )
        return await cur.fetchall()


def _compare(available: list[Migration], applied: list[AppliedMigration]) -> MigrationStatus:
    by_version = {m.version: m for m in available}
    status = MigrationStatus()
    for row in applied:
        migration = by_version.get(row.version)
        if migration is None:
            status.unknown.append(row)
            continue
        if migration.checksum != row.checksum:
            raise MigrationError(
                f"migration {migration.filename} was edited after it was applied "
                f"(checksum {row.checksum[:12]} in the database, {migration.checksum[:12]} now): "
                "restore the file and put the change in a new migration"
            )
        status.applied.append(row)
    done = {row.version for row in applied}
    status.pending = [m for m in available if m.version not in done]
    return status


async def migration_status(conn: AsyncConnection) -> MigrationStatus:
    return _compare(load_migrations(), await _applied(conn))


async def migrate(conn: AsyncConnection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply pending migrations; return the ones this call applied.

    `conn` must be in autocommit mode (the runner opens one transaction per file).
    """
    from psycopg import errors

    if not conn.autocommit:
        raise ValueError("migrate() needs a connection in autocommit mode")
    available = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                version      INT PRIMARY KEY,
                name         TEXT NOT NULL,
                checksum     TEXT NOT NULL,
                applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
                execution_ms INT NOT NULL
            )"""
        )
        status = _compare(available, await _applied(conn))
        for migration in status.pending:
            started = time.perf_counter()
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum, execution_ms)"
                        " VALUES (%s, %s, %s, %s)",
                        (
                            migration.version,
                            migration.name,
                            migration.checksum,
                            round((time.perf_counter() - started) * 1000),
                        ),
                    )
            except errors.Error as exc:
                detail = " ".join(str(exc).split())
                raise MigrationError(f"migration {migration.filename} failed: {detail}") from None
        return status.pending
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
