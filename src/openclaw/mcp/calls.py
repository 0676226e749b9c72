"""How a read tool's call runs: one deadline for the whole call, a cap on the `query` calls
running at once, and what a failure says.

The deadline (ServerState.timeout_ms) covers everything a call does: the wait for a pool
connection, every statement (each gets `statement_timeout` set to the time left just
before it is sent: a `query` call sends a describe, a DECLARE and one FETCH per batch,
which once each got the whole timeout, and a call ran 14.8 s under a 5 s timeout), and
the work in between. Postgres's own timeout ends an interruptible statement at the
deadline. When a statement runs past it anyway (a function that never checks for
interrupts, see openclaw.mcp.guard), the call cancels the backend and answers
`timed out after N s` at once; the connection goes back to the pool when the backend
has stopped, and the gate counts the call as running until then, so that such backends
cannot pile up.

The gate lets at most MAX_CONCURRENT_QUERIES `query` calls run at once, one fewer than the
reader pool holds, so that a curated tool always finds a connection; a `query` call over
the cap is answered `busy` at once rather than failing later as "unreachable".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from mcp.server.mcpserver.exceptions import ToolError
from psycopg import AsyncConnection, pq
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from openclaw.errors import OpenclawError, TransientError, first_line
from openclaw.mcp.limits import MAX_CONCURRENT_QUERIES

T = TypeVar("T")
log = logging.getLogger(__name__)

# Postgres's statement_timeout, set to the time left, ends an interruptible statement at
# the deadline with a clean error; the client steps in only this much later, so that it
# acts only on what Postgres could not stop. Together with CANCEL_GRACE_S it is what a call
# may take past its deadline (the issue: at most a second, on a loaded machine too).
BACKSTOP_S = 0.1
# After cancelling the backend, how long the answer waits for the call to end before it is
# sent anyway: the backend may be inside a function that sees the cancel only when done.
CANCEL_GRACE_S = 0.25
# A backend that has not stopped this long after its deadline is let go (psycopg then
# closes its connection): the gate stops counting it, though it may still run.
ABANDON_S = 60.0


class CallTimedOut(TransientError):
    """The deadline passed before a statement could be sent, or while one ran on. Its
    answer's words are _tool_error's, which knows the deadline."""

    def __init__(self, message: str = "the call ran longer than its deadline") -> None:
        super().__init__(message)


class Deadline:
    """The one time limit of a tool call, counted from when the call began."""

    def __init__(self, seconds: float, *, started: float | None = None) -> None:
        self.seconds = seconds
        self.end = (time.monotonic() if started is None else started) + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def left_ms(self) -> int:
        """The time left, for the next statement; none left: CallTimedOut."""
        left_ms = int(self.left() * 1000)
        if left_ms < 1:
            raise CallTimedOut
        return left_ms

    async def bound_next_statement(self, conn: AsyncConnection[Any]) -> None:
        """`statement_timeout` for the next statement of the transaction: the time left.
        Postgres counts it from each statement's start, so it is set before each one."""
        await conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(self.left_ms()),))

    def timed_out(self, what: str = "") -> str:
        return f"timed out after {self.seconds:g} s{what}"


@dataclass(slots=True)
class QueryGate:
    """How many `query` calls run now: until their backend has stopped, which may be after
    their answer."""

    size: int = MAX_CONCURRENT_QUERIES
    running: int = 0
    # Calls answered already whose backend had not stopped yet: kept until it has (a task
    # nobody refers to may be collected before it ends).
    lingering: set[asyncio.Task[Any]] = field(default_factory=set)

    def busy(self) -> str:
        return f"busy: {self.running} queries running, retry"

    def enter(self) -> None:
        """Take a place, or refuse at once: nothing waits in line behind heavy queries."""
        if self.running >= self.size:
            raise ToolError(self.busy())
        self.running += 1

    def leave(self) -> None:
        self.running -= 1


