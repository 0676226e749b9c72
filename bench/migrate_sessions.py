"""`openclaw migrate-sessions` against a raw COPY and a naive importer, in one run.

    python bench/migrate_sessions.py [--messages 500000] [--sessions 2000] [--agents 3]

1. Generates Rust-format sessions.db files (openclaw-rs schema): realistic message sizes,
   tool calls, reasoning, unicode, NULLs.
2. Import rates, on the same server in the same run:
   - raw COPY: the same rows streamed from the same files and COPYed into an empty table
     shaped like `messages` (same indexes): the physical limit here;
   - openclaw: `import_file`, the code behind `openclaw migrate-sessions`;
   - naive: one INSERT ... ON CONFLICT per row (on a slice of the rows: it is slow).
   Target: openclaw >= 50% of raw COPY.
3. Peak memory of the import (a child process each) for the full input and a fifth of it:
   streaming means it stays flat as the input grows.
4. Latency of append_message and load_llm_messages on a 1,000-message session, for each
   backend (sqlite, postgres, dual).

Without --url it creates throwaway databases on $OPENCLAW_TEST_DATABASE_URL or the
embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sessions_support import write_rust_db

from openclaw.chat import Message, Role
from openclaw.db import Database, migrate
from openclaw.db.embedded import start_embedded
from openclaw.db.target import DatabaseTarget, TargetSource
from openclaw.outbox import Spool
from openclaw.sessions import Backend, open_store
from openclaw.sessions.binary_copy import MESSAGE_TYPES, register_message_dumpers
from openclaw.sessions.importer import import_file
from openclaw.sessions.pg_writes import MESSAGE_COLUMNS
from openclaw.sessions.sqlite_store import from_ms

WORDS = (
    "the gateway answered a question about postgres migrations with tool calls and ünïcode 🚀 données 日本語",
    "extra words for realistic length",
)
WORDS = tuple(" ".join(WORDS).split())


def generate(root: Path, agents: int, sessions: int, messages: int, seed: int = 7) -> list[Path]:
    rnd = random.Random(seed)
    per_agent_sessions = sessions // agents
    per_session = messages // sessions
    paths = []
    t0 = 1_700_000_000_000
    for a in range(agents):
        agent = f"agent{a}"
        session_rows, message_rows = [], []
        for s in range(per_agent_sessions):
            key = f"tg:{agent}:{rnd.randrange(10**6)}:{s}"
            start = t0 + rnd.randrange(10**9)
            ms = start
            for i in range(per_session):
                ms += rnd.randrange(500, 60_000)
                kind = i % 4
                if kind == 0:
                    row = (
                        key,
                        "user",
                        " ".join(rnd.choices(WORDS, k=rnd.randrange(3, 60))),
                        None,
                        None,
                        None,
                        ms,
                    )
                elif kind == 1 and rnd.random() < 0.4:
                    calls = json.dumps(
                        [
                            {
                                "id": f"call_{i}",
                                "type": "function",
                                "function": {
                                    "name": "exec",
                                    "arguments": json.dumps({"command": "ls -la " + rnd.choice(WORDS)}),
                                },
                            }
                        ]
                    )
                    row = (
                        key,
                        "assistant",
                        None,
                        "reasoning " * rnd.randrange(0, 20) or None,
                        calls,
                        None,
                        ms,
                    )
                elif kind == 2:
                    row = (
                        key,
                        "tool",
                        "output line\n" * rnd.randrange(1, 80),
                        None,
                        None,
                        f"call_{i - 1}",
                        ms,
                    )
                else:
                    row = (
                        key,
                        "assistant",
                        " ".join(rnd.choices(WORDS, k=rnd.randrange(10, 300))),
                        None,
                        None,
                        None,
                        ms,
                    )
                message_rows.append(row)
            session_rows.append((key, agent, "kimi-k2", start, ms, rnd.randrange(10**5)))
        path = root / "agents" / agent / "sessions.db"
        write_rust_db(path, session_rows, message_rows)
        paths.append(path)
    return paths


async def raw_copy(url: str, paths: list[Path]) -> int:
    """The same rows streamed from the files and COPYed as they are (binary, with the
    importer's dumpers) into an empty table shaped like messages: the physical limit."""
    import sqlite3

    rows = 0
    async with await AsyncConnection.connect(url) as conn:
        await conn.execute("DROP TABLE IF EXISTS raw_messages")
        await conn.execute("CREATE TABLE raw_messages (LIKE messages INCLUDING ALL)")
        await conn.commit()
        cols = sql.SQL(", ").join(map(sql.Identifier, MESSAGE_COLUMNS))
        session_ids: dict[str, int] = {}
        for n, path in enumerate(paths):
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            async with conn.cursor() as cur:
                register_message_dumpers(cur)
                copy_sql = sql.SQL("COPY raw_messages ({}) FROM STDIN (FORMAT BINARY)").format(cols)
                async with cur.copy(copy_sql) as copy:
                    copy.set_types(MESSAGE_TYPES)
                    for rowid, key, role, content, reasoning, calls, call_id, ms in source.execute(
                        "SELECT id, session_key, role, content, reasoning_content, tool_calls_json,"
                        " tool_call_id, timestamp_ms FROM messages ORDER BY session_key, id"
                    ):
                        sid = session_ids.setdefault(key, len(session_ids) + 1)
                        uid = n.to_bytes(8, "big") + rowid.to_bytes(8, "big")
                        await copy.write_row((uid, sid, role, content, reasoning, calls, call_id, ms))
                        rows += 1
            source.close()
        await conn.commit()
        await conn.execute("DROP TABLE raw_messages")
        await conn.commit()
    return rows


async def openclaw_import(url: str, paths: list[Path]) -> int:
    async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=url)) as db:
        inserted = 0
        for path in paths:
            report = await import_file(db, path)
            assert report.ok, report.error
            inserted += report.messages_inserted
    return inserted


