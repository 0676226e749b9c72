"""The peer side of `bench/session_peers.py`: a long-lived worker in the peers' own venv.

It reads one JSON command a line on stdin and answers one JSON line on stdout (anything
the libraries print goes to stderr). The parent (the project venv, where openclaw runs)
sends each operation to every system in turn, round by round, so machine noise hits all
alike. Timing is taken here, around the library call only.

Commands (each answers {"ok": ...} or {"error": traceback}):

    {"cmd": "init", "urls": {system: url}}          -> versions; creates the tables
    {"cmd": "prefill", "system", "key", "seed", "count"}
    {"cmd": "append", "system", "key", "seed", "start", "reps", "size"}  -> [ms]
    {"cmd": "load", "system", "key", "reps"}        -> [ms]
    {"cmd": "fill", "system", "keys", "seed", "turns"}  (untimed turns, round-robin)
    {"cmd": "concurrency", "system", "keys", "seed", "turns", "warm", "pool"} -> seconds
    {"cmd": "close"}

This module must import nothing from the peers at module level: the parent imports it
(from the project venv) for `message_text`, so that both sides store the same texts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

LOAD_LAST = 40  # the window openclaw replays to the model (history.MAX_MESSAGES)
PREFILL_CHUNK = 1000

_SENTENCE = (
    "the gateway answered a question about postgres migrations with tool calls and unicode "
    "données 日本語 🚀 while the agent kept its session history in a table of messages and "
    "the user asked again about indexes vacuum autovacuum checkpoints write ahead log"
)
WORDS = tuple(_SENTENCE.split(" "))


def message_text(seed: int, i: int) -> tuple[str, str]:
    """Message `i` of a conversation: (role, text), the same in every process and system.
    Users write ~25 words, assistants ~90 (about 150 and 600 characters)."""
    rnd = random.Random(seed * 1_000_003 + i)
    role = "user" if i % 2 == 0 else "assistant"
    k = rnd.randrange(5, 45) if role == "user" else rnd.randrange(20, 160)
    return role, " ".join(rnd.choices(WORDS, k=k))


def texts(seed: int, start: int, count: int) -> list[tuple[str, str]]:
    return [message_text(seed, i) for i in range(start, start + count)]


def ms_since(t: float) -> float:
    return (time.perf_counter() - t) * 1000


class Peer(ABC):
    """One system under test. `key` is a UUID string (langchain-postgres demands one)."""

    def __init__(self, url: str) -> None:
        self.url = url

    @abstractmethod
    async def open(self) -> None:
        """Connect as the library's docs do and create its tables."""

    @abstractmethod
    def messages(self, pairs: list[tuple[str, str]]) -> list[Any]:
        """The library's message objects (built outside the timed call)."""

    @abstractmethod
    async def append(self, key: str, msgs: list[Any]) -> None: ...

    @abstractmethod
    async def load_last(self, key: str) -> list[Any]:
        """The last LOAD_LAST messages, by the library's idiomatic call."""

    @abstractmethod
    async def concurrent(self, pool: int) -> Callable[[str, list[Any]], Awaitable[None]]:
        """Open a pool of `pool` connections; return an append that uses it."""

    @abstractmethod
    async def close_pool(self) -> None: ...

    async def close(self) -> None:  # noqa: B027 - a peer without resources needs no close
        pass


# --- langchain-postgres ------------------------------------------------------------------
LC_TABLE = "chat_history"


def lc_messages(pairs: list[tuple[str, str]]) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage

    return [HumanMessage(content=t) if r == "user" else AIMessage(content=t) for r, t in pairs]


