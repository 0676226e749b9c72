"""Config history: redacted snapshots of JSON config files, per host and path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from openclaw.context.diff import changed_top_level_keys
from openclaw.context.models import ChangeSource, ConfigSnapshot, parse_choice
from openclaw.context.redact import Redactor
from openclaw.errors import NotFoundError

_COLUMNS = "id, host, config_path, config_json, changed_keys, change_source, snapshot_at"

# Order is by id, not snapshot_at: now() is when a transaction began, and a snapshot that
# waited for the per-file lock may carry an earlier time than the one it follows.


@dataclass(slots=True)
class SnapshotResult:
    snapshot: ConfigSnapshot  # the new row, or the latest one when nothing changed
    created: bool
    previous: ConfigSnapshot | None


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


async def snapshot_config(
    conn: AsyncConnection,
    *,
    path: str,
    config: dict[str, Any],
    redactor: Redactor,
    host: str | None,
    source: ChangeSource | str = ChangeSource.CLI,
    force: bool = False,
) -> SnapshotResult:
    """Store `config` (redacted here, so no caller can store a secret) unless it equals the
    previous snapshot of the same host and path and `force` is false."""
    change_source = parse_choice(ChangeSource, source, "change source")
    redacted = redactor.redact(config)
    async with conn.transaction():
        # Serialise snapshots of one file so two watchdogs cannot both add "the first".
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('openclaw.config_snapshots'), hashtext(%s))",
            (f"{host}\n{path}",),
        )
        previous = await latest_snapshot(conn, path=path, host=host)
        if previous and not force and _canonical(previous.config_json) == _canonical(redacted):
            return SnapshotResult(previous, created=False, previous=previous)
        changed = changed_top_level_keys(previous.config_json if previous else {}, redacted)
        async with conn.cursor(row_factory=class_row(ConfigSnapshot)) as cur:
            await cur.execute(
                f"""INSERT INTO config_snapshots
                        (host, config_path, config_json, changed_keys, change_source)
                    VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
                (host, path, Jsonb(redacted), changed, change_source.value),
            )
            row = await cur.fetchone()
    assert row is not None
    return SnapshotResult(row, created=True, previous=previous)


async def latest_snapshot(
    conn: AsyncConnection, *, path: str, host: str | None, before_id: int | None = None
) -> ConfigSnapshot | None:
    """The newest snapshot of `path` on `host` (older than `before_id` if given)."""
    async with conn.cursor(row_factory=class_row(ConfigSnapshot)) as cur:
        await cur.execute(
            f"""SELECT {_COLUMNS} FROM config_snapshots
                WHERE config_path = %(path)s AND host IS NOT DISTINCT FROM %(host)s
                  AND (%(before)s::bigint IS NULL OR id < %(before)s)
                ORDER BY id DESC LIMIT 1""",
            {"path": path, "host": host, "before": before_id},
        )
        return await cur.fetchone()


async def scrub_snapshots(conn: AsyncConnection, redactor: Redactor) -> int:
    """Redact every stored snapshot again (rows written by openclaw-rs, or before a rule
    was added, may hold secrets). Returns how many rows changed."""
    changed = 0
    last_id = 0
    while True:
        cur = await conn.execute(
            "SELECT id, config_json FROM config_snapshots WHERE id > %s ORDER BY id LIMIT 500", (last_id,)
        )
        rows = await cur.fetchall()
        if not rows:
            return changed
        for snapshot_id, document in rows:
            redacted = redactor.redact(document)
            if _canonical(redacted) != _canonical(document):
                await conn.execute(
                    "UPDATE config_snapshots SET config_json = %s WHERE id = %s",
                    (Jsonb(redacted), snapshot_id),
                )
                changed += 1
        last_id = rows[-1][0]


async def get_snapshot(conn: AsyncConnection, snapshot_id: int) -> ConfigSnapshot:
    async with conn.cursor(row_factory=class_row(ConfigSnapshot)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM config_snapshots WHERE id = %s", (snapshot_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no config snapshot with id {snapshot_id}")
    return row


async def previous_snapshot(conn: AsyncConnection, snapshot: ConfigSnapshot) -> ConfigSnapshot | None:
    """The snapshot of the same host and path just before `snapshot`."""
    return await latest_snapshot(conn, path=snapshot.config_path, host=snapshot.host, before_id=snapshot.id)


async def config_history(
    conn: AsyncConnection,
    *,
    path: str | None = None,
    host: str | None = None,
    limit: int = 20,
) -> list[ConfigSnapshot]:
    """Snapshots, newest first, of every file or of one path (on every host unless given)."""
    async with conn.cursor(row_factory=class_row(ConfigSnapshot)) as cur:
        await cur.execute(
            f"""SELECT {_COLUMNS} FROM config_snapshots
                WHERE (%(path)s::text IS NULL OR config_path = %(path)s)
                  AND (%(host)s::text IS NULL OR host = %(host)s)
                ORDER BY id DESC LIMIT %(limit)s""",
            {"path": path, "host": host, "limit": limit},
        )
        return await cur.fetchall()
