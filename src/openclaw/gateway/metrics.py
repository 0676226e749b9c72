"""Gateway counters (reference §6), their Prometheus text under openclaw-rs's names, and the
snapshot loop that writes them to `metrics_snapshots` through the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from openclaw.db.runtime import METRICS_SNAPSHOT, MetricsSnapshot, to_payload
from openclaw.outbox import Flusher, Spool


@dataclass
class Counters:
    """Process-lifetime counters, counted where things happen."""

    telegram_requests: int = 0
    discord_requests: int = 0
    telegram_errors: int = 0
    discord_errors: int = 0
    rate_limited: int = 0
    concurrency_rejected: int = 0
    total_latency_ms: int = 0
    completed_requests: int = 0
    gateway_connects: int = 0
    gateway_disconnects: int = 0
    gateway_resumes: int = 0
    tasks_cancelled: int = 0
    agent_timeouts: int = 0
    agent_turns: int = 0
    tool_calls: int = 0
    webhook_requests: int = 0
    webhook_errors: int = 0  # failed webhook turns (500 AGENT_TURN_FAILED, PROVIDER_INIT_FAILED)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def errors(self) -> int:
        return self.telegram_errors + self.discord_errors + self.webhook_errors

    @property
    def requests(self) -> int:
        return self.telegram_requests + self.discord_requests + self.webhook_requests

    @property
    def avg_latency_ms(self) -> float:
        return self.total_latency_ms / self.completed_requests if self.completed_requests else 0.0

    @property
    def error_rate_pct(self) -> float:
        total = self.requests
        return 100.0 * self.errors / total if total else 0.0


class Process:
    """This process: boot id, start time, memory."""

    def __init__(self) -> None:
        self.boot_id = uuid.uuid4()
        self.started = time.monotonic()
        self.started_at = time.time()

    @property
    def uptime_s(self) -> int:
        return int(time.monotonic() - self.started)

    @property
    def rss_bytes(self) -> int:
        try:  # Linux: resident pages, the second field of statm
            return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return (
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            )  # the peak, where statm is missing


@dataclass(frozen=True, slots=True)
class OutboxFigures:
    """The outbox of this process, for /health and /metrics: read from memory, never from
    the spool's tables (they may hold a million rows, or sit on a disk that is gone)."""

    pending: int
    dead: int
    held_in_memory: int
    refused: int
    oldest_age_s: float | None
    unwritable: str | None  # why the spool's disk cannot be written
    halted: dict[str, str]  # kinds not shipped, and why (a bug, a kind with no handler)
    last_error: str | None  # why Postgres cannot take entries now
    shipped: int
    moved_to_dead: int
    max_entries: int

    @classmethod
    def of(cls, spool: Spool, flusher: Flusher) -> OutboxFigures:
        stats = spool.stats()
        oldest = stats.oldest_created_at_ms
        return cls(
            pending=stats.pending + stats.held_in_memory,
            dead=stats.dead,
            held_in_memory=stats.held_in_memory,
            refused=stats.refused,
            oldest_age_s=None if oldest is None else max(time.time() - oldest / 1000, 0.0),
            unwritable=stats.unwritable,
            halted=dict(flusher.halted),
            last_error=flusher.last_error,
            shipped=flusher.shipped,
            moved_to_dead=flusher.buried,
            max_entries=spool.max_entries,
        )

    @property
    def problems(self) -> list[str]:
        """What a person must look at (the gateway still serves)."""
        found = [f"outbox_halted:{kind}" for kind in sorted(self.halted)]
        if self.unwritable:
            found.append("outbox_unwritable")
        if self.pending >= self.max_entries:
            found.append("outbox_full")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "dead": self.dead,
            "held_in_memory": self.held_in_memory,
            "refused": self.refused,
            "oldest_age_seconds": None if self.oldest_age_s is None else round(self.oldest_age_s, 1),
            "max_entries": self.max_entries,
            "writable": self.unwritable is None,
            "unwritable_reason": self.unwritable,
            "halted_kinds": self.halted,
            "last_error": self.last_error,
            "shipped": self.shipped,
            "moved_to_dead": self.moved_to_dead,
        }


