"""How big should search_sessions' window of newest messages be?

`openclaw.mcp.curated.search_sessions` reads the newest RECENT_MESSAGES messages newest
first, and only if they hold too few matches looks the older ones up through the word
index. A bigger window costs every search that ends in the second step (a rare word) a
longer scan; a smaller one sends more words to the second step, whose cost grows with how
often the word occurs in the older messages. This measures that trade-off on the database
that bench/mcp_queries.py builds, for four words: a common one, the rarest vocabulary
word (about 0.03% of the messages), two words together, and a word put in 40 messages
only.

    .venv/bin/python bench/mcp_queries.py --keep       # prints the bench database's URL
    .venv/bin/python bench/search_window.py --database-url URL [--repeat 15]

Direct calls (no MCP layer), p50 / p95 in ms per window size, every size measured in
the same rounds; the ratio column compares the p95 with that of the current setting.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mcp_queries import COMMON_WORD, RARE_WORD, TWO_WORDS, vocabulary

from openclaw.mcp import curated

WINDOWS = [5_000, 10_000, 25_000, 50_000, 100_000, 200_000]
CURRENT = curated.RECENT_MESSAGES


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


async def search_ms(conn: AsyncConnection, window: int, text: str) -> float:
    curated.RECENT_MESSAGES = window  # read at each call
    started = time.perf_counter()
    async with conn.transaction():  # its SET LOCALs end with the call, as on the reader pool
        await curated.search_sessions(conn, text, 10)
    return (time.perf_counter() - started) * 1000


async def run(url: str, repeat: int, seed: int) -> None:
    words, _ = vocabulary(random.Random(seed))  # as bench/mcp_queries.py draws them
    cases = {
        f"common {COMMON_WORD!r}": COMMON_WORD,
        f"tail {words[-1]!r}": words[-1],
        f"two words {TWO_WORDS!r}": TWO_WORDS,
        f"rare {RARE_WORD!r}": RARE_WORD,
    }
    times: dict[tuple[str, int], list[float]] = {(c, w): [] for c in cases for w in WINDOWS}
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        for round_ in range(repeat + 2):  # two warm-up rounds
            for (label, window), measured in times.items():
                elapsed = await search_ms(conn, window, cases[label])
                if round_ >= 2:
                    measured.append(elapsed)
    curated.RECENT_MESSAGES = CURRENT
    print(f"{'word':<28} {'window':>8} {'p50 ms':>8} {'p95 ms':>8} {'p95 ratio':>10}")
    for label in cases:
        base = p95(times[(label, CURRENT)]) if CURRENT in WINDOWS else None
        for window in WINDOWS:
            measured = times[(label, window)]
            ratio = f"{p95(measured) / base:.2f}x" if base else "-"
            mark = " (current)" if window == CURRENT else ""
            print(
                f"{label:<28} {window:>8} {statistics.median(measured):>8.1f} {p95(measured):>8.1f}"
                f" {ratio:>10}{mark}"
            )
    worst = {w: max(p95(times[(c, w)]) for c in cases) for w in WINDOWS}
    print("\nworst p95 over the four words: " + ", ".join(f"{w}: {ms:.1f} ms" for w, ms in worst.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", required=True, help="a database kept by bench/mcp_queries.py --keep"
    )
    parser.add_argument("--repeat", type=int, default=15, help="measured calls per word and window")
    parser.add_argument("--seed", type=int, default=1, help="the seed the database was generated with")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    try:
        asyncio.run(run(args.database_url, args.repeat, args.seed))
    except psycopg.OperationalError as exc:
        sys.exit(f"search_window: cannot connect: {str(exc).strip().splitlines()[0]}")


if __name__ == "__main__":
    main()
