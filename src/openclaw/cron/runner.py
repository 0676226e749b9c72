"""Runs the cron jobs: each due job once, even with several gateways on one database.

A run is claimed in Postgres before it starts: its `cron_executions` row is inserted
with a uid derived from the job and the scheduled time, and only the process whose
insert went in runs the turn. (With Postgres down there is no one to agree with: the run
goes ahead and its rows wait in the outbox.) The row says `running`, then `success`,
`error` or `cancelled` with duration and tokens; the job's state in jobs.json is written
back atomically. A jobs.json that stops parsing leaves the last good set running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from openclaw.agent.loop import Agent
from openclaw.cron.jobs import Job, JobFile, load_jobs, record_run, save_state
from openclaw.db.database import Database
from openclaw.db.runtime import CRON_EXECUTION, CronExecution, to_payload
from openclaw.errors import ConfigError, NotFoundError, OpenclawError
from openclaw.outbox import Spool
from openclaw.outbox.flusher import UNAVAILABLE

log = logging.getLogger(__name__)

RUN_NAMESPACE = uuid.UUID("6f70656e-636c-6177-2d63-726f6e2d7275")
Deliver = Callable[[Job, str], Awaitable[None]]
Clock = Callable[[], datetime]


def run_uid(job: Job, due: datetime) -> uuid.UUID:
    """The same scheduled run gets the same uid in every gateway: the claim's key."""
    return uuid.uuid5(RUN_NAMESPACE, f"{job.id}@{due.astimezone(UTC).isoformat()}")


class CronRunner:
    def __init__(
        self,
        path: Path,
        agent: Agent,
        spool: Spool,
        database: Database,
        *,
        host: str,
        deliver: Deliver | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.path = path
        self.agent = agent
        self.spool = spool
        self.database = database
        self.host = host
        self.deliver = deliver
        self.clock = clock
        self.file: JobFile | None = None
        self._mtime: float | None = None
        self._due: dict[str, datetime] = {}

    def reload(self) -> None:
        """Read jobs.json again if it changed; keep the last good set if it no longer parses."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self.file, self._mtime = None, None
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self.file = load_jobs(self.path)
        except ConfigError as exc:
            log.error("cron: %s; the last good jobs keep running", exc)
            return
        for reason in self.file.skipped:
            log.error("cron: skipped %s", reason)

    def jobs(self) -> list[Job]:
        return self.file.jobs if self.file else []

    def set_enabled(self, name: str, enabled: bool) -> Job:
        """Enable or disable a job by name or id, in jobs.json too (atomically)."""
        self.reload()
        job = next((j for j in self.jobs() if name in (j.name, j.id)), None)
        if job is None or self.file is None:
            raise NotFoundError(f"no cron job {name!r}")
        job.enabled = job.raw["enabled"] = enabled
        save_state(self.path, self.file)
        self._mtime = self.path.stat().st_mtime
        return job

    async def tick(self) -> list[CronExecution]:
        """Run every job that is due now; return the runs this process made."""
        self.reload()
        now = self.clock()
        ran = []
        for job in self.jobs():
            if not job.enabled:
                continue
            due = self._due.setdefault(job.id, job.schedule.next_after(now))  # first sight: from now on
            if due <= now:
                self._due[job.id] = job.schedule.next_after(now)
                execution = await self.run(job, due)
                if execution is not None:
                    ran.append(execution)
        return ran

    async def _claim(self, execution: CronExecution) -> bool:
        try:
            async with self.database.connection(wait_s=2) as conn:
                cur = await conn.execute(
                    """INSERT INTO cron_executions
                           (uid, job_id, job_name, agent_name, model, host, session_key, started_at, status)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'running')
                       ON CONFLICT (uid) DO NOTHING RETURNING id""",
                    (
                        execution.uid,
                        execution.job_id,
                        execution.job_name,
                        execution.agent_name,
                        execution.model,
                        execution.host,
                        execution.session_key,
                        execution.started_at,
                    ),
                )
                return await cur.fetchone() is not None
        except UNAVAILABLE:
            self.spool.append(CRON_EXECUTION, to_payload(execution))
            return True

    async def run(self, job: Job, due: datetime | None = None) -> CronExecution | None:
        """One run of `job`: None if another gateway claimed this scheduled run."""
        started = self.clock()
        key = f"cron:{self.agent.name}:{uuid.uuid4()}"
        model = job.model or self.agent.router.config.default_model
        execution = CronExecution(
            job_name=job.name,
            agent_name=self.agent.name,
            uid=run_uid(job, due) if due else uuid.uuid4(),
            started_at=started,
            job_id=job.id,
            model=str(model) if model else None,
            host=self.host,
            session_key=key,
        )
        if not await self._claim(execution):
            log.info("cron: %s at %s runs elsewhere", job.name, due)
            return None
        began = time.perf_counter()
        reply = None
        try:
            result = await self.agent.turn(key, job.message, model=job.model)
            reply = result.reply
            execution.status, execution.tokens_used, execution.model = (
                "success",
                result.tokens,
                str(result.model),
            )
        except asyncio.CancelledError:
            execution.status, execution.error = "cancelled", "the gateway stopped during the run"
            raise
        except OpenclawError as exc:
            execution.status, execution.error = "error", str(exc)
        except Exception as exc:  # a bug: the row must still say the run ended
            log.exception("cron: %s failed", job.name)
            execution.status, execution.error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            execution.duration_ms = round((time.perf_counter() - began) * 1000)
            self.spool.append(CRON_EXECUTION, to_payload(execution))
            self._save(job, started, execution)
        if reply is not None and self.deliver is not None:
            try:
                await self.deliver(job, reply)
            except Exception as exc:  # delivery is best effort: the run itself succeeded
                log.error("cron: %s ran, but its result was not delivered: %s", job.name, exc)
        return execution

    def _save(self, job: Job, started: datetime, execution: CronExecution) -> None:
        if self.file is None or job not in self.file.jobs:
            return
        record_run(
            job,
            started=started,
            duration_ms=execution.duration_ms or 0,
            ok=execution.status == "success",
            next_run=self._due.get(job.id),
        )
        try:
            save_state(self.path, self.file)
            self._mtime = self.path.stat().st_mtime  # our own write is no reason to reload
        except OSError as exc:
            log.error("cron: could not write the state of %s: %s", job.name, exc)

    async def loop(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # a bug in one tick must not end cron for the process
                log.exception("cron: tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
