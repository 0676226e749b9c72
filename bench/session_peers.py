"""openclaw's session store against the libraries a user would pick instead, on the same
Postgres, in the same run, interleaved round by round (issue 14).

    python bench/session_peers.py --quick            # a few minutes
    python bench/session_peers.py [--json out.json]  # the full run (~20 min)
    options: --url URL (the server; default $OPENCLAW_TEST_DATABASE_URL or the local one),
             --peers-venv DIR (default bench/.peers-venv, created and filled if needed)

Systems, each in its own database on the same server:

- openclaw: the public `SessionStore`, Postgres backend (`open_store(Backend.POSTGRES)`
  on `Database.open`, default pool), in this process (the project venv);
- langchain-postgres `PostgresChatMessageHistory`, sync and async;
- openai-agents `SQLAlchemySession`, with asyncpg and with psycopg;
- LangGraph: a `StateGraph(MessagesState)` (`add_messages`) on `AsyncPostgresSaver`.

The peers run in a child process (`bench/session_peers_child.py`) in their own venv,
pinned (PINS below), a long-lived worker taking one JSON command a line. Each round sends
each operation to every system in turn (the order rotating from round to round), and each
process times the library call alone, so machine noise hits all alike.

Operations:
- append one message to a session of 10 / 100 / 1000 messages (a fresh session prefilled
  each round; it grows by the round's reps);
- a turn: user + assistant message in one call, on a session of 100;
- load the last 40 messages of a session of 100 / 1,000 / 10,000 (openclaw:
  `load_llm_messages`; langchain-postgres has no limit: `aget_messages()[-40:]`;
  openai-agents `get_items(limit=40)`; LangGraph `aget_state()` and the last 40);
- concurrency: 20 sessions x 200 turns (user + assistant), pool of 4 and of 20: turns/s
  (after 2 untimed warm-up turns per session, which also open the pool's connections);
- bytes per turn: the growth of every table's pg_total_relation_size (heap, indexes,
  TOAST) in the system's database over 20 sessions x N turns, each side measured after a
  database-wide VACUUM (ANALYZE) (no CHECKPOINT: relation sizes do not depend on it). It
  runs first, on the empty databases. Dead tuples left by updates stay counted: bloat is a
  cost.

Not apples to apples (the targets ignore it; know it when reading the tables):
- openclaw stores more per message: a random uid (exactly-once delivery through the
  outbox) with its unique index, the message's original timestamp, and a stored generated
  full-text column (`content_tsv`) with a GIN index; and it keeps a sessions row (updated
  per append) with counts and token totals. langchain-postgres stores (serial, uuid, jsonb,
  created_at) with one index; openai-agents a sessions row (locked FOR UPDATE and updated
  per append) and a text column; LangGraph a checkpoint per write whose `messages` blob is
  the whole list again (so its cost grows with the session).
- openclaw's `load_llm_messages` also applies the history-window rules (token budget,
  orphan tool results) and builds `Message` objects; the peers build their own objects.
- langchain-postgres has no "last N" call: it reads and parses the whole session.
- openclaw runs in the parent, the peers in the child; the two never run at the same time.
- Items for openai-agents are its "easy input messages" ({"role", "content"}).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

import session_peers_child as child  # noqa: E402 - the worker's shared code (no peer imports)

from openclaw.chat import Message, Role  # noqa: E402
from openclaw.db import Database, migrate  # noqa: E402
from openclaw.db.reader import READER, WRITER, login_role  # noqa: E402
from openclaw.db.target import DatabaseTarget, TargetSource  # noqa: E402
from openclaw.sessions import Backend, open_store  # noqa: E402
from openclaw.sessions.store import SessionStore  # noqa: E402

DEFAULT_URL = os.environ.get("OPENCLAW_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
PINS = (
    "langchain-postgres==0.0.19",
    "langchain-core==1.8.3",
    "openai-agents==0.24.0",
    "SQLAlchemy==2.1.9",
    "asyncpg==0.32.0",
    "langgraph==1.2.24",
    "langgraph-checkpoint==4.3.2",
    "langgraph-checkpoint-postgres==3.2.0",
    "psycopg[binary]==3.3.9",
    "psycopg-pool==3.3.3",
)
OPENCLAW = "openclaw"
SYSTEMS = (OPENCLAW, *child.PEERS)
SLUGS = {
    OPENCLAW: "openclaw",
    "langchain-pg sync": "lc_sync",
    "langchain-pg async": "lc_async",
    "openai-agents asyncpg": "oa_asyncpg",
    "openai-agents psycopg": "oa_psycopg",
    "langgraph": "langgraph",
}
TARGET_LATENCY = 0.8  # openclaw <= 0.8x the fastest peer, p50 and p95
TARGET_THROUGHPUT = 1.2  # openclaw >= 1.2x the best peer's turns/s


@dataclass(frozen=True)
class Mode:
    rounds: int
    reps: int  # calls per system, operation and round
    conc_rounds: int
    conc_turns: int
    bytes_turns: int
    append_sizes: tuple[int, ...] = (10, 100, 1000)
    turn_history: int = 100
    load_sizes: tuple[int, ...] = (100, 1_000, 10_000)
    conc_sessions: int = 20
    conc_warm: int = 2
    pools: tuple[int, ...] = (4, 20)
    bytes_sessions: int = 20


QUICK = Mode(rounds=3, reps=10, conc_rounds=1, conc_turns=50, bytes_turns=25)
FULL = Mode(rounds=12, reps=20, conc_rounds=2, conc_turns=200, bytes_turns=100)


# --- openclaw, in this process, behind the child's Peer interface -----------------------
class OpenclawPeer(child.Peer):
    """openclaw's public store: `open_store(Backend.POSTGRES, ...)` on `Database.open`
    (default pool: 1 to 4 connections), `append_messages` and `load_llm_messages`."""

    def __init__(self, url: str, home: Path) -> None:
        super().__init__(url)
        self.home = home

    def target(self) -> DatabaseTarget:
        return DatabaseTarget(TargetSource.OPTION, url=self.url)

    async def open(self) -> None:
        self.db = await Database.open(self.target())
        self.store = open_store(Backend.POSTGRES, agent="main", home=self.home, database=self.db)

    @staticmethod
    def key(key: str) -> str:
        return f"cron:main:{key}"

    def messages(self, pairs: list[tuple[str, str]]) -> list[Any]:
        return [Message(Role(r), content=t) for r, t in pairs]

    async def append(self, key: str, msgs: list[Any]) -> None:
        await self.store.append_messages(self.key(key), msgs)

    async def load_last(self, key: str) -> list[Any]:
        return await self.store.load_llm_messages(self.key(key))

    async def concurrent(self, pool: int) -> Callable[[str, list[Any]], Awaitable[None]]:
        self.pool_db = await Database.open(self.target(), min_size=pool, max_size=pool)
        store: SessionStore = open_store(
            Backend.POSTGRES, agent="main", home=self.home, database=self.pool_db
        )

        async def turn(key: str, msgs: list[Any]) -> None:
            await store.append_messages(self.key(key), msgs)

        return turn

    async def close_pool(self) -> None:
        await self.pool_db.close()

    async def close(self) -> None:
        await self.store.close()
        await self.db.close()


# --- the peers' venv and worker ----------------------------------------------------------
def ensure_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating the peers' venv in {path}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    check = (
        "import sys; from importlib.metadata import version as v;"
        "pins = [p.replace('[binary]', '').split('==') for p in sys.argv[1:]];"
        "sys.exit(any(v(n) != want for n, want in pins))"
    )
    if subprocess.run([str(python), "-c", check, *PINS], capture_output=True).returncode != 0:
        print("installing the pinned peers: " + " ".join(PINS), file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
    return python


class Child:
    def __init__(self, python: Path) -> None:
        # Its own session: Ctrl-C reaches this process only, which then closes it.
        self.proc = subprocess.Popen(
            [str(python), str(BENCH / "session_peers_child.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def request(self, cmd: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer worker died (exit {self.proc.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"peer worker, {cmd['cmd']} {cmd.get('system', '')}:\n{answer['error']}")
        return answer["ok"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request({"cmd": "close"})
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()


class Systems:
    """Sends a command to openclaw (here) or to a peer (the child)."""

    def __init__(self, runner: asyncio.Runner, local: child.Worker, worker: Child) -> None:
        self.runner, self.local, self.worker = runner, local, worker

    def __call__(self, system: str, cmd: str, **args: Any) -> Any:
        message = {"cmd": cmd, "system": system, **args}
        if system == OPENCLAW:
            return self.runner.run(self.local.handle(message))
        return self.worker.request(message)


# --- databases --------------------------------------------------------------------------
@contextmanager
def databases(server: str) -> Iterator[dict[str, str]]:
    """A database per system (openclaw's migrated), all dropped at the end, with the
    reader and writer roles openclaw's migration creates for its database."""
    run = uuid.uuid4().hex[:8]
    names = {s: f"openclaw_bench_peers_{run}_{SLUGS[s]}" for s in SYSTEMS}
    created: list[str] = []
    try:
        with psycopg.connect(server, autocommit=True) as admin:
            for name in names.values():
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
        urls = {s: make_conninfo(server, dbname=n) for s, n in names.items()}

        async def migrated() -> None:
            async with await AsyncConnection.connect(urls[OPENCLAW], autocommit=True) as conn:
                await migrate(conn)

        asyncio.run(migrated())
        yield urls
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            for name in created:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            for kind in (READER, WRITER):
                role = login_role(kind, names[OPENCLAW])
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


def table_sizes(url: str) -> dict[str, int]:
    """Every user table's heap + indexes + TOAST, after a database-wide VACUUM (ANALYZE)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        return {name: size for name, size in conn.execute(SIZES).fetchall()}


# --- statistics and output ---------------------------------------------------------------
def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


def latency_table(title: str, rows: dict[str, dict[str, list[float]]]) -> tuple[str, dict[str, Any]]:
    """Rows: label -> system -> timings. The ratio is openclaw / the fastest peer."""
    peers = [s for s in SYSTEMS if s != OPENCLAW]
    width = max(len(s) for s in SYSTEMS)
    out = [f"\n{title} (ms; ratio = openclaw / fastest peer, target <= {TARGET_LATENCY})\n"]
    data: dict[str, Any] = {}
    for label, by_system in rows.items():
        stats = {s: (p50(t), p95(t), len(t)) for s, t in by_system.items()}
        best50 = min(peers, key=lambda s: stats[s][0])
        best95 = min(peers, key=lambda s: stats[s][1])
        r50 = stats[OPENCLAW][0] / stats[best50][0]
        r95 = stats[OPENCLAW][1] / stats[best95][1]
        out.append(f"  {label}")
        out.append(f"    {'system':<{width}} {'p50':>9} {'p95':>9} {'n':>5}")
        for s in SYSTEMS:
            a, b, n = stats[s]
            out.append(f"    {s:<{width}} {a:>9.2f} {b:>9.2f} {n:>5}")
        ok50 = "ok" if r50 <= TARGET_LATENCY else "MISS"
        ok95 = "ok" if r95 <= TARGET_LATENCY else "MISS"
        out.append(
            f"    {'ratio':<{width}} {r50:>9.2f} {r95:>9.2f}"
            f"   p50 vs {best50} ({ok50}), p95 vs {best95} ({ok95})"
        )
        data[label] = {
            "systems": {s: {"p50_ms": a, "p95_ms": b, "n": n} for s, (a, b, n) in stats.items()},
            "fastest_peer_p50": best50,
            "fastest_peer_p95": best95,
            "ratio_p50": r50,
            "ratio_p95": r95,
        }
    return "\n".join(out), data


def throughput_table(rows: dict[str, dict[str, list[float]]], mode: Mode) -> tuple[str, dict[str, Any]]:
    peers = [s for s in SYSTEMS if s != OPENCLAW]
    width = max(len(s) for s in SYSTEMS)
    out = [
        f"\nconcurrency: {mode.conc_sessions} sessions x {mode.conc_turns} turns at once, turns/s"
        f" (best of {mode.conc_rounds}; ratio = openclaw / best peer, target >= {TARGET_THROUGHPUT})\n"
    ]
    data: dict[str, Any] = {}
    for label, by_system in rows.items():
        best = {s: max(v) for s, v in by_system.items()}
        top = max(peers, key=lambda s: best[s])
        ratio = best[OPENCLAW] / best[top]
        out.append(f"  {label}")
        for s in SYSTEMS:
            spread = " / ".join(f"{v:.0f}" for v in by_system[s])
            out.append(f"    {s:<{width}} {best[s]:>9.0f}   ({spread})")
        verdict = "ok" if ratio >= TARGET_THROUGHPUT else "MISS"
        out.append(f"    {'ratio':<{width}} {ratio:>9.2f}   vs {top} ({verdict})")
        data[label] = {"turns_per_s": by_system, "best_peer": top, "ratio": ratio}
    return "\n".join(out), data


# --- the run -----------------------------------------------------------------------------
def rotate(items: tuple[str, ...], n: int) -> list[str]:
    n %= len(items)
    return list(items[n:] + items[:n])


def new_key() -> str:
    return str(uuid.uuid4())


def measure_bytes(call: Systems, urls: dict[str, str], mode: Mode) -> tuple[str, dict[str, Any]]:
    turns = mode.bytes_sessions * mode.bytes_turns
    data: dict[str, Any] = {}
    for system in SYSTEMS:
        keys = [new_key() for _ in range(mode.bytes_sessions)]
        before = table_sizes(urls[system])
        call(system, "fill", keys=keys, seed=1, turns=mode.bytes_turns)
        after = table_sizes(urls[system])
        grown = {t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)}
        data[system] = {"bytes_per_turn": sum(grown.values()) / turns, "tables": grown}
    width = max(len(s) for s in SYSTEMS)
    out = [
        f"\nbytes per turn (user + assistant, ~750 characters of text): growth of heap + indexes +"
        f" TOAST over {mode.bytes_sessions} sessions x {mode.bytes_turns} turns, VACUUM (ANALYZE)"
        " before and after\n"
    ]
    for system in SYSTEMS:
        tables = ", ".join(f"{t} {b / turns:.0f}" for t, b in sorted(data[system]["tables"].items()))
        out.append(f"  {system:<{width}} {data[system]['bytes_per_turn']:>8.0f}   ({tables})")
    lean = min(data[s]["bytes_per_turn"] for s in SYSTEMS if s != OPENCLAW)
    out.append(
        f"  {'ratio':<{width}} {data[OPENCLAW]['bytes_per_turn'] / lean:>8.2f}   (openclaw / leanest peer)"
    )
    return "\n".join(out), data


def run(call: Systems, urls: dict[str, str], mode: Mode, started: float) -> tuple[list[str], dict[str, Any]]:
    def progress(what: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {what}", file=sys.stderr, flush=True)

    report: list[str] = []
    results: dict[str, Any] = {}

    progress("bytes per turn")
    text, results["bytes_per_turn"] = measure_bytes(call, urls, mode)
    report.append(text)

    progress("prefilling the load sessions")
    load_keys: dict[int, dict[str, str]] = {}
    for n in mode.load_sizes:
        load_keys[n] = {}
        for system in SYSTEMS:
            load_keys[n][system] = key = new_key()
            call(system, "prefill", key=key, seed=n, count=n)

    appends: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    turns: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    loads: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in range(mode.rounds):
        progress(f"round {r + 1}/{mode.rounds}")
        order = rotate(SYSTEMS, r)
        for h in mode.append_sizes:
            for system in order:
                key = new_key()
                call(system, "prefill", key=key, seed=h + r, count=h)
                appends[f"append 1 message, session of {h:,}"][system] += call(
                    system, "append", key=key, seed=h + r, start=h, reps=mode.reps, size=1
                )
        for system in order:
            key = new_key()
            h = mode.turn_history
            call(system, "prefill", key=key, seed=r, count=h)
            turns[f"turn (user + assistant), session of {h:,}"][system] += call(
                system, "append", key=key, seed=r, start=h, reps=mode.reps, size=2
            )
        for n in mode.load_sizes:
            for system in order:
                loads[f"load last 40 of {n:,}"][system] += call(
                    system, "load", key=load_keys[n][system], reps=mode.reps
                )

    for label, rows in (("append", appends), ("turn", turns), ("load", loads)):
        text, results[label] = latency_table(label, rows)
        report.append(text)

    conc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in range(mode.conc_rounds):
        for pool in mode.pools:
            for system in rotate(SYSTEMS, r + pool):
                progress(f"concurrency round {r + 1}/{mode.conc_rounds}, pool {pool}: {system}")
                keys = [new_key() for _ in range(mode.conc_sessions)]
                seconds = call(
                    system,
                    "concurrency",
                    keys=keys,
                    seed=pool + r,
                    turns=mode.conc_turns,
                    warm=mode.conc_warm,
                    pool=pool,
                )
                conc[f"pool of {pool}"][system].append(mode.conc_sessions * mode.conc_turns / seconds)
    text, results["concurrency"] = throughput_table(conc, mode)
    report.append(text)
    results["openclaw_load_keys"] = {n: keys[OPENCLAW] for n, keys in load_keys.items()}
    return report, results


def diagnose(url: str, load_keys: dict[int, str]) -> str:
    """What Postgres says about openclaw's database after the run: HOT updates of the
    sessions row, and the plans of the history load (`_MESSAGE_SELECT`, private: skipped
    if it is gone) on each load session, as a one-off query plans it (custom plan) and as
    a prepared statement may (generic plan: psycopg prepares a query on its 5th run on a
    connection, and Postgres may then switch to a plan made without the key's value)."""
    lines = ["\nopenclaw's database after the run\n"]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sessions'"
        ).fetchone()
        if row:
            lines.append(f"  sessions: {row[0]:,} updates, {row[1]:,} of them HOT")
        from openclaw.sessions import postgres_store

        select = getattr(postgres_store, "_MESSAGE_SELECT", None)
        order = getattr(postgres_store, "LAST_FIRST", " ORDER BY m.id DESC LIMIT %(limit)s")
        if not isinstance(select, str) or not isinstance(order, str):
            return "\n".join(lines)
        query = (select + order).replace("%(key)s", "$1").replace("%(limit)s", "$2").replace("%s", "$1")
        if "%" in query:  # a shape this does not know
            return "\n".join(lines)
        conn.execute("PREPARE bench_load(text, int) AS " + query)
        for n, key in sorted(load_keys.items()):
            for mode in ("force_custom_plan", "force_generic_plan"):
                conn.execute(f"SET plan_cache_mode = {mode}")
                plan = [
                    p[0]
                    for p in conn.execute(
                        sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_load({}, 40)").format(
                            sql.Literal(OpenclawPeer.key(key))
                        )
                    ).fetchall()
                ]
                lines.append(f"  load last 40 of {n:,}, {mode.split('_')[1]} plan:")
                lines += [f"    {p}" for p in plan if "Planning" not in p]
        conn.execute("RESET plan_cache_mode")
    return "\n".join(lines)


