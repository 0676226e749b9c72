"""What a backlog in the outbox costs a turn (issue 11).

    python bench/outbox_backlog.py [--backlogs 0,100000,1000000] [--appends 2000]

For each backlog size, a spool is filled with that many LLM-call entries (as an outage
would leave it), then an event loop makes --appends appends while a 10 ms ticker runs:

- `submit`: what an LLM call costs the turn (hand-over to the writer thread);
- `put`: a durable append, awaited (a session write during an outage), end to end;
- stall: the longest the ticker was late, i.e. the longest the event loop was blocked.

Ratios are against the empty spool, measured in the same run. Goals: p99 at 1M at most
1.5x p99 at 0, and no stall over 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from openclaw.db.records import to_payload
from openclaw.llm.records import LLM_CALL, LlmCall
from openclaw.outbox import Spool

TICK_S = 0.010


def payload() -> dict[str, object]:
    return to_payload(LlmCall(model="kimi-k2", session_key="tg:main:1:2", response_content="ok " * 50))


def fill(spool: Spool, count: int) -> None:
    entry = (LLM_CALL, payload())
    for start in range(0, count, 20_000):
        spool.append_many([entry] * min(20_000, count - start))


async def ticker(stop: asyncio.Event, lags_ms: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
        lags_ms.append((loop.time() - due) * 1000)


async def measure(spool: Spool, appends: int) -> dict[str, float]:
    stop = asyncio.Event()
    lags: list[float] = []
    ticking = asyncio.create_task(ticker(stop, lags))
    await asyncio.sleep(0.05)
    submit_ms, put_ms = [], []
    for i in range(appends):
        entry = payload()
        started = time.perf_counter()
        assert spool.submit(LLM_CALL, entry)
        submit_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assert await spool.put("session.messages", {"key": f"k{i % 20}", "messages": []})
        put_ms.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.001)  # turns come apart
    stop.set()
    await ticking

    def p99(values: list[float]) -> float:
        return statistics.quantiles(values, n=100)[98]

    stats_started = time.perf_counter()
    for _ in range(1000):
        spool.stats()
    return {
        "submit_p50": statistics.median(submit_ms),
        "submit_p99": p99(submit_ms),
        "put_p50": statistics.median(put_ms),
        "put_p99": p99(put_ms),
        "stall": max(lags),
        "stats_us": (time.perf_counter() - stats_started) * 1000,  # per call, in µs (1000 calls)
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlogs", default="0,100000,1000000")
    parser.add_argument("--appends", type=int, default=2000)
    args = parser.parse_args()
    backlogs = [int(b) for b in args.backlogs.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backlog in backlogs:
            spool = Spool(Path(tmp) / f"spool-{backlog}.db", max_entries=backlog + 10 * args.appends)
            started = time.perf_counter()
            fill(spool, backlog)
            filled_s = time.perf_counter() - started
            spool.refresh()
            assert spool.pending() == backlog
            results[backlog] = asyncio.run(measure(spool, args.appends))
            results[backlog]["fill_s"] = filled_s
            spool.close()
            (Path(tmp) / f"spool-{backlog}.db").unlink()
    base = results[backlogs[0]]
    print(
        f"\nappends during a backlog ({args.appends:,} of each kind; ms; ratio vs backlog {backlogs[0]:,})\n"
    )
    header = f"{'backlog':>10} {'submit p50':>11} {'submit p99':>11} {'put p50':>9} {'put p99':>9}"
    print(header + f" {'p99 ratio':>10} {'max stall':>10} {'stats() µs':>11}")
    for backlog, r in results.items():
        print(
            f"{backlog:>10,} {r['submit_p50']:>11.3f} {r['submit_p99']:>11.3f} {r['put_p50']:>9.3f}"
            f" {r['put_p99']:>9.3f} {r['put_p99'] / base['put_p99']:>9.2f}x {r['stall']:>8.1f}ms"
            f" {r['stats_us']:>11.2f}"
        )
    print(
        "\nfilling: "
        + ", ".join(f"{b:,} entries in {r['fill_s']:.1f} s" for b, r in results.items() if b)
        + "\ngoals: put p99 at the largest backlog <= 1.5x the empty spool's, no stall over 20 ms"
    )


if __name__ == "__main__":
    main()
