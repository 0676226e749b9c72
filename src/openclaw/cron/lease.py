"""The cron lease: which process runs a job's slots, and how long it may do so unseen.

A slot is run by the process that holds its job's lease in `cron_leases` (per agent and
job: gateways may have different jobs.json files). While Postgres answers, the holder
claims each slot (the slot's cron_executions row, inserted only if the lease is still its
own), so a slot runs once by construction. While Postgres does not answer, nothing can be
claimed: the holder runs a slot on its own word, and only while

- its local view of the lease lasts: the monotonic time its last successful renewal was
  *sent*, plus the lease's length. Postgres started the renewal's transaction after that
  moment, so this view ends before the lease expires by Postgres's clock, which is the
  only clock another process may take the lease by;
- the slot falls inside the lease as Postgres wrote it (`since` <= due < `expires_at`).
  A new holder claims only slots due from the previous holder's expiry on (`since`), so
  the slots the two may run are disjoint whatever the gateways' wall clocks say.

Every other process skips the slot. A holder cut off from Postgres cannot be told from a
dead one, so the others wait for the lease to expire: the slots of a holder that died
before its lease ran out are not run by anyone (at most once, never twice).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from openclaw.errors import ConfigError

if TYPE_CHECKING:
    # Annotations only: the gateway's config reads `lease_seconds` without loading psycopg.
    from psycopg import AsyncConnection

    from openclaw.cron.records import CronExecution
    from openclaw.db.database import Database

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 120.0
MIN_LEASE_S = 3.0  # renewed every third of it, by a loop that ticks every second
Monotonic = Callable[[], float]


def lease_seconds(cron: Mapping[str, Any]) -> float:
    """`cron.lease_s` of the gateway config: how long a gateway may run a job's slots alone
    while Postgres is down, and how long the others wait for one that died."""
    value = cron.get("lease_s", DEFAULT_LEASE_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= MIN_LEASE_S:
        raise ConfigError(
            f"cron.lease_s must be a number of seconds, at least {MIN_LEASE_S:g}, not {value!r}"
        )
    return float(value)


# Take the lease of each job that is free (never held, or expired by Postgres's clock) and
# renew the ones this process holds; return the leases it holds afterwards.
_TAKE_OR_RENEW = """
    INSERT INTO cron_leases AS l (agent_name, job_id, holder, holder_boot_id, since, expires_at)
    SELECT %(agent)s, job_id, %(host)s, %(boot)s, NULL, now() + make_interval(secs => %(lease_s)s)
      FROM unnest(%(jobs)s::text[]) AS job_id
    ON CONFLICT (agent_name, job_id) DO UPDATE SET
        holder = EXCLUDED.holder,
        holder_boot_id = EXCLUDED.holder_boot_id,
        expires_at = EXCLUDED.expires_at,
        since = CASE WHEN l.holder_boot_id = EXCLUDED.holder_boot_id THEN l.since ELSE l.expires_at END
    WHERE l.holder_boot_id = EXCLUDED.holder_boot_id OR l.expires_at <= now()
    RETURNING job_id, since, expires_at"""

# Let go of leases: they end now, or just after the last slot this process ran on its own
# word (a wall clock ahead of Postgres's may have put that slot after now()); never later
# than they would have.
_RELEASE = """
    UPDATE cron_leases SET expires_at = least(expires_at, greatest(now(), %(after)s::timestamptz))
     WHERE agent_name = %(agent)s AND holder_boot_id = %(boot)s AND expires_at > now()
       AND NOT job_id = ANY(%(keep)s::text[])"""

# The claim of a slot: its row, inserted only by the lease's holder, for a slot of its tenure.
_CLAIM = """
    INSERT INTO cron_executions (uid, job_id, job_name, agent_name, model, host, session_key,
                                 started_at, status, decided_by, scheduled_for)
    SELECT %(uid)s, %(job_id)s, %(job_name)s, %(agent)s, %(model)s, %(host)s, %(session_key)s,
           %(started_at)s, 'running', 'claim', %(due)s
      FROM cron_leases AS l
     WHERE l.agent_name = %(agent)s AND l.job_id = %(job_id)s AND l.holder_boot_id = %(boot)s
       AND l.expires_at > now() AND (l.since IS NULL OR %(due)s >= l.since)
    ON CONFLICT (uid) DO NOTHING RETURNING id"""


@dataclass(frozen=True, slots=True)
class HeldLease:
    """A lease this process holds, as its last successful renewal left it."""

    believed_until: float  # monotonic: when that renewal was sent, plus the lease's length
    since: datetime | None  # Postgres's clock, as in cron_leases
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a renewal returned; it counts once its transaction has committed (`apply`)."""

    sent: float
    held: dict[str, tuple[datetime | None, datetime]]  # job id: (since, expires_at)


