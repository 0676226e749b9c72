"""Cron: schedules in local time, one run per scheduled time across gateways (also while
Postgres is down: the lease), rows and state."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from openclaw.agent.runtime import AgentRuntime
from openclaw.app import OUTBOX_HANDLERS as HANDLERS
from openclaw.app import open_runtime
from openclaw.cron.jobs import CronSchedule, EverySchedule, jobs_path, load_jobs
from openclaw.cron.lease import DEFAULT_LEASE_S, lease_seconds
from openclaw.cron.records import CRON_EXECUTION, CronExecution, write_cron_executions
from openclaw.cron.runner import CronRunner, lease_run_uid, run_uid
from openclaw.db.database import Database
from openclaw.db.records import to_payload
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.errors import ConfigError
from tests.conftest import Cli
from tests.fake_llm import FakeLlm, Step, completion, serve
from tests.private_cluster import PrivateCluster, private_cluster  # noqa: F401  (a fixture)
from tests.sessions_support import TcpProxy
from tests.waiting import until

NY = ZoneInfo("America/New_York")


def test_cron_schedule_in_local_time_across_dst() -> None:
    schedule = CronSchedule("30 6 * * *", NY)
    assert schedule.next_after(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 2, 11, 30, tzinfo=UTC
    )
    # 8 March 2026: clocks go forward; 06:30 is now 10:30 UTC
    assert schedule.next_after(datetime(2026, 3, 8, 0, 0, tzinfo=UTC)) == datetime(
        2026, 3, 8, 10, 30, tzinfo=UTC
    )
    every = EverySchedule(3_600_000, anchor_ms=0)
    assert every.next_after(datetime(2026, 1, 1, 1, 30, tzinfo=UTC)) == datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


JOBS = {
    "version": 1,
    "jobs": [
        {
            "id": "j1",
            "name": "morning brief",
            "enabled": True,
            "createdAtMs": 1,
            "schedule": {"kind": "cron", "expr": "30 6 * * *", "tz": "America/New_York"},
            "payload": {"kind": "agentTurn", "message": "What's on today?"},
            "delivery": {"mode": "announce"},
        },
        {
            "id": "j2",
            "name": "broken expr",
            "schedule": {"kind": "cron", "expr": "61 * * * *"},
            "payload": {"kind": "agentTurn", "message": "x"},
        },
        {
            "id": "j3",
            "name": "nowhere",
            "schedule": {"kind": "cron", "expr": "0 * * * *", "tz": "Mars/Olympus"},
            "payload": {"kind": "agentTurn", "message": "x"},
        },
        {
            "id": "j4",
            "name": "system event",
            "schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "systemEvent", "text": "x"},
        },
        {
            "id": "j5",
            "name": "disabled",
            "enabled": False,
            "schedule": {"kind": "every", "everyMs": 60000},
            "payload": {"kind": "agentTurn", "message": "x"},
        },
    ],
}


def test_load_jobs_skips_what_cannot_run(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(JOBS))
    loaded = load_jobs(path)
    assert [j.name for j in loaded.jobs] == ["morning brief", "disabled"]
    assert [s.split(":")[0] for s in loaded.skipped] == ["broken expr", "nowhere", "system event"]
    assert "bad cron expression '61 * * * *'" in loaded.skipped[0] and "Mars/Olympus" in loaded.skipped[1]
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_jobs(path)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        yield app


@pytest.fixture
async def runtime(fake: FakeLlm, db_url: str, isolated_environment: Path) -> AsyncIterator[AgentRuntime]:
    (isolated_environment / "openclaw-manual.json").write_text(
        json.dumps(
            {
                "models": {
                    "providers": {"fake": {"baseUrl": fake.base_url, "models": ["m1"]}},
                    "fallbacks": ["fake/m1"],
                }
            }
        )
    )
    jobs_path(isolated_environment).parent.mkdir()
    jobs_path(isolated_environment).write_text(json.dumps(JOBS))
    rt = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=db_url), home=isolated_environment)
    yield rt
    await rt.close()


def runner(rt: AgentRuntime, home: Path, clock: Clock, delivered: list[str] | None = None) -> CronRunner:
    async def deliver(job: object, text: str) -> None:
        if delivered is not None:
            delivered.append(text)

    return CronRunner(
        jobs_path(home), rt.agent, rt.spool, rt.database, host="h", deliver=deliver, clock=clock
    )


def local(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, second, tzinfo=NY).astimezone(UTC)


async def test_a_job_fires_once_at_its_local_time(
    runtime: AgentRuntime, fake: FakeLlm, isolated_environment: Path, db_url: str
) -> None:
    clock = Clock(local(6, 0))
    delivered: list[str] = []
    cron = runner(runtime, isolated_environment, clock, delivered)
    assert await cron.tick() == []  # first sight: the next run is 06:30 New York
    clock.now = local(6, 29, 59)
    assert await cron.tick() == []
    fake.then(Step(body=completion("Today: nothing much.")))
    clock.now = local(6, 30)
    ran = await cron.tick()
    assert [(r.job_name, r.status) for r in ran] == [("morning brief", "success")]
    clock.now = local(6, 30, 30)
    assert await cron.tick() == []  # next: tomorrow
    assert delivered == ["Today: nothing much."] and len(fake.requests) == 1
    assert await runtime.flusher.drain(timeout_s=30)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT job_id, job_name, status, duration_ms IS NOT NULL, tokens_used, started_at"
            " FROM cron_executions"
        ).fetchall()
    assert rows == [("j1", "morning brief", "success", True, 15, local(6, 30))]
    state = json.loads(jobs_path(isolated_environment).read_text())["jobs"][0]
    assert state["state"]["lastStatus"] == "ok" and state["state"]["consecutiveErrors"] == 0
    assert state["state"]["nextRunAtMs"] == int(datetime(2026, 3, 3, 11, 30, tzinfo=UTC).timestamp() * 1000)
    assert state["createdAtMs"] == 1 and state["delivery"] == {"mode": "announce"}  # unknown fields kept


async def test_two_gateways_run_a_scheduled_time_once(
    runtime: AgentRuntime, fake: FakeLlm, isolated_environment: Path, db_url: str
) -> None:
    clock = Clock(local(6, 0))
    first, second = runner(runtime, isolated_environment, clock), runner(runtime, isolated_environment, clock)
    await first.tick()
    await second.tick()
    fake.then(Step(body=completion("once")))
    clock.now = local(6, 30, 1)
    ran = [*await first.tick(), *await second.tick()]
    assert len(ran) == 1 and len(fake.requests) == 1


async def test_failures_are_recorded_and_broken_files_keep_the_last_good_jobs(
    runtime: AgentRuntime, fake: FakeLlm, isolated_environment: Path
) -> None:
    clock = Clock(local(6, 0))
    cron = runner(runtime, isolated_environment, clock)
    await cron.tick()
    jobs_path(isolated_environment).write_text("{broken")
    fake.then(Step(400, {"error": "model gone"}))
    clock.now = local(6, 30)
    ran = await cron.tick()  # the file no longer parses: the job loaded before still runs
    assert [(r.status, (r.error or "")[:19]) for r in ran] == [("error", "every model failed:")]
    assert cron.jobs()[0].state["consecutiveErrors"] == 1
    run_now = await cron.run(cron.jobs()[0])  # `openclaw cron run` does this
    assert (
        run_now is not None and run_now.status == "error" and cron.jobs()[0].state["consecutiveErrors"] == 2
    )


def test_cron_cli(
    capsys: pytest.CaptureFixture[str], db_url: str, fake: FakeLlm, isolated_environment: Path
) -> None:
    (isolated_environment / "openclaw-manual.json").write_text(
        json.dumps(
            {
                "models": {
                    "providers": {"fake": {"baseUrl": fake.base_url, "models": ["m1"]}},
                    "fallbacks": ["fake/m1"],
                }
            }
        )
    )
    jobs_path(isolated_environment).parent.mkdir()
    jobs_path(isolated_environment).write_text(json.dumps(JOBS))
    cli = Cli(capsys, db_url)
    listed = cli("cron", "list", "--json")
    data = json.loads(listed.stdout)
    assert [j["name"] for j in data["jobs"]] == ["morning brief", "disabled"] and len(data["skipped"]) == 3
    assert "skipped: broken expr" in cli("cron", "list").stderr
    fake.then(Step(body=completion("brief")))
    ran = cli("cron", "run", "morning brief")
    assert ran.exit_code == 0 and ran.stdout.startswith("morning brief: success")
    history = json.loads(cli("cron", "history", "j1", "--json").stdout)
    assert [(h["job_name"], h["status"], h["decided_by"], h["scheduled_for"]) for h in history] == [
        ("morning brief", "success", "manual", None)
    ]
    assert cli("cron", "run", "nope").exit_code == 1


# ---- once, without the database (issue 11 §7) ---------------------------------------------
# Two CronRunners stand for two gateways on one database: each with a pool of its own (a
# gateway cut off from Postgres goes through a TcpProxy), one agent between them, so the
# fake LLM counts every run of either. Slots are placed near the real time: Postgres's clock
# decides when a lease expires.


def tick_job(home: Path, first_slot: datetime, every: timedelta = timedelta(minutes=1)) -> EverySchedule:
    """jobs.json with one job, `tick`, due at `first_slot` and `every` after it."""
    anchor_ms, every_ms = int(first_slot.timestamp() * 1000), int(every.total_seconds() * 1000)
    jobs_path(home).parent.mkdir(exist_ok=True)
    jobs_path(home).write_text(
        json.dumps(
            {
                "version": 1,
                "jobs": [
                    {
                        "id": "tick",
                        "name": "tick",
                        "schedule": {"kind": "every", "everyMs": every_ms, "anchorMs": anchor_ms},
                        "payload": {"kind": "agentTurn", "message": "tick"},
                    }
                ],
            }
        )
    )
    return EverySchedule(every_ms, anchor_ms)


def fake_models(home: Path, fake: FakeLlm) -> None:
    (home / "openclaw-manual.json").write_text(
        json.dumps(
            {
                "models": {
                    "providers": {"fake": {"baseUrl": fake.base_url, "models": ["m1"]}},
                    "fallbacks": ["fake/m1"],
                }
            }
        )
    )


class Gateways:
    """CronRunners, each with a pool of its own on `url` (closed at the end)."""

    def __init__(self, rt: AgentRuntime, home: Path, clock: Clock) -> None:
        self.rt, self.home, self.clock = rt, home, clock
        self.databases: list[Database] = []

    async def open(self, host: str, url: str, **options: Any) -> CronRunner:
        database = await Database.open(
            DatabaseTarget(TargetSource.OPTION, url=url), wait=False, application_name=f"cron-{host}"
        )
        self.databases.append(database)
        return CronRunner(
            jobs_path(self.home),
            self.rt.agent,
            self.rt.spool,
            database,
            host=host,
            clock=self.clock,
            **options,
        )

    async def close(self) -> None:
        for database in self.databases:
            await database.close()


@pytest.fixture
async def gateways(runtime: AgentRuntime, isolated_environment: Path) -> AsyncIterator[Gateways]:
    made = Gateways(runtime, isolated_environment, Clock(datetime.now(UTC)))
    yield made
    await made.close()


def slot_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT scheduled_for, host, decided_by, status FROM cron_executions ORDER BY scheduled_for, id"
        ).fetchall()


def left_to_the_holder(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is left to the lease holder" in r.getMessage()]


@pytest.mark.slow
async def test_during_an_outage_each_slot_runs_once_on_the_lease_holder(
    private_cluster: PrivateCluster,  # noqa: F811
    fake: FakeLlm,
    isolated_environment: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = private_cluster.create_database("openclaw")
    fake_models(isolated_environment, fake)
    start = datetime.now(UTC)
    # Three slots in 35 s, as when the double runs were found; well within the lease (120 s).
    every = timedelta(seconds=15)
    schedule = tick_job(isolated_environment, start + timedelta(seconds=1), every)
    rt = await open_runtime(DatabaseTarget(TargetSource.OPTION, url=url), home=isolated_environment)
    two = Gateways(rt, isolated_environment, Clock(start))
    try:
        first, second = await two.open("first", url), await two.open("second", url)
        assert await first.tick() == [] and await second.tick() == []  # first sight; `first` takes the lease
        assert list(first.lease.held) == ["tick"] and not second.lease.held
        private_cluster.stop()  # immediate: a crash, as far as the gateways can tell
        for runner in (first, second):
            runner.db_wait_s = 0.2  # Postgres is down: no need to wait long for it, only to try
        slots = [schedule.next_after(start) + k * every for k in range(3)]
        fake.then(*(Step(body=completion(f"slot {k}")) for k in range(3)))
        for slot in slots:
            two.clock.now = slot
            ran = [*await first.tick(), *await second.tick()]
            assert [(r.host, r.decided_by, r.status) for r in ran] == [("first", "lease", "success")]
        assert len(fake.requests) == 3  # the LLM was called once per slot
        assert len(left_to_the_holder(caplog)) == 3  # `second` said, once per slot, why it did not run
        private_cluster.start()
        assert await rt.flusher.drain(timeout_s=30)
    finally:
        await two.close()
        await rt.close()
    assert slot_rows(url) == [(slot, "first", "lease", "success") for slot in slots]


async def test_a_dead_holders_lease_passes_on_once_it_expires(
    runtime: AgentRuntime, gateways: Gateways, fake: FakeLlm, db_url: str, isolated_environment: Path
) -> None:
    start = gateways.clock.now
    schedule = tick_job(isolated_environment, start + timedelta(seconds=1))
    dead, alive = (
        await gateways.open("dead", db_url, lease_s=3),
        await gateways.open("alive", db_url, lease_s=3),
    )
    await dead.tick()
    await alive.tick()
    assert list(dead.lease.held) == ["tick"]
    # `dead` dies holding the lease (no release). Its slot is nobody else's: it may have run
    # it, cut off from Postgres, out of sight. At most once, never twice.
    first_slot = schedule.next_after(start)
    gateways.clock.now = first_slot
    assert await alive.tick() == []

    async def taken_over() -> bool:
        await alive.tick()  # renews (here: tries to take) the lease every third of it
        return "tick" in alive.lease.held

    await until(taken_over, what="the other gateway takes the lease once the dead one's has expired")
    fake.then(Step(body=completion("after the takeover")))
    gateways.clock.now = first_slot + timedelta(minutes=1)
    ran = await alive.tick()
    assert [(r.host, r.decided_by, r.status) for r in ran] == [("alive", "claim", "success")]
    assert await dead.tick() == []  # back from the dead: the slot is claimed, the lease is not its own
    assert len(fake.requests) == 1
    assert await runtime.flusher.drain(timeout_s=30)
    assert slot_rows(db_url) == [(first_slot + timedelta(minutes=1), "alive", "claim", "success")]


async def test_a_clean_stop_hands_the_lease_over_at_once(
    runtime: AgentRuntime, gateways: Gateways, fake: FakeLlm, db_url: str, isolated_environment: Path
) -> None:
    start = gateways.clock.now
    schedule = tick_job(isolated_environment, start + timedelta(minutes=1))  # after the hand-over
    leaving, staying = await gateways.open("leaving", db_url), await gateways.open("staying", db_url)
    stop = asyncio.Event()
    loop = asyncio.create_task(leaving.loop(stop))
    await until(lambda: "tick" in leaving.lease.held, what="the first gateway takes the lease")
    await staying.tick()
    stop.set()
    await loop  # lets go of the lease on its way out
    assert not leaving.lease.held
    fake.then(Step(body=completion("handed over")))
    gateways.clock.now = schedule.next_after(start)
    ran = await staying.tick()  # takes the lease (long before it would have expired) and claims the slot
    assert [(r.host, r.decided_by) for r in ran] == [("staying", "claim")]


@pytest.fixture
async def cut_off(db_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy to the test database, to cut one gateway off from Postgres, and its URL."""
    where = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(where.get("host") or "127.0.0.1"), int(where.get("port") or 5432))
    await proxy.start()
    yield proxy, make_conninfo(db_url, host="127.0.0.1", port=str(proxy.port))
    await proxy.stop()


