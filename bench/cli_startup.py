"""The CLI starts like a small tool (DESIGN.md §8): three ratios, measured in one run.

    python bench/cli_startup.py [--database-url URL] [--runs 5] [--keep]

Each row compares an openclaw process with a plain Python process that does the least
the same job needs, both started the same way by this script, alternately, --runs
times each; the medians are compared.

1. `openclaw --help`: CPU seconds (user + system of the child, from os.wait4) against
   `python -c "import typer, psycopg"`. Target: at most 1.5x.
2. `openclaw context get KEY` on a running server: CPU seconds against a Python process
   that imports typer and psycopg, connects and runs the same SELECT
   (`SELECT key, value, updated_at FROM project_context WHERE key = %s`). openclaw's
   number includes everything a command does before its SELECT: resolving the database,
   the pool, and the migration-status check that lets a fresh database work from the
   first command. Target: at most 1.5x.
3. `openclaw mcp serve` (stdio): wall seconds from spawning it until its answer to the
   JSON-RPC `initialize` request arrives, against a Python process that imports only the
   SDK's server module (`mcp.server.mcpserver`) and serves an MCPServer without tools.
   Target: at most 1.3x. Before timing, one openclaw server is driven further
   (`notifications/initialized`, then `tools/call context_get`) to check that it works on
   the bench database, not just that it starts.

The commands run with DATABASE_URL set to a scratch database openclaw_bench_startup_<hex>
made on the server of --database-url (default $DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/postgres), OPENCLAW_HOME a temporary directory and
GATEWAY_CONFIG an empty file; the database is migrated and the key set by `openclaw
context set` first, and dropped at the end (unless --keep). The machine is shared and
noisy: run it a few times. Timings never go in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

PYTHON = sys.executable
LAUNCHER = Path(sys.executable).with_name("openclaw")
OPENCLAW = [str(LAUNCHER)] if LAUNCHER.is_file() else [PYTHON, "-m", "openclaw"]
KEY = "bench_focus"
VALUE = {"task": "postgres migration", "phase": 3}
SELECT = "SELECT key, value, updated_at FROM project_context WHERE key = %s"
PROTOCOL_VERSION = "2025-11-25"

BASE_HELP = "import typer, psycopg"
BASE_SELECT = f"""import sys, typer, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    print(conn.execute({SELECT!r}, ({KEY!r},)).fetchone())
"""
BARE_MCP = """from mcp.server.mcpserver import MCPServer
MCPServer("bare").run("stdio")
"""


def _message(payload: dict[str, object]) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", **payload}) + "\n").encode()


INITIALIZE = _message(
    {
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bench-cli-startup", "version": "0"},
        },
    }
)


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    """User + system CPU of one child run to completion; it must exit 0."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    error = process.stderr.read()  # drained before waiting: a full pipe would block it
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{argv} exited with {process.returncode}: {error.decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def _close(process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    process.stdin.close()  # end of input: the server exits
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        print(f"warning: {process.args} did not exit within 15 s of its stdin closing; killed it")


def seconds_to_initialize(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds from spawning a stdio MCP server until its `initialize` answer."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(INITIALIZE)
    process.stdin.flush()
    line = process.stdout.readline()
    elapsed = time.perf_counter() - started
    _close(process)
    answer = json.loads(line) if line.strip() else {}
    if answer.get("id") != 1 or "result" not in answer:
        raise SystemExit(f"{argv} did not answer initialize: {line[:2000]!r}")
    return elapsed


def check_mcp_server(env: dict[str, str]) -> None:
    """The timed server also works: after `initialize`, context_get reads the bench key."""
    process = subprocess.Popen(
        [*OPENCLAW, "mcp", "serve"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(INITIALIZE)
        process.stdin.flush()
        process.stdout.readline()
        process.stdin.write(_message({"method": "notifications/initialized"}))
        call = {"name": "context_get", "arguments": {"key": KEY}}
        process.stdin.write(_message({"id": 2, "method": "tools/call", "params": call}))
        process.stdin.flush()
        while True:
            line = process.stdout.readline()
            if not line:
                raise SystemExit("openclaw mcp serve ended before answering tools/call")
            answer = json.loads(line)
            if answer.get("id") == 2:
                break
    finally:
        _close(process)
    result = answer.get("result") or {}
    if result.get("isError") or (result.get("structuredContent") or {}).get("value") != VALUE:
        raise SystemExit(f"openclaw mcp serve answered context_get wrongly: {json.dumps(answer)[:2000]}")


@dataclass
class Row:
    what: str
    unit: str
    ours: list[float]
    base: list[float]
    target: float

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.base)


def measure(
    runs: int, ours: Callable[[], float], base: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Alternate the two, so that both see the same machine while other processes come and go."""
    ours(), base()  # warm the file cache
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        if i % 2:
            a.append(ours())
            b.append(base())
        else:
            b.append(base())
            a.append(ours())
    return a, b


def run(url: str, runs: int, home: Path) -> list[Row]:
    config = home / "gateway-config.json"
    config.write_text("{}")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "OPENCLAW_HOME": str(home),
        "GATEWAY_CONFIG": str(config),
        "COLUMNS": "100",
    }
    env.pop("OPENCLAW_READER_URL", None)
    set_value = subprocess.run(
        [*OPENCLAW, "context", "set", KEY, json.dumps(VALUE)], env=env, capture_output=True, text=True
    )
    if set_value.returncode != 0:
        raise SystemExit(f"openclaw context set failed: {set_value.stderr}")
    check_mcp_server(env)

    rows: list[Row] = []
    print(f"--help ({runs} runs each)...", flush=True)
    ours, base = measure(
        runs,
        lambda: cpu_seconds([*OPENCLAW, "--help"], env),
        lambda: cpu_seconds([PYTHON, "-c", BASE_HELP], env),
    )
    rows.append(Row("openclaw --help  vs  import typer, psycopg", "CPU s", ours, base, 1.5))
    print(f"context get ({runs} runs each)...", flush=True)
    ours, base = measure(
        runs,
        lambda: cpu_seconds([*OPENCLAW, "context", "get", KEY], env),
        lambda: cpu_seconds([PYTHON, "-c", BASE_SELECT, url], env),
    )
    rows.append(Row("openclaw context get  vs  typer+psycopg SELECT", "CPU s", ours, base, 1.5))
    print(f"mcp serve initialize ({runs} runs each)...", flush=True)
    ours, base = measure(
        runs,
        lambda: seconds_to_initialize([*OPENCLAW, "mcp", "serve"], env),
        lambda: seconds_to_initialize([PYTHON, "-c", BARE_MCP], env),
    )
    rows.append(Row("openclaw mcp serve  vs  bare MCPServer: initialize", "wall s", ours, base, 1.3))
    return rows


def print_table(rows: list[Row]) -> None:
    head = f"{'measure':<52} {'unit':<7} {'openclaw':>9} {'baseline':>9} {'ratio':>6} {'target':>7}  result"
    print()
    print(head)
    print("-" * len(head))
    for row in rows:
        verdict = "PASS" if row.ratio <= row.target else "FAIL"
        target = f"<={row.target:g}x"
        print(
            f"{row.what:<52} {row.unit:<7} {statistics.median(row.ours):>9.3f}"
            f" {statistics.median(row.base):>9.3f} {row.ratio:>5.2f}x {target:>7}  {verdict}"
        )
    print("(medians; every sample, openclaw / baseline:)")
    for row in rows:
        ours = " ".join(f"{v:.3f}" for v in row.ours)
        base = " ".join(f"{v:.3f}" for v in row.base)
        print(f"  {row.what}: {ours} / {base}")


def scratch_url(admin_url: str, name: str) -> str:
    """The URL of database `name` on the server of `admin_url`, in the same form."""
    if "://" in admin_url:
        return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    return make_conninfo(admin_url, dbname=name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="A server where this user may create databases (default $DATABASE_URL, else local).",
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="Timed runs of each process per measure (median)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    args = parser.parse_args()

    name = f"openclaw_bench_startup_{secrets.token_hex(4)}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        server = admin.execute("SHOW server_version").fetchone()
    url = scratch_url(args.database_url, name)
    print(
        f"python {sys.version.split()[0]}, PostgreSQL {server[0] if server else '?'}, {os.cpu_count()} CPUs"
    )
    print(f"scratch database {name}")
    try:
        with tempfile.TemporaryDirectory(prefix="openclaw-bench-startup-") as home:
            rows = run(url, args.runs, Path(home))
        print_table(rows)
    finally:
        if args.keep:
            print(f"\nkept database {name}: {url}")
        else:
            from openclaw.db.reader import READER, WRITER, login_role

            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                # Its reader and writer roles belong to the server: they must not pile up there.
                for kind in (READER, WRITER):
                    role = sql.Identifier(login_role(kind, name))
                    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


if __name__ == "__main__":
    main()
