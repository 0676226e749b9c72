"""The LLM call log's persistence: cost on the turn, flush rate, drain after an outage.

    python bench/llm_log.py [--turns 2000] [--backlog 50000] [--outage 60]

1. Turns against a local fake provider that answers at once (a loopback HTTP server):
   the time each call spends on persistence (LlmLog.record: ring buffer + durable
   spool). Target: under 1 ms at p99.
2. The outbox's sustained flush rate into Postgres (`Flusher.drain` of a spooled
   backlog) against a raw COPY of the same rows in the same run. Target: >= 50%.
3. An outage: Postgres is cut off (a TCP proxy in front of it) for --outage seconds while
   turns go on; then the time until the backlog has drained, and a check that every
   call arrived exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_llm import FakeLlm, Step, completion, serve
from tests.sessions_support import TcpProxy

from openclaw.app import OUTBOX_HANDLERS as HANDLERS
from openclaw.chat import Message
from openclaw.db import Database, migrate
from openclaw.db.embedded import start_embedded
from openclaw.db.records import from_payload, to_payload
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.llm.config import parse_llm_config
from openclaw.llm.log import LlmLog
from openclaw.llm.records import LLM_CALL, LlmCall
from openclaw.llm.router import Router, build_providers
from openclaw.outbox import Flusher, Spool


class TimedLog(LlmLog):
    """The real log, timing each record()."""

    timings_ms: list[float]

    def record(self, call: LlmCall) -> None:
        started = time.perf_counter()
        super().record(call)
        self.timings_ms.append((time.perf_counter() - started) * 1000)


class Answers(FakeLlm):
    """A provider that answers every request at once."""

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        self.script = [Step(body=completion("ok " * 50))]
        self.requests.clear()
        self.headers.clear()
        await super().__call__(scope, receive, send)


async def turns(fake: FakeLlm, spool: Spool, count: int, rate_hz: float | None = None) -> TimedLog:
    config = parse_llm_config(
        {
            "models": {
                "providers": {"fake": {"baseUrl": fake.base_url, "models": ["m"]}},
                "fallbacks": ["fake/m"],
            }
        },
        Path("bench.json"),
    )
    log = TimedLog(spool, host="bench")
    log.timings_ms = []
    async with httpx.AsyncClient() as client:
        router = Router(config, build_providers(config, client), log)
        for i in range(count):
            await router.chat([Message.user(f"turn {i}: " + "hello " * 40)], session_key=f"bench:{i % 50}")
            if rate_hz:
                await asyncio.sleep(1 / rate_hz)
    return log


async def raw_copy_rate(url: str, calls: list[LlmCall]) -> float:
    columns = [f for f in LlmCall.__dataclass_fields__]
    async with await AsyncConnection.connect(url) as conn:
        await conn.execute("CREATE TABLE raw_llm_calls (LIKE llm_calls INCLUDING ALL)")
        await conn.commit()
        started = time.perf_counter()
        for i in range(0, len(calls), 1000):
            async with conn.cursor() as cur:
                stmt = sql.SQL("COPY raw_llm_calls ({}) FROM STDIN").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns))
                )
                async with cur.copy(stmt) as copy:
                    for call in calls[i : i + 1000]:
                        await copy.write_row(tuple(getattr(call, c) for c in columns))
            await conn.commit()
        rate = len(calls) / (time.perf_counter() - started)
        await conn.execute("DROP TABLE raw_llm_calls")
        await conn.commit()
    return rate


async def count_calls(url: str) -> tuple[int, int]:
    async with await AsyncConnection.connect(url) as conn:
        row = await (await conn.execute("SELECT count(*), count(DISTINCT id) FROM llm_calls")).fetchone()
        assert row is not None
        return row[0], row[1]


async def main_async(url: str, args: argparse.Namespace, tmp: Path) -> None:
    with serve(Answers()) as fake:
        # 1. persistence on the turn path
        spool = Spool(tmp / "turns.db")
        log = await turns(fake, spool, args.turns)
        q = statistics.quantiles(log.timings_ms, n=100)
        print(f"\n1. persistence per LLM call ({args.turns:,} calls; ring buffer + durable spool)\n")
        p50, worst = statistics.median(log.timings_ms), max(log.timings_ms)
        print(f"   p50 {p50:.3f} ms   p99 {q[98]:.3f} ms   max {worst:.3f} ms")

        # 2. sustained flush rate against a raw COPY of the same rows, interleaved, best of two
        template = log.recent(1)[0]
        rows = []
        for i in range(args.backlog):
            payload = to_payload(template)
            payload["id"] = str(uuid.uuid4())
            payload["session_key"] = f"bench:{i % 500}"
            rows.append((LLM_CALL, payload))
        flush_rates, copy_rates = [], []
        for round_ in range(2):
            backlog = Spool(tmp / f"backlog{round_}.db")
            for i in range(0, len(rows), 5000):
                backlog.append_many(rows[i : i + 5000])
            async with await AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute("TRUNCATE llm_calls")
            async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=url)) as db:
                flusher = Flusher(backlog, db, HANDLERS)
                started = time.perf_counter()
                assert await flusher.drain(timeout_s=600)
                flush_rates.append(args.backlog / (time.perf_counter() - started))
            copy_rates.append(await raw_copy_rate(url, [from_payload(LlmCall, p) for _, p in rows]))
        flush_rate, copy_rate = max(flush_rates), max(copy_rates)
        print(f"\n2. flush of a {args.backlog:,}-entry backlog into llm_calls\n")
        print(f"   {'method':<34} {'rows/s':>9} {'vs COPY':>8}")
        print(f"   {'raw COPY of the same rows':<34} {copy_rate:>9,.0f} {1:>8.0%}")
        ratio = flush_rate / copy_rate
        print(f"   {'outbox flusher (spool -> Postgres)':<34} {flush_rate:>9,.0f} {ratio:>8.0%}")

        # 3. an outage
        params = conninfo_to_dict(url)
        proxy = TcpProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
        await proxy.start()
        proxied = make_conninfo(url, host="127.0.0.1", port=proxy.port)
        before = await count_calls(url)
        spool = Spool(tmp / "outage.db")
        async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=proxied), wait=False) as db:
            flusher = Flusher(spool, db, HANDLERS, connect_timeout_s=1)  # the gateway's back-off
            stop = asyncio.Event()
            running = asyncio.create_task(flusher.run(stop))
            proxy.cut()
            started = time.perf_counter()
            made = 0
            while time.perf_counter() - started < args.outage:
                log = await turns(fake, spool, 20)
                made += 20
            waiting = spool.pending()
            proxy.restore()
            restored = time.perf_counter()
            # Polling the spool file: no event says when another task emptied it.
            while spool.pending():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            drain_s = time.perf_counter() - restored
            stop.set()
            await running
        await proxy.stop()
        after = await count_calls(url)
        arrived = after[0] - before[0]
        print(f"\n3. Postgres cut off for {args.outage:g} s while turns went on\n")
        print(f"   calls made during the outage {made:,}; waiting in the outbox at the end {waiting:,}")
        print(
            f"   backlog drained {drain_s:.2f} s after Postgres came back; arrived {arrived:,}, "
            f"duplicates {after[0] - after[1]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--outage", type=float, default=60.0)
    args = parser.parse_args()
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)  # the pool's reconnect chatter in the outage
    logging.getLogger("openclaw.outbox").setLevel(logging.ERROR)
    server = os.environ.get("OPENCLAW_TEST_DATABASE_URL") or start_embedded(
        Path(os.environ.get("OPENCLAW_HOME", Path.home() / ".openclaw")) / "pgdata"
    )
    name = f"openclaw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(server, dbname=name)

    async def go() -> None:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            await migrate(conn)
        with tempfile.TemporaryDirectory() as tmp:
            await main_async(url, args, Path(tmp))

    try:
        asyncio.run(go())
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