@dataclass(slots=True)
class _Call:
    pool: AsyncConnectionPool[Any]
    gate: QueryGate
    deadline: Deadline
    gated: bool
    conn: AsyncConnection[Any] | None = None

    async def run(self, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        try:
            # The pool's wait is part of the call's time too.
            async with self.pool.connection(timeout=max(self.deadline.left(), 0.001)) as conn:
                self.conn = conn
                try:
                    await conn.set_read_only(True)
                    async with conn.transaction():
                        await self.deadline.bound_next_statement(conn)
                        return await work(conn)
                finally:
                    self.conn = None
        finally:
            if self.gated:
                self.gate.leave()

    async def cancel(self) -> None:
        """Ask the backend to stop the statement it runs, if it runs one."""
        conn = self.conn
        if conn is None or conn.closed or conn.pgconn.transaction_status != pq.TransactionStatus.ACTIVE:
            return
        try:
            await conn.cancel_safe(timeout=CANCEL_GRACE_S)
        except (psycopg.Error, OSError) as exc:  # the statement still ends: at the latest with the backend
            log.warning("mcp: cancelling a statement past its deadline failed: %s", first_line(exc))
        except Exception:  # a bug: the loop that stops the call must go on, or the backend runs on
            log.exception("mcp: cancelling a statement past its deadline failed")


async def run_read(
    pool: AsyncConnectionPool[Any],
    work: Callable[[AsyncConnection[Any]], Awaitable[T]],
    *,
    deadline: Deadline,
    gate: QueryGate,
    gated: bool = False,
) -> T:
    """`work` on a reader connection inside a READ ONLY transaction, within `deadline`;
    `gated` (the `query` tool) takes a place in the gate or is answered busy at once.
    Failures come out as ToolError with a one-line reason."""
    if gated:
        gate.enter()
    call = _Call(pool, gate, deadline, gated)
    # The call runs in a task of its own, which the deadline does not cancel: cancelling a
    # coroutine inside psycopg sends a cancel, then waits up to 5 s and closes the
    # connection while the backend may run on, unseen by the gate.
    task = asyncio.get_running_loop().create_task(call.run(work))
    try:
        try:
            return await asyncio.wait_for(asyncio.shield(task), max(deadline.left(), 0.0) + BACKSTOP_S)
        except TimeoutError:
            pass
        _stop(call, task, gate)
        done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
        if task in done:
            return task.result()
        raise CallTimedOut from None
    except asyncio.CancelledError:  # the client gave up on the call, or the server stops
        _stop(call, task, gate)
        raise
    except Exception as exc:  # every failure becomes a ToolError; _tool_error lets a bug out as it is
        raise _tool_error(exc, deadline, gate, pool) from None


def _stop(call: _Call, task: asyncio.Task[Any], gate: QueryGate) -> asyncio.Task[None] | None:
    """Stop a call past its deadline, in a task of its own that the gate keeps until the
    call has ended: the answer does not wait for it."""
    if task.done():
        return None
    stopper = asyncio.get_running_loop().create_task(_stopping(call, task))
    gate.lingering.add(stopper)
    stopper.add_done_callback(gate.lingering.discard)
    return stopper


async def _stopping(call: _Call, task: asyncio.Task[Any]) -> None:
    """While the backend runs a statement, it is asked to cancel it (again: a cancel that
    arrives between two statements is lost); otherwise the task is cancelled where it
    waits. A backend inside a function that sees no cancel is waited for, its call still
    counted by the gate, up to ABANDON_S; then psycopg cancels once more and, after 5 s,
    closes the connection."""
    started = time.monotonic()
    while not task.done():
        conn = call.conn
        active = conn is not None and conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE
        if active and time.monotonic() - started < ABANDON_S:
            await call.cancel()
        else:
            task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
    error = None if task.cancelled() else task.exception()  # retrieved: no warning
    if error is not None:
        log.debug("mcp: a call answered already ended with: %s", first_line(error))


def _tool_error(
    exc: Exception, deadline: Deadline, gate: QueryGate, pool: AsyncConnectionPool[Any]
) -> ToolError:
    """The reason a call failed, in one line (the server puts it inside the envelope)."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, CallTimedOut | psycopg.errors.QueryCanceled):
        # QueryCanceled is an OperationalError, yet the server is fine: only our deadline
        # cancels (Postgres's statement_timeout, or our cancel past it).
        return ToolError(deadline.timed_out(": the call ran longer than its deadline and was stopped"))
    if isinstance(exc, OpenclawError):  # its message is for the user already (QueryTimedOut's too)
        return ToolError(str(exc))
    if isinstance(exc, PoolTimeout):
        stats = pool.get_stats()
        if stats.get("pool_size", 0) >= pool.max_size and not stats.get("pool_available"):
            # Every connection is made and in use: not an outage.
            return ToolError(f"{gate.busy()} (every reader connection is in use)")
        return ToolError(f"the database is unreachable: {first_line(exc)}")
    if isinstance(exc, psycopg.OperationalError):
        return ToolError(f"the database is unreachable: {first_line(exc)}")
    if isinstance(exc, psycopg.Error):
        return ToolError(f"Postgres refused: {first_line(exc)}")
    raise exc