class CronLease:
    def __init__(
        self,
        *,
        agent_name: str,
        host: str,
        boot_id: uuid.UUID,
        lease_s: float = DEFAULT_LEASE_S,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        if lease_s <= 0:
            raise ValueError(f"a cron lease must last a positive time, not {lease_s!r} s")
        self.agent_name = agent_name
        self.host = host
        self.boot_id = boot_id
        self.lease_s = lease_s
        self.monotonic = monotonic
        self.held: dict[str, HeldLease] = {}
        self._last_attempt: float | None = None
        self._last_own_slot: datetime | None = None  # the latest slot run on this lease alone

    def renewal_due(self) -> bool:
        """Renew every third of the lease: two renewals may fail before it runs out."""
        return self._last_attempt is None or self.monotonic() - self._last_attempt >= self.lease_s / 3

    async def renew(self, conn: AsyncConnection, job_ids: Collection[str]) -> Renewal:
        """Take or renew the leases of `job_ids`, let go of the others this process holds.
        Call `apply` with the result once the transaction has committed."""
        self._last_attempt = sent = self.monotonic()
        params = {"agent": self.agent_name, "host": self.host, "boot": self.boot_id, "keep": list(job_ids)}
        await conn.execute(_RELEASE, {**params, "after": self._after_own_slots()})
        held: dict[str, tuple[datetime | None, datetime]] = {}
        if job_ids:
            cur = await conn.execute(
                _TAKE_OR_RENEW, {**params, "jobs": list(job_ids), "lease_s": self.lease_s}
            )
            held = {job_id: (since, expires_at) for job_id, since, expires_at in await cur.fetchall()}
        return Renewal(sent, held)

    def apply(self, renewal: Renewal) -> None:
        for job_id in renewal.held.keys() - self.held.keys():
            log.info("cron: this gateway now runs the slots of job %s (it took the lease)", job_id)
        for job_id in self.held.keys() - renewal.held.keys():
            log.info("cron: this gateway no longer runs the slots of job %s (lease lost or let go)", job_id)
        self.held = {
            job_id: HeldLease(renewal.sent + self.lease_s, since, expires_at)
            for job_id, (since, expires_at) in renewal.held.items()
        }

    async def claim(self, conn: AsyncConnection, execution: CronExecution, due: datetime) -> bool:
        """Insert the slot's `running` row if this process holds the job's lease and the slot
        is its own; True if it did (then, and only then, the slot is this process's to run)."""
        cur = await conn.execute(
            _CLAIM,
            {
                "uid": execution.uid,
                "job_id": execution.job_id,
                "job_name": execution.job_name,
                "agent": self.agent_name,
                "model": execution.model,
                "host": execution.host,
                "session_key": execution.session_key,
                "started_at": execution.started_at,
                "due": due,
                "boot": self.boot_id,
            },
        )
        return await cur.fetchone() is not None

    def why_not_alone(self, job_id: str, due: datetime) -> str | None:
        """None if this process may run the slot without Postgres; else why not."""
        lease = self.held.get(job_id)
        if lease is None:
            return "this gateway does not hold the job's lease"
        if self.monotonic() >= lease.believed_until:
            return "this gateway's lease has run out"
        if due >= lease.expires_at or (lease.since is not None and due < lease.since):
            return "the slot is outside this gateway's lease"
        return None

    def ran_alone(self, due: datetime) -> None:
        """Note a slot run without Postgres: a release must not end the lease before it."""
        if self._last_own_slot is None or due > self._last_own_slot:
            self._last_own_slot = due

    async def release(self, database: Database, wait_s: float) -> None:
        """Let go of every lease (on a clean stop), so that another gateway takes over now
        rather than when they expire. Best effort: unreleased, they expire."""
        self.held = {}  # first: no slot is decided on these leases any more
        async with database.connection(wait_s=wait_s) as conn:
            await conn.execute(
                _RELEASE,
                {
                    "agent": self.agent_name,
                    "boot": self.boot_id,
                    "keep": [],
                    "after": self._after_own_slots(),
                },
            )

    def _after_own_slots(self) -> datetime | None:
        return None if self._last_own_slot is None else self._last_own_slot + timedelta(microseconds=1)
