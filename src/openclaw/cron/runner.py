"""Runs the cron jobs: each scheduled slot once, even with several gateways on one
database, and even while that database is down.

Who runs a slot is decided by the job's lease (`openclaw.cron.lease`): while Postgres
answers, the lease's holder claims the slot by inserting its `cron_executions` row (a uid
derived from the job and the slot) and runs it; while Postgres does not answer, the holder
runs it on its own word as long as its view of the lease lasts, its rows wait in the
outbox, and every other gateway skips the slot with one line in the log. The rows say how
each run was decided (`decided_by`: claim, lease or manual) and which slot it was
(`scheduled_for`); a run decided without Postgres has a uid of its own process, so if a
slot ever ran twice, two rows would show it.

A row says `running`, then `success`, `error` or `cancelled` with duration and tokens; the
job's state in jobs.json is written back atomically. A jobs.json that stops parsing leaves
the last good set running.
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

import httpx
import psycopg

from openclaw.agent.loop import Agent, TurnResult
from openclaw.cron.jobs import Job, JobFile, load_jobs, record_run, save_state
from openclaw.cron.lease import DEFAULT_LEASE_S, CronLease, Monotonic
from openclaw.cron.records import CRON_EXECUTION, CronExecution, write_cron_executions
from openclaw.db.database import Database
from openclaw.db.records import to_payload
from openclaw.errors import ConfigError, NotFoundError, OpenclawError
from openclaw.outbox import Spool
from openclaw.outbox.classify import is_unavailable

log = logging.getLogger(__name__)

RUN_NAMESPACE = uuid.UUID("6f70656e-636c-6177-2d63-726f6e2d7275")
DB_WAIT_S = 2.0  # how long a decision waits for a pooled connection before going without
Deliver = Callable[[Job, str], Awaitable[None]]
Clock = Callable[[], datetime]
# How a run's turn is run, given the job's name and the turn: the gateway's turn runner
# (`TurnRunner.queued`) shares its limit and its counters with cron this way (a cron turn
# waits for a place; it is never refused). Its failure is raised: the run's row records it.
RunTurn = Callable[[str, Callable[[], Awaitable[TurnResult]]], Awaitable[TurnResult]]


async def _directly(where: str, turn: Callable[[], Awaitable[TurnResult]]) -> TurnResult:
    return await turn()


# Due jobs run side by side, at most this many at once (the gateway passes its own limit).
DEFAULT_MAX_CONCURRENT = 4


def run_uid(job: Job, due: datetime) -> uuid.UUID:
    """The same scheduled run gets the same uid in every gateway: the claim's key."""
    return uuid.uuid5(RUN_NAMESPACE, f"{job.id}@{due.astimezone(UTC).isoformat()}")


def lease_run_uid(job: Job, due: datetime, host: str, boot_id: uuid.UUID) -> uuid.UUID:
    """The uid of a slot run without a claim: its own process's, so that it can never merge
    with another run of the same slot."""
    return uuid.uuid5(RUN_NAMESPACE, f"{job.id}@{due.astimezone(UTC).isoformat()}#lease:{host}:{boot_id}")


def _report(run: asyncio.Task[CronExecution]) -> None:
    """A run started by the loop failed outside the turn (its row or state): say so."""
    if not run.cancelled() and run.exception() is not None:
        log.error("cron: a run failed", exc_info=run.exception())


# What a decision through Postgres may raise when Postgres is unavailable (the pool's
# timeout is an OperationalError); anything else is a bug and propagates.
DATABASE_ERRORS = (psycopg.Error, OSError)