class LangchainAsync(Peer):
    """`PostgresChatMessageHistory` on a psycopg AsyncConnection, as its docstring shows:
    `acreate_tables`, then `aadd_messages` / `aget_messages` (no limit: every message of
    the session is read and parsed, the window is sliced in Python)."""

    async def open(self) -> None:
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        self.conn = await psycopg.AsyncConnection.connect(self.url)
        await PostgresChatMessageHistory.acreate_tables(self.conn, LC_TABLE)

    def messages(self, pairs: list[tuple[str, str]]) -> list[Any]:
        return lc_messages(pairs)

    def history(self, key: str, conn: Any = None) -> Any:
        from langchain_postgres import PostgresChatMessageHistory

        return PostgresChatMessageHistory(LC_TABLE, key, async_connection=conn or self.conn)

    async def append(self, key: str, msgs: list[Any]) -> None:
        await self.history(key).aadd_messages(msgs)

    async def load_last(self, key: str) -> list[Any]:
        return (await self.history(key).aget_messages())[-LOAD_LAST:]

    async def concurrent(self, pool: int) -> Callable[[str, list[Any]], Awaitable[None]]:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(self.url, min_size=pool, max_size=pool, open=False)
        await self.pool.open(wait=True)

        async def turn(key: str, msgs: list[Any]) -> None:
            async with self.pool.connection() as conn:
                await self.history(key, conn).aadd_messages(msgs)

        return turn

    async def close_pool(self) -> None:
        await self.pool.close()

    async def close(self) -> None:
        await self.conn.close()


class LangchainSync(LangchainAsync):
    """The same class on a sync psycopg Connection (`create_tables`, `add_messages`,
    `get_messages`); concurrency with one thread per session and a psycopg ConnectionPool."""

    async def open(self) -> None:
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        self.sconn = psycopg.connect(self.url)
        PostgresChatMessageHistory.create_tables(self.sconn, LC_TABLE)

    def shistory(self, key: str, conn: Any = None) -> Any:
        from langchain_postgres import PostgresChatMessageHistory

        return PostgresChatMessageHistory(LC_TABLE, key, sync_connection=conn or self.sconn)

    async def append(self, key: str, msgs: list[Any]) -> None:
        self.shistory(key).add_messages(msgs)

    async def load_last(self, key: str) -> list[Any]:
        return self.shistory(key).get_messages()[-LOAD_LAST:]

    async def concurrent(self, pool: int) -> Callable[[str, list[Any]], Awaitable[None]]:
        raise NotImplementedError  # threads: see run_concurrency_sync

    def sync_pool(self, pool: int) -> Callable[[str, list[Any]], None]:
        from psycopg_pool import ConnectionPool

        self.spool = ConnectionPool(self.url, min_size=pool, max_size=pool, open=False)
        self.spool.open(wait=True)

        def turn(key: str, msgs: list[Any]) -> None:
            with self.spool.connection() as conn:
                self.shistory(key, conn).add_messages(msgs)

        return turn

    async def close_pool(self) -> None:
        self.spool.close()

    async def close(self) -> None:
        self.sconn.close()


