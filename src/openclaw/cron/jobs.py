"""`$OPENCLAW_HOME/cron/jobs.json`, version 1 (reference §3): reading, schedules, state.

    {"version": 1, "jobs": [{"id": "j1", "name": "morning brief", "enabled": true,
      "schedule": {"kind": "cron", "expr": "30 6 * * *", "tz": "America/New_York"},
      "payload": {"kind": "agentTurn", "message": "What's on today?", "model": "moonshot/kimi-k2"},
      "state": {"nextRunAtMs": ..., "lastRunAtMs": ..., "lastStatus": "ok", ...}}]}

A job that cannot run (bad cron expression, unknown time zone, payload not agentTurn) is
skipped with a reason; the others run. The file is rewritten atomically (write + rename),
keeping every field openclaw does not know.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from openclaw.errors import ConfigError
from openclaw.llm.config import ModelRef
from openclaw.settings import read_json_object


def jobs_path(home: Path) -> Path:
    return home / "cron" / "jobs.json"


@dataclass(frozen=True, slots=True)
class CronSchedule:
    expr: str
    tz: ZoneInfo

    def next_after(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.tz)
        following: datetime = croniter(self.expr, local).get_next(datetime)
        return following.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class EverySchedule:
    every_ms: int
    anchor_ms: int = 0

    def next_after(self, moment: datetime) -> datetime:
        now_ms = int(moment.timestamp() * 1000)
        steps = (now_ms - self.anchor_ms) // self.every_ms + 1
        return datetime.fromtimestamp((self.anchor_ms + steps * self.every_ms) / 1000, UTC)


@dataclass(slots=True)
class Job:
    id: str
    name: str
    enabled: bool
    schedule: CronSchedule | EverySchedule
    message: str
    model: ModelRef | None
    raw: dict[str, Any] = field(repr=False)  # the job as written, to keep unknown fields

    @property
    def state(self) -> dict[str, Any]:
        state = self.raw.setdefault("state", {})
        assert isinstance(state, dict)
        return state


@dataclass(slots=True)
class JobFile:
    jobs: list[Job]
    skipped: list[str]  # "name: reason"
    document: dict[str, Any]


def _schedule(raw: Any) -> CronSchedule | EverySchedule:
    if not isinstance(raw, dict):
        raise ValueError("schedule must be an object")
    kind = raw.get("kind")
    if kind == "cron":
        expr = raw.get("expr")
        if not isinstance(expr, str) or not croniter.is_valid(expr) or len(expr.split()) != 5:
            raise ValueError(f"bad cron expression {expr!r} (five fields: minute hour day month weekday)")
        try:
            tz = ZoneInfo(raw.get("tz") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {raw.get('tz')!r}") from None
        return CronSchedule(expr, tz)
    if kind == "every":
        every = raw.get("everyMs")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1000:
            raise ValueError("everyMs must be a whole number of milliseconds, at least 1000")
        anchor = raw.get("anchorMs", 0)
        return EverySchedule(every, anchor if isinstance(anchor, int) else 0)
    raise ValueError(f"unknown schedule kind {kind!r} (cron or every)")


def load_jobs(path: Path) -> JobFile:
    """Read jobs.json; a ConfigError if the file as a whole is unusable."""
    document = read_json_object(path, what="cron jobs file")
    raw_jobs = document.get("jobs", [])
    if not isinstance(raw_jobs, list):
        raise ConfigError(f'"jobs" in {path} must be a list')
    jobs: list[Job] = []
    skipped: list[str] = []
    for index, raw in enumerate(raw_jobs):
        name = (
            str(raw.get("name") or raw.get("id") or f"job #{index + 1}")
            if isinstance(raw, dict)
            else f"job #{index + 1}"
        )
        try:
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            payload = raw.get("payload") or {}
            if payload.get("kind") != "agentTurn":
                raise ValueError(f"payload kind {payload.get('kind')!r} is not agentTurn")
            message = payload.get("message")
            if not isinstance(message, str) or not message.strip():
                raise ValueError("payload.message is empty")
            model = ModelRef.parse(payload["model"]) if payload.get("model") else None
            jobs.append(
                Job(
                    str(raw.get("id") or name),
                    name,
                    bool(raw.get("enabled", True)),
                    _schedule(raw.get("schedule")),
                    message,
                    model,
                    raw,
                )
            )
        except (ValueError, ConfigError) as exc:
            skipped.append(f"{name}: {exc}")
    return JobFile(jobs, skipped, document)


def save_state(path: Path, file: JobFile) -> None:
    """Write the jobs' state back: a temporary file, then an atomic rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(file.document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def record_run(job: Job, *, started: datetime, duration_ms: int, ok: bool, next_run: datetime | None) -> None:
    state = job.state
    state["lastRunAtMs"] = int(started.timestamp() * 1000)
    state["lastStatus"] = "ok" if ok else "error"
    state["lastDurationMs"] = duration_ms
    state["consecutiveErrors"] = 0 if ok else int(state.get("consecutiveErrors") or 0) + 1
    if next_run is not None:
        state["nextRunAtMs"] = int(next_run.timestamp() * 1000)


def describe_next(job: Job, now: datetime) -> datetime:
    return job.schedule.next_after(now - timedelta(milliseconds=1))