async def naive_import(url: str, paths: list[Path], limit: int) -> int:
    """One INSERT per row, a transaction per session: what a quick script would do."""
    import sqlite3

    rows = 0
    async with await AsyncConnection.connect(url) as conn:
        for path in paths:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            for key, agent, model, created, updated, tokens in source.execute("SELECT * FROM sessions"):
                cur = await conn.execute(
                    "INSERT INTO sessions"
                    " (session_key, agent_name, model, created_at, updated_at, total_tokens)"
                    " VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (session_key) DO UPDATE SET model = EXCLUDED.model RETURNING id",
                    (key, agent, model, from_ms(created), from_ms(updated), tokens),
                )
                sid = (await cur.fetchone())[0]  # type: ignore[index]
                for rowid, role, content, reasoning, calls, call_id, ms in source.execute(
                    "SELECT id, role, content, reasoning_content, tool_calls_json, tool_call_id, timestamp_ms"
                    " FROM messages WHERE session_key = ? ORDER BY id",
                    (key,),
                ):
                    await conn.execute(
                        "INSERT INTO messages (uid, session_id, role, content, reasoning_content,"
                        " tool_calls_json, tool_call_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (uid) DO NOTHING",
                        (
                            uuid.uuid5(uuid.NAMESPACE_URL, f"{path}/{rowid}"),
                            sid,
                            role,
                            content,
                            reasoning,
                            calls,
                            call_id,
                            from_ms(ms),
                        ),
                    )
                    rows += 1
                await conn.commit()
                if rows >= limit:
                    return rows
            source.close()
    return rows


def fresh_database(server: str) -> str:
    name = f"openclaw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(server, dbname=name)

    async def go() -> None:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            await migrate(conn)

    asyncio.run(go())
    return url


def drop_database(server: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))