# --- openai-agents -----------------------------------------------------------------------
class OpenAIAgents(Peer):
    """`SQLAlchemySession` on an AsyncEngine (`create_async_engine`, default pool); the
    tables made once by a session with `create_tables=True` (the docs' development setup),
    then sessions as production code makes them. `add_items` / `get_items(limit=40)`.
    Items are the SDK's "easy input messages" ({"role", "content"})."""

    driver = "asyncpg"

    def sa_url(self) -> Any:
        from psycopg.conninfo import conninfo_to_dict
        from sqlalchemy.engine import URL

        params = conninfo_to_dict(self.url)
        return URL.create(
            f"postgresql+{self.driver}",
            username=params.get("user"),
            password=params.get("password"),
            host=params.get("host"),
            port=int(params["port"]) if params.get("port") else None,
            database=params.get("dbname"),
        )

    async def open(self) -> None:
        from agents.extensions.memory import SQLAlchemySession
        from sqlalchemy.ext.asyncio import create_async_engine

        self.engine = create_async_engine(self.sa_url())
        await SQLAlchemySession("setup", engine=self.engine, create_tables=True).get_items(limit=1)

    def messages(self, pairs: list[tuple[str, str]]) -> list[Any]:
        return [{"role": r, "content": t} for r, t in pairs]

    def session(self, key: str, engine: Any = None) -> Any:
        from agents.extensions.memory import SQLAlchemySession

        return SQLAlchemySession(key, engine=engine or self.engine)

    async def append(self, key: str, msgs: list[Any]) -> None:
        await self.session(key).add_items(msgs)

    async def load_last(self, key: str) -> list[Any]:
        return await self.session(key).get_items(limit=LOAD_LAST)

    async def concurrent(self, pool: int) -> Callable[[str, list[Any]], Awaitable[None]]:
        from sqlalchemy.ext.asyncio import create_async_engine

        self.pool_engine = create_async_engine(self.sa_url(), pool_size=pool, max_overflow=0)
        sessions: dict[str, Any] = {}

        async def turn(key: str, msgs: list[Any]) -> None:
            session = sessions.get(key)
            if session is None:
                session = sessions[key] = self.session(key, self.pool_engine)
            await session.add_items(msgs)

        return turn

    async def close_pool(self) -> None:
        await self.pool_engine.dispose()

    async def close(self) -> None:
        await self.engine.dispose()


class OpenAIAgentsPsycopg(OpenAIAgents):
    driver = "psycopg"