async def test_a_holder_cut_off_from_postgres_and_another_gateway_never_both_run_a_slot(
    runtime: AgentRuntime,
    gateways: Gateways,
    fake: FakeLlm,
    db_url: str,
    isolated_environment: Path,
    cut_off: tuple[TcpProxy, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, through_proxy = cut_off
    start = gateways.clock.now
    schedule = tick_job(isolated_environment, start + timedelta(milliseconds=500))
    holder = await gateways.open("holder", through_proxy, lease_s=5, db_wait_s=0.5)
    other = await gateways.open("other", db_url, lease_s=5)
    await holder.tick()
    await other.tick()
    assert list(holder.lease.held) == ["tick"]
    proxy.cut()  # the holder no longer reaches Postgres; the other gateway still does
    first_slot = schedule.next_after(start)
    gateways.clock.now = first_slot
    fake.then(Step(body=completion("alone")))
    ran = await holder.tick()
    assert [(r.host, r.decided_by) for r in ran] == [("holder", "lease")]  # on its lease, unseen

    # The other gateway sees the first slot only once the holder's lease has expired and it
    # took the lease (a slow tick, a clock behind): the slot may have run (it did), so no.
    async def expired() -> bool:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            row = await (
                await conn.execute("SELECT bool_and(expires_at <= now()) FROM cron_leases")
            ).fetchone()
            return bool(row and row[0])

    await until(expired, what="the holder's lease expires by Postgres's clock")
    assert await other.tick() == [] and list(other.lease.held) == ["tick"]
    next_slot = first_slot + timedelta(minutes=1)
    gateways.clock.now = next_slot
    fake.then(Step(body=completion("taken over")))
    assert await holder.tick() == []  # its view of the lease has ended: it says so and skips
    assert left_to_the_holder(caplog) and "lease has run out" in left_to_the_holder(caplog)[-1]
    ran = await other.tick()
    assert [(r.host, r.decided_by) for r in ran] == [("other", "claim")]
    assert len(fake.requests) == 2  # two slots, one run each
    proxy.restore()
    assert await runtime.flusher.drain(timeout_s=30)
    assert slot_rows(db_url) == [
        (first_slot, "holder", "lease", "success"),
        (next_slot, "other", "claim", "success"),
    ]


async def test_the_holder_runs_alone_only_while_its_view_of_the_lease_lasts(
    runtime: AgentRuntime,
    gateways: Gateways,
    fake: FakeLlm,
    isolated_environment: Path,
    cut_off: tuple[TcpProxy, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, through_proxy = cut_off
    start = gateways.clock.now
    schedule = tick_job(isolated_environment, start + timedelta(seconds=1))
    monotonic = [1000.0]  # the holder's own clock, which the test moves
    holder = await gateways.open(
        "holder", through_proxy, lease_s=60, db_wait_s=0.5, monotonic=lambda: monotonic[0]
    )
    await holder.tick()
    assert list(holder.lease.held) == ["tick"]
    proxy.cut()
    monotonic[0] += 60  # its last renewal was sent a whole lease ago: Postgres may have let it go
    gateways.clock.now = schedule.next_after(start)  # still inside the lease by Postgres's clock
    assert await holder.tick() == []
    assert "lease has run out" in left_to_the_holder(caplog)[-1]
    assert fake.requests == []


def test_cron_leases_cli(cli: Cli, db_url: str) -> None:
    assert cli("cron", "leases").stdout.startswith("no cron leases yet")
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """INSERT INTO cron_leases (agent_name, job_id, holder, holder_boot_id, expires_at) VALUES
                   ('main', 'j1', 'nixos', gen_random_uuid(), now() + interval '1 minute'),
                   ('main', 'j2', 'g731', gen_random_uuid(), now() - interval '1 minute')"""
        )
    leases = json.loads(cli("cron", "leases", "--json").stdout)
    assert [(r["job_id"], r["holder"], r["held"]) for r in leases] == [
        ("j1", "nixos", True),
        ("j2", "g731", False),
    ]
    rows = [
        [cell.strip() for cell in line.split("│")] for line in cli("cron", "leases").stdout.splitlines()[2:]
    ]
    assert [(r[1], r[2], r[4]) for r in rows] == [("j1", "nixos", "held"), ("j2", "g731", "free")]


def test_cron_lease_setting() -> None:
    assert lease_seconds({}) == DEFAULT_LEASE_S == 120
    assert lease_seconds({"lease_s": 30}) == 30.0
    for bad in (1, "60", True, None):
        with pytest.raises(ConfigError, match=r"cron\.lease_s must be a number of seconds, at least 3, not "):
            lease_seconds({"lease_s": bad})


async def test_a_slot_run_twice_shows_as_two_rows_and_is_logged(
    conn: psycopg.AsyncConnection, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Should a slot ever run on a claim and on someone's lease both, nothing merges: the
    rows say so, and shipping the late one logs it."""
    (tmp_path / "jobs.json").write_text(json.dumps(JOBS))
    job = load_jobs(tmp_path / "jobs.json").jobs[0]
    slot = local(6, 30)
    boot = uuid.uuid4()
    claimed = CronExecution(
        "morning brief",
        "main",
        uid=run_uid(job, slot),
        job_id=job.id,
        host="nixos",
        status="success",
        decided_by="claim",
        scheduled_for=slot,
    )
    alone = CronExecution(
        "morning brief",
        "main",
        uid=lease_run_uid(job, slot, "g731", boot),
        job_id=job.id,
        host="g731",
        status="success",
        decided_by="lease",
        scheduled_for=slot,
    )
    assert len({claimed.uid, alone.uid, lease_run_uid(job, slot, "g731", uuid.uuid4())}) == 3
    await write_cron_executions(conn, [claimed])
    await HANDLERS[CRON_EXECUTION](conn, [to_payload(alone)])  # as the outbox ships it
    rows = await (await conn.execute("SELECT host, decided_by FROM cron_executions ORDER BY id")).fetchall()
    assert rows == [("nixos", "claim"), ("g731", "lease")]
    [line] = [r.getMessage() for r in caplog.records if "ran more than once" in r.getMessage()]
    assert "nixos (claim), g731 (lease)" in line