def peak_rss_of_import(url: str, paths: list[Path]) -> float:
    """Peak RSS (MiB) of a child process that imports the files. VmHWM, not ru_maxrss:
    the latter keeps the parent's high-water mark across fork and exec."""
    code = (
        "import asyncio, re, sys; sys.path[:0] = ['src', 'bench', '.'];"
        "from pathlib import Path; import migrate_sessions as b;"
        f"asyncio.run(b.openclaw_import({url!r}, [Path(p) for p in {[str(p) for p in paths]!r}]));"
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


async def latencies(url: str, home: Path) -> list[tuple[str, float, float, float, float]]:
    results = []
    async with await Database.open(DatabaseTarget(TargetSource.OPTION, url=url)) as db:
        for backend in Backend:
            spool = Spool(home / backend.value / "outbox" / "spool.db")
            store = open_store(backend, agent="main", home=home / backend.value, database=db, spool=spool)
            key = f"tg:main:1:{backend.value}"
            await store.create_session(key, "main", "kimi-k2")
            filler = [
                Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, content=" ".join(WORDS) * 3)
                for i in range(1000)
            ]
            for start in range(0, 1000, 100):
                await store.append_messages(key, filler[start : start + 100])
            appends, loads = [], []
            for i in range(200):
                t = time.perf_counter()
                await store.append_message(key, Message(Role.USER, content=f"message {i} " + " ".join(WORDS)))
                appends.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                window = await store.load_llm_messages(key)
                loads.append((time.perf_counter() - t) * 1000)
                assert window
            await store.close()
            spool.close()
            q = statistics.quantiles
            results.append(
                (
                    backend.value,
                    statistics.median(appends),
                    q(appends, n=20)[18],
                    statistics.median(loads),
                    q(loads, n=20)[18],
                )
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--naive-rows", type=int, default=20_000)
    args = parser.parse_args()
    server = os.environ.get("OPENCLAW_TEST_DATABASE_URL") or start_embedded(
        Path(os.environ.get("OPENCLAW_HOME", Path.home() / ".openclaw")) / "pgdata"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        paths = generate(root / "full", args.agents, args.sessions, args.messages)
        small = generate(root / "small", args.agents, args.sessions // 5, args.messages // 5)
        size = sum(p.stat().st_size for p in paths) / 2**20
        print(
            f"generated {args.messages:,} messages in {args.sessions:,} sessions of {args.agents} agents"
            f" ({size:.0f} MiB of SQLite) in {time.perf_counter() - t:.0f} s"
        )

        rates: dict[str, list[float]] = {
            "raw COPY (baseline)": [],
            "openclaw migrate-sessions": [],
            "naive INSERT per row": [],
        }
        for _ in range(2):  # interleaved rounds, best of two: the machine is noisy
            url = fresh_database(server)
            try:
                t = time.perf_counter()
                n = asyncio.run(raw_copy(url, paths))
                rates["raw COPY (baseline)"].append(n / (time.perf_counter() - t))
                t = time.perf_counter()
                n = asyncio.run(openclaw_import(url, paths))
                rates["openclaw migrate-sessions"].append(n / (time.perf_counter() - t))
            finally:
                drop_database(server, url)
            url = fresh_database(server)
            try:
                t = time.perf_counter()
                n = asyncio.run(naive_import(url, paths, args.naive_rows))
                rates["naive INSERT per row"].append(n / (time.perf_counter() - t))
            finally:
                drop_database(server, url)
        baseline = max(rates["raw COPY (baseline)"])
        print(f"\nimport of {args.messages:,} messages (naive: first {args.naive_rows:,})\n")
        print(f"{'method':<28} {'messages/s':>12} {'vs COPY':>8}")
        for name, values in rates.items():
            print(f"{name:<28} {max(values):>12,.0f} {max(values) / baseline:>8.0%}")

        print("\npeak memory of the import (child process)\n")
        for label, files, count in (
            ("1/5 of the input", small, args.messages // 5),
            ("full input", paths, args.messages),
        ):
            url = fresh_database(server)
            try:
                print(f"{label:<28} {count:>12,} messages {peak_rss_of_import(url, files):>8.0f} MiB")
            finally:
                drop_database(server, url)

        url = fresh_database(server)
        try:
            rows = asyncio.run(latencies(url, root / "latency"))
        finally:
            drop_database(server, url)
        print("\nsession on 1,000 messages: latency in ms\n")
        print(
            f"{'backend':<10} {'append p50':>11} {'append p95':>11} {'history p50':>12} {'history p95':>12}"
        )
        for backend, a50, a95, l50, l95 in rows:
            print(f"{backend:<10} {a50:>11.2f} {a95:>11.2f} {l50:>12.2f} {l95:>12.2f}")


if __name__ == "__main__":
    main()