# --- LangGraph ---------------------------------------------------------------------------
class LangGraph(Peer):
    """A `StateGraph(MessagesState)` (the `add_messages` reducer) compiled with an
    `AsyncPostgresSaver`: `from_conn_string` + `setup()` as its docs show; for the pools,
    `AsyncPostgresSaver(pool)` with the connection kwargs its docs give (autocommit,
    prepare_threshold=0, dict_row). Append: `aupdate_state(config, {"messages": [...]})`
    (a checkpoint, as after a graph step); load: `aget_state(config)` and the last 40."""

    def graph(self, saver: Any) -> Any:
        from langgraph.graph import END, START, MessagesState, StateGraph

        g = StateGraph(MessagesState)
        g.add_node("chat", lambda state: {})
        g.add_edge(START, "chat")
        g.add_edge("chat", END)
        return g.compile(checkpointer=saver)

    async def open(self) -> None:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        self.cm = AsyncPostgresSaver.from_conn_string(self.url)
        self.saver = await self.cm.__aenter__()
        await self.saver.setup()
        self.g = self.graph(self.saver)

    def messages(self, pairs: list[tuple[str, str]]) -> list[Any]:
        return lc_messages(pairs)

    @staticmethod
    def config(key: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": key}}

    async def append(self, key: str, msgs: list[Any]) -> None:
        await self.g.aupdate_state(self.config(key), {"messages": msgs})

    async def load_last(self, key: str) -> list[Any]:
        state = await self.g.aget_state(self.config(key))
        return list(state.values["messages"][-LOAD_LAST:])

    async def concurrent(self, pool: int) -> Callable[[str, list[Any]], Awaitable[None]]:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            self.url,
            min_size=pool,
            max_size=pool,
            open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        await self.pool.open(wait=True)
        graph = self.graph(AsyncPostgresSaver(self.pool))

        async def turn(key: str, msgs: list[Any]) -> None:
            await graph.aupdate_state(self.config(key), {"messages": msgs})

        return turn

    async def close_pool(self) -> None:
        await self.pool.close()

    async def close(self) -> None:
        await self.cm.__aexit__(None, None, None)


PEERS: dict[str, type[Peer]] = {
    "langchain-pg sync": LangchainSync,
    "langchain-pg async": LangchainAsync,
    "openai-agents asyncpg": OpenAIAgents,
    "openai-agents psycopg": OpenAIAgentsPsycopg,
    "langgraph": LangGraph,
}

VERSIONED = (
    "langchain-postgres",
    "langchain-core",
    "openai-agents",
    "SQLAlchemy",
    "asyncpg",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-postgres",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    out["python"] = sys.version.split()[0]
    return out


async def run_concurrency(peer: Peer, keys: list[str], seed: int, turns: int, warm: int, pool: int) -> float:
    """Seconds for `turns` turns in each session at once (after `warm` untimed ones each,
    which also open the pool's connections)."""
    if isinstance(peer, LangchainSync):
        return await asyncio.to_thread(run_concurrency_sync, peer, keys, seed, turns, warm, pool)
    turn = await peer.concurrent(pool)
    try:

        async def session(key: str, first: int, count: int) -> None:
            for j in range(first, first + count):
                await turn(key, peer.messages(texts(seed, 2 * j, 2)))

        await asyncio.gather(*(session(k, 0, warm) for k in keys))
        t = time.perf_counter()
        await asyncio.gather(*(session(k, warm, turns) for k in keys))
        return time.perf_counter() - t
    finally:
        await peer.close_pool()


def run_concurrency_sync(
    peer: LangchainSync, keys: list[str], seed: int, turns: int, warm: int, pool: int
) -> float:
    from concurrent.futures import ThreadPoolExecutor

    turn = peer.sync_pool(pool)
    try:

        def session(key: str, first: int, count: int) -> None:
            for j in range(first, first + count):
                turn(key, peer.messages(texts(seed, 2 * j, 2)))

        with ThreadPoolExecutor(max_workers=len(keys)) as threads:
            list(threads.map(lambda k: session(k, 0, warm), keys))
            t = time.perf_counter()
            list(threads.map(lambda k: session(k, warm, turns), keys))
            return time.perf_counter() - t
    finally:
        peer.spool.close()


class Worker:
    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}

    async def handle(self, cmd: dict[str, Any]) -> Any:
        op = cmd["cmd"]
        if op == "init":
            for name, url in cmd["urls"].items():
                peer = PEERS[name](url)
                await peer.open()
                self.peers[name] = peer
            return versions()
        if op == "close":
            for peer in self.peers.values():
                await peer.close()
            return None
        peer = self.peers[cmd["system"]]
        if op == "prefill":
            seed, count = cmd["seed"], cmd["count"]
            chunk = count if isinstance(peer, LangGraph) else PREFILL_CHUNK  # one checkpoint
            for start in range(0, count, chunk):
                await peer.append(cmd["key"], peer.messages(texts(seed, start, min(chunk, count - start))))
            return None
        if op == "append":
            timings = []
            for r in range(cmd["reps"]):
                msgs = peer.messages(texts(cmd["seed"], cmd["start"] + r * cmd["size"], cmd["size"]))
                t = time.perf_counter()
                await peer.append(cmd["key"], msgs)
                timings.append(ms_since(t))
            return timings
        if op == "load":
            timings = []
            for _ in range(cmd["reps"]):
                t = time.perf_counter()
                window = await peer.load_last(cmd["key"])
                timings.append(ms_since(t))
                assert len(window) == LOAD_LAST, len(window)
            return timings
        if op == "fill":
            for j in range(cmd["turns"]):
                for key in cmd["keys"]:
                    await peer.append(key, peer.messages(texts(cmd["seed"], 2 * j, 2)))
            return None
        if op == "concurrency":
            return await run_concurrency(
                peer, cmd["keys"], cmd["seed"], cmd["turns"], cmd["warm"], cmd["pool"]
            )
        raise ValueError(f"unknown command {op!r}")


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the libraries' prints go to stderr
    worker = Worker()
    with asyncio.Runner() as runner:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            try:
                answer: dict[str, Any] = {"ok": runner.run(worker.handle(cmd))}
            except Exception:
                answer = {"error": traceback.format_exc()}
            out.write(json.dumps(answer) + "\n")
            if cmd["cmd"] == "close":
                break


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # the parent cleans up
        main()