def code_version() -> str:
    """The checkout's commit, and whether the store's files differ from it."""
    root = BENCH.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src/openclaw/sessions", "src/openclaw/db"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown"
    return f"commit {head}" + (" (sessions/db files modified)" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"server to create the databases on ({DEFAULT_URL})"
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and turns: a few minutes")
    parser.add_argument(
        "--peers-venv", type=Path, default=BENCH / ".peers-venv", help="the peers' venv (created if missing)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-': stdout)")
    parser.add_argument("--rounds", type=int, help="override the mode's rounds")
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    if args.rounds:
        mode = Mode(**{**asdict(mode), "rounds": args.rounds})

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = time.perf_counter()
    python = ensure_venv(args.peers_venv.resolve())
    worker: Child | None = None
    home = Path(tempfile.mkdtemp(prefix="openclaw-bench-peers-"))
    try:
        with databases(args.url) as urls, asyncio.Runner() as runner:
            worker = Child(python)
            versions = worker.request({"cmd": "init", "urls": {s: urls[s] for s in child.PEERS}})
            local = child.Worker()
            openclaw = OpenclawPeer(urls[OPENCLAW], home)
            runner.run(openclaw.open())
            local.peers[OPENCLAW] = openclaw
            with psycopg.connect(args.url) as conn:
                server = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            header = [
                f"session stores on PostgreSQL {server} ({conninfo_to_dict(args.url).get('host', 'local')}),"
                f" {'quick' if args.quick else 'full'} mode: {mode}",
                "peers' venv: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
                f"openclaw: {code_version()}, psycopg {psycopg.__version__}, python {sys.version.split()[0]}",
            ]
            print("\n".join(header), flush=True)
            try:
                report, results = run(Systems(runner, local, worker), urls, mode, started)
                runner.run(local.handle({"cmd": "close"}))
            finally:
                worker.stop()  # before the databases go
            print("\n".join(report))
            print(diagnose(urls[OPENCLAW], results.pop("openclaw_load_keys")))
            elapsed = time.perf_counter() - started
            print(f"\ntotal {elapsed:.0f} s")
            if args.json:
                payload = {
                    "mode": asdict(mode),
                    "server": server,
                    "versions": versions,
                    "elapsed_s": elapsed,
                    **results,
                }
                text = json.dumps(payload, indent=2)
                if args.json == "-":
                    print(text)
                else:
                    Path(args.json).write_text(text + "\n")
    except KeyboardInterrupt:
        print("\ninterrupted: dropping the databases", file=sys.stderr)
        sys.exit(130)
    finally:
        if worker is not None:
            worker.stop()
        import shutil

        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