def _postgres_unreachable(exc: BaseException) -> bool:
    """Whether a failed decision means "go on without Postgres" (rather than a bug)."""
    return is_unavailable(exc)


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
        lease_s: float = DEFAULT_LEASE_S,
        db_wait_s: float = DB_WAIT_S,
        monotonic: Monotonic = time.monotonic,
        run_turn: RunTurn = _directly,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    ) -> None:
        self.path = path
        self.agent = agent
        self.spool = spool
        self.database = database
        self.host = host
        self.deliver = deliver
        self.clock = clock
        self.db_wait_s = db_wait_s
        self.boot_id = uuid.uuid4()  # this process, as a lease holder
        self.lease = CronLease(
            agent_name=agent.name, host=host, boot_id=self.boot_id, lease_s=lease_s, monotonic=monotonic
        )
        self.file: JobFile | None = None
        self._mtime: float | None = None
        self._due: dict[str, datetime] = {}
        self.run_turn = run_turn
        self._slots = asyncio.Semaphore(max(1, max_concurrent))
        self._in_flight: dict[str, asyncio.Task[CronExecution]] = {}  # per job id: its running run

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
        """Run every job that is due now and is this process's to run, side by side (within
        the limit); return the runs made."""
        runs = await self._start_due()
        return list(await asyncio.gather(*runs))

    async def _start_due(self) -> list[asyncio.Task[CronExecution]]:
        """Decide the slots due now (one after another: claims are quick) and start the runs
        this process makes, each its own task: a long run does not delay the others."""
        self.reload()
        now = self.clock()
        enabled = [job for job in self.jobs() if job.enabled]
        slots: list[tuple[Job, datetime]] = []
        for job in enabled:
            due = self._due.setdefault(job.id, job.schedule.next_after(now))  # first sight: from now on
            if due <= now:
                self._due[job.id] = job.schedule.next_after(now)
                if job.id in self._in_flight:  # a job does not overlap itself
                    log.warning("cron: %s at %s is skipped: its previous run is still going", job.name, due)
                    continue
                slots.append((job, due))
        job_ids = [job.id for job in enabled]
        if not slots and self.lease.renewal_due():
            await self._renew(job_ids)
        ran: list[asyncio.Task[CronExecution]] = []
        postgres_answers = True  # once it did not in this tick, the tick's other slots don't wait for it
        for job, due in slots:
            execution = self._execution(job, due)
            claimed: bool | None = None  # None: Postgres could not say
            if postgres_answers:
                try:
                    claimed = await self._claim(execution, job_ids, due)
                except DATABASE_ERRORS as exc:
                    if not _postgres_unreachable(exc):
                        raise
                    postgres_answers = False
            if claimed is False:
                log.info("cron: %s at %s runs elsewhere", job.name, due)
            elif claimed or await self._decide_alone(job, due, execution):
                ran.append(self._launch(job, execution))
        return ran

    def _launch(self, job: Job, execution: CronExecution) -> asyncio.Task[CronExecution]:
        task = asyncio.create_task(self._perform_in_place(job, execution))
        self._in_flight[job.id] = task
        task.add_done_callback(lambda done: self._in_flight.pop(job.id, None))
        return task

    async def _perform_in_place(self, job: Job, execution: CronExecution) -> CronExecution:
        async with self._slots:
            return await self._perform(job, execution)

    async def run(self, job: Job) -> CronExecution:
        """Run `job` now, once, outside its schedule (`openclaw cron run`), recorded like a
        scheduled run."""
        execution = self._execution(job, None)
        try:
            async with self.database.connection(wait_s=self.db_wait_s) as conn:
                await write_cron_executions(conn, [execution])
        except DATABASE_ERRORS as exc:
            if not _postgres_unreachable(exc):
                raise
            await self._keep(execution)
        return await self._perform(job, execution)

    def _execution(self, job: Job, due: datetime | None) -> CronExecution:
        model = job.model or self.agent.router.config.default_model
        return CronExecution(
            job_name=job.name,
            agent_name=self.agent.name,
            uid=run_uid(job, due) if due else uuid.uuid4(),
            started_at=self.clock(),
            job_id=job.id,
            model=str(model) if model else None,
            host=self.host,
            session_key=f"cron:{self.agent.name}:{uuid.uuid4()}",
            decided_by="claim" if due else "manual",
            scheduled_for=due,
        )

    async def _renew(self, job_ids: list[str]) -> None:
        try:
            async with self.database.connection(wait_s=self.db_wait_s) as conn:
                renewal = await self.lease.renew(conn, job_ids)
        except DATABASE_ERRORS as exc:
            if not _postgres_unreachable(exc):
                raise
            return  # the lease as last renewed stands, and runs out on its own
        self.lease.apply(renewal)

    async def _claim(self, execution: CronExecution, job_ids: list[str], due: datetime) -> bool:
        """The slot's claim, in one transaction with the renewal of this process's leases
        (which also takes a lease that expired: a dead holder's slots pass on promptly)."""
        async with self.database.connection(wait_s=self.db_wait_s) as conn:
            renewal = await self.lease.renew(conn, job_ids)
            claimed = await self.lease.claim(conn, execution, due)
        self.lease.apply(renewal)
        return claimed

    async def _decide_alone(self, job: Job, due: datetime, execution: CronExecution) -> bool:
        """Postgres is unreachable: run the slot if this process holds the job's lease (and
        the slot is within it), else leave it to the holder."""
        why_not = self.lease.why_not_alone(job.id, due)
        if why_not is not None:
            log.warning(
                "cron: Postgres is unreachable and %s: %s at %s is left to the lease holder",
                why_not,
                job.name,
                due.isoformat(),
            )
            return False
        execution.uid = lease_run_uid(job, due, self.host, self.boot_id)
        execution.decided_by = "lease"
        self.lease.ran_alone(due)
        await self._keep(execution)
        log.info("cron: Postgres is unreachable; %s at %s runs here, on this gateway's lease", job.name, due)
        return True

    async def _perform(self, job: Job, execution: CronExecution) -> CronExecution:
        """The run itself, once it is this process's: the turn, the final row, the state."""
        key = execution.session_key
        assert key is not None  # every run gets a session of its own (_execution)
        began = time.perf_counter()
        reply = None
        try:
            result = await self.run_turn(job.name, lambda: self.agent.turn(key, job.message, model=job.model))
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
            await self._keep(execution)
            self._save(job, execution.started_at, execution)
        if reply is not None and self.deliver is not None:
            try:
                await self.deliver(job, reply)
            except (httpx.HTTPError, OpenclawError, OSError) as exc:  # best effort: the run succeeded
                log.error("cron: %s ran, but its result was not delivered: %s", job.name, exc)
            except Exception:  # a bug in delivering: logged whole, the run still stands
                log.exception("cron: %s ran, but delivering its result failed", job.name)
        return execution

    async def _keep(self, execution: CronExecution) -> None:
        """The run's row, through the outbox. Handed to the spool's writer before the first
        await: a second cancellation while waiting for the commit does not lose it."""
        await self.spool.put(CRON_EXECUTION, to_payload(execution))

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
        """Tick every `interval_s` until `stop`; runs go on in their own tasks between ticks.
        When the loop ends (or is cancelled), the runs still going are cancelled (each row
        says so) and awaited, then the leases are let go."""
        try:
            while not stop.is_set():
                try:
                    for run in await self._start_due():
                        run.add_done_callback(_report)
                except Exception:  # a bug in one tick must not end cron for the process
                    log.exception("cron: tick failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
        finally:
            running = list(self._in_flight.values())
            for run in running:
                run.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await self.release()

    async def release(self) -> None:
        """Let go of this process's leases (a clean stop), so that another gateway runs the
        next slots at once rather than when the leases expire. Best effort."""
        try:
            await self.lease.release(self.database, wait_s=self.db_wait_s)
        except DATABASE_ERRORS as exc:  # unreleased, they expire: the cost is a wait, not a double run
            log.warning("cron: leases not released (%s); they expire on their own", type(exc).__name__)
