"""Cron: schedules in local time, one run per scheduled time across gateways, rows and state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from openclaw.agent.runtime import AgentRuntime, open_runtime
from openclaw.cron.jobs import CronSchedule, EverySchedule, jobs_path, load_jobs
from openclaw.cron.runner import CronRunner
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.errors import ConfigError
from tests.fake_llm import FakeLlm, Step, completion, serve

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
    from tests.conftest import Cli

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
    assert [(h["job_name"], h["status"]) for h in history] == [("morning brief", "success")]
    assert cli("cron", "run", "nope").exit_code == 1
