"""Gateway counters (reference §6), their Prometheus text under openclaw-rs's names, and
their snapshots: the `metrics_snapshots` record, its writer and outbox handler, and the
loop that puts one in the outbox every interval.

A new counter is one field of `Counters`: its Prometheus sample, its snapshot value and
its column in the writer all come from there. Its column in `metrics_snapshots` comes with
a migration (tests/test_runtime_writes.py fails until there is one)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from psycopg import AsyncConnection

from openclaw.db.batch_insert import insert_batch
from openclaw.db.records import field_names, from_payload, to_payload
from openclaw.outbox import Flusher, Handler, Spool

METRICS_SNAPSHOT = "metrics_snapshot"  # the outbox kind


class Channel(StrEnum):
    """Where a turn comes from: the label of the per-channel counters."""

    TELEGRAM = "telegram"
    DISCORD = "discord"
    WEBHOOK = "webhook"
    CRON = "cron"  # its turns and tool calls count; no requests or errors (its rows say those)


def _counter(text: str, family: str | None = None, label: tuple[str, str] | None = None) -> Any:
    """A counter field: its Prometheus help text, and for a labelled family (requests per
    channel, Discord events) the family and its label. The Prometheus text is made from
    these, so a new counter is one field here (and its column in `metrics_snapshots`)."""
    return field(default=0, metadata={"help": text, "family": family, "label": label})


@dataclass
class Counters:
    """Process-lifetime counters, counted where things happen. Bumped by attribute (typed),
    or per channel through `request`/`error`: never by a name built at run time."""

    telegram_requests: int = _counter("Requests per channel", "requests", ("channel", "telegram"))
    discord_requests: int = _counter("Requests per channel", "requests", ("channel", "discord"))
    telegram_errors: int = _counter("Errors per channel", "errors", ("channel", "telegram"))
    discord_errors: int = _counter("Errors per channel", "errors", ("channel", "discord"))
    rate_limited: int = _counter("Messages refused by the rate limit")
    concurrency_rejected: int = _counter("Messages refused as busy")
    total_latency_ms: int = _counter("Total answer latency (ms)", "latency_ms")
    completed_requests: int = _counter("Requests answered")
    gateway_connects: int = _counter("Discord gateway events", "ws_events", ("event", "connect"))
    gateway_disconnects: int = _counter("Discord gateway events", "ws_events", ("event", "disconnect"))
    gateway_resumes: int = _counter("Discord gateway events", "ws_events", ("event", "resume"))
    tasks_cancelled: int = _counter("Turns cancelled")
    agent_timeouts: int = _counter("Turns that timed out")
    agent_turns: int = _counter("Agent turns")
    tool_calls: int = _counter("Tool calls")
    # Also a sample of openclaw_gateway_requests_total{channel="webhook"} (see _Collector).
    webhook_requests: int = _counter("Webhook requests")
    # Failed webhook turns (422, 500, 503 OUTBOX_FULL).
    webhook_errors: int = _counter("Errors per channel", "errors", ("channel", "webhook"))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def request(self, channel: Channel) -> None:
        """One request on `channel` (cron has no request counter)."""
        if channel is Channel.TELEGRAM:
            self.telegram_requests += 1
        elif channel is Channel.DISCORD:
            self.discord_requests += 1
        elif channel is Channel.WEBHOOK:
            self.webhook_requests += 1

    def error(self, channel: Channel) -> None:
        """One failed request on `channel` (cron's failures are in its rows)."""
        if channel is Channel.TELEGRAM:
            self.telegram_errors += 1
        elif channel is Channel.DISCORD:
            self.discord_errors += 1
        elif channel is Channel.WEBHOOK:
            self.webhook_errors += 1

    def answered(self, channel: Channel, *, tool_calls: int, latency_ms: int) -> None:
        """One turn answered. A cron run's is a turn, not a request: its latency and
        completion are in its cron_executions row."""
        self.agent_turns += 1
        self.tool_calls += tool_calls
        if channel is not Channel.CRON:
            self.completed_requests += 1
            self.total_latency_ms += latency_ms

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
        families: dict[str, CounterMetricFamily] = {}
        for f in fields(c):
            family, label = f.metadata["family"] or f.name, f.metadata["label"]
            if family not in families:
                families[family] = CounterMetricFamily(
                    f"openclaw_gateway_{family}_total",
                    f.metadata["help"],
                    labels=[label[0]] if label else None,
                )
            if label:
                families[family].add_metric([label[1]], getattr(c, f.name))
            else:
                families[family].add_metric([], getattr(c, f.name))
        # openclaw-rs counts webhook requests both on their own and as a channel's
        families["requests"].add_metric(["webhook"], c.webhook_requests)
        yield from families.values()
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


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class MetricsSnapshot:
    """Cumulative gateway counters at one moment (reference §6), plus RSS and uptime: a row
    of `metrics_snapshots`, whose columns are these fields with `counters` spread out, one
    column per counter."""

    host: str
    boot_id: uuid.UUID
    uid: uuid.UUID = field(default_factory=uuid.uuid4)
    snapshot_at: datetime = field(default_factory=_now)
    version: str | None = None
    counters: Counters = field(default_factory=Counters)
    process_rss_bytes: int = 0
    uptime_seconds: int = 0

    @classmethod
    def columns(cls) -> list[str]:
        return _SNAPSHOT_COLUMNS

    def row(self) -> tuple[Any, ...]:
        counters = self.counters.as_dict()
        return tuple(
            counters[name] if name in counters else getattr(self, name) for name in _SNAPSHOT_COLUMNS
        )

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> MetricsSnapshot:
        values = dict(payload)
        counters = Counters(**{name: values.pop(name) for name in _COUNTER_NAMES if name in values})
        return from_payload(cls, {**values, "counters": counters})


_COUNTER_NAMES = field_names(Counters)
_SNAPSHOT_COLUMNS = [
    column
    for name in field_names(MetricsSnapshot)
    for column in (_COUNTER_NAMES if name == "counters" else [name])
]


async def write_metrics_snapshots(conn: AsyncConnection, snapshots: Sequence[MetricsSnapshot]) -> int:
    return await insert_batch(
        conn,
        "metrics_snapshots",
        _SNAPSHOT_COLUMNS,
        [s.row() for s in snapshots],
        on_conflict="(uid) DO NOTHING",
        expect_new=True,
    )


async def _ship_snapshots(conn: AsyncConnection, payloads: list[dict[str, Any]]) -> None:
    await write_metrics_snapshots(conn, [MetricsSnapshot.from_payload(p) for p in payloads])


OUTBOX_HANDLERS: dict[str, Handler] = {METRICS_SNAPSHOT: _ship_snapshots}


def snapshot(counters: Counters, process: Process, host: str, version: str) -> MetricsSnapshot:
    return MetricsSnapshot(
        host=host,
        boot_id=process.boot_id,
        version=version,
        counters=Counters(**counters.as_dict()),  # a copy: the live counters go on
        process_rss_bytes=process.rss_bytes,
        uptime_seconds=process.uptime_s,
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