def _outbox_metrics(o: OutboxFigures) -> Iterator[Metric]:
    for name, value, text in (
        ("pending", o.pending, "Entries waiting to reach Postgres (on disk and in memory)"),
        ("dead", o.dead, "Entries Postgres refused, set aside (openclaw outbox dead)"),
        ("held_in_memory", o.held_in_memory, "Entries held in memory: the spool's disk cannot be written"),
        ("max_entries", o.max_entries, "The bound of the spool (outbox.max_entries)"),
        ("writable", int(o.unwritable is None), "1 if the spool's disk can be written"),
        ("halted_kinds", len(o.halted), "Kinds of entries not shipped because of a bug"),
    ):
        yield GaugeMetricFamily(f"openclaw_outbox_{name}", text, value=value)
    age = GaugeMetricFamily(
        "openclaw_outbox_oldest_entry_age_seconds", "Age of the oldest entry waiting (0 when none)"
    )
    age.add_metric([], o.oldest_age_s or 0.0)
    yield age
    for name, value, text in (
        ("refused", o.refused, "Entries refused: the outbox was full, or no disk and no memory left"),
        ("shipped", o.shipped, "Entries shipped to Postgres by this process"),
        ("moved_to_dead", o.moved_to_dead, "Entries this process set aside as refused by Postgres"),
    ):
        yield CounterMetricFamily(f"openclaw_outbox_{name}_total", text, value=value)


class _Collector:
    def __init__(
        self, counters: Counters, process: Process, version: str, outbox: OutboxFigures | None
    ) -> None:
        self.counters, self.process, self.version, self.outbox = counters, process, version, outbox

    def collect(self) -> Iterator[Metric]:
        if self.outbox is not None:
            yield from _outbox_metrics(self.outbox)
        c = self.counters
        requests = CounterMetricFamily(
            "openclaw_gateway_requests_total", "Requests per channel", labels=["channel"]
        )
        requests.add_metric(["telegram"], c.telegram_requests)
        requests.add_metric(["discord"], c.discord_requests)
        requests.add_metric(["webhook"], c.webhook_requests)
        yield requests
        errors = CounterMetricFamily(
            "openclaw_gateway_errors_total", "Errors per channel", labels=["channel"]
        )
        errors.add_metric(["telegram"], c.telegram_errors)
        errors.add_metric(["discord"], c.discord_errors)
        errors.add_metric(["webhook"], c.webhook_errors)
        yield errors
        events = CounterMetricFamily(
            "openclaw_gateway_ws_events_total", "Discord gateway events", labels=["event"]
        )
        events.add_metric(["connect"], c.gateway_connects)
        events.add_metric(["disconnect"], c.gateway_disconnects)
        events.add_metric(["resume"], c.gateway_resumes)
        yield events
        for name, value, text in (
            ("rate_limited", c.rate_limited, "Messages refused by the rate limit"),
            ("concurrency_rejected", c.concurrency_rejected, "Messages refused as busy"),
            ("completed_requests", c.completed_requests, "Requests answered"),
            ("latency_ms", c.total_latency_ms, "Total answer latency (ms)"),
            ("tasks_cancelled", c.tasks_cancelled, "Turns cancelled"),
            ("agent_timeouts", c.agent_timeouts, "Turns that timed out"),
            ("agent_turns", c.agent_turns, "Agent turns"),
            ("tool_calls", c.tool_calls, "Tool calls"),
            ("webhook_requests", c.webhook_requests, "Webhook requests"),
        ):
            yield CounterMetricFamily(f"openclaw_gateway_{name}_total", text, value=value)
        gauges: tuple[tuple[str, float, str], ...] = (
            ("avg_latency_ms", c.avg_latency_ms, "Average answer latency (ms)"),
            ("error_rate_pct", c.error_rate_pct, "Errors per request (%)"),
            ("process_rss_bytes", self.process.rss_bytes, "Resident memory"),
            ("uptime_seconds", self.process.uptime_s, "Seconds since start"),
        )
        for name, amount, text in gauges:
            yield GaugeMetricFamily(f"openclaw_gateway_{name}", text, value=amount)
        yield InfoMetricFamily("openclaw_gateway", "Gateway version", value={"version": self.version})


def prometheus_text(
    counters: Counters, process: Process, version: str, outbox: OutboxFigures | None = None
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(counters, process, version, outbox))
    return generate_latest(registry)


def snapshot(counters: Counters, process: Process, host: str, version: str) -> MetricsSnapshot:
    values: dict[str, Any] = dict(counters.as_dict())
    return MetricsSnapshot(
        host=host,
        boot_id=process.boot_id,
        version=version,
        process_rss_bytes=process.rss_bytes,
        uptime_seconds=process.uptime_s,
        **values,
    )


async def snapshot_loop(
    counters: Counters,
    process: Process,
    spool: Spool,
    *,
    host: str,
    version: str,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """A snapshot every `interval_s` into the outbox, and a last one when `stop` is set."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        await spool.put(METRICS_SNAPSHOT, to_payload(snapshot(counters, process, host, version)))
