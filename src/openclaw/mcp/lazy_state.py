"""The state of `openclaw mcp serve`, made in the background once `initialize` is answered.

`LazyState` is what the server holds until then: where the database is, and nothing of it.
It lives apart from openclaw.mcp.state, which imports psycopg, the pool and the database
layer, so that the server starts (and answers `initialize`) before they load: they load in
the task that makes the state, started by the client's next message. A tool called before
the state is ready waits for it, and one called after it failed tries again and reports
the reason as the tool's error.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from openclaw.errors import OpenclawError, first_line, is_database_error

if TYPE_CHECKING:
    from pathlib import Path

    from openclaw.db.target import DatabaseTarget
    from openclaw.mcp.state import ServerState


def describe_failure(exc: BaseException) -> str:
    """One line saying why the state could not be made."""
    if isinstance(exc, OpenclawError):
        return exc.message
    if is_database_error(exc):
        return f"database: {first_line(exc)}"
    return f"{type(exc).__name__}: {first_line(exc)}"


def is_foreseen(exc: BaseException) -> bool:
    """Whether making the state may fail so without a bug of ours: a problem for the user
    (unreachable, refused, misconfigured), the database's or the file system's."""
    return isinstance(exc, OpenclawError | OSError) or is_database_error(exc)


class LazyState:
    """The server's state, made by a background task (`start`) or by the first `get`.

    Concurrent callers wait for the same attempt. An attempt that failed is reported on
    stderr (an IDE shows it in the server's log) and to the callers waiting for it; the next
    `get` tries again, so a server started before its database works once the database does.
    """

    def __init__(
        self,
        target: DatabaseTarget,
        home: Path,
        *,
        allow_writes: bool = False,
        reader_url: str | None = None,
        writer_url: str | None = None,
    ) -> None:
        self.target = target
        self.home = home
        self.allow_writes = allow_writes
        # Given (the IDE's case): the state logs in with these alone (openclaw.mcp.state).
        self.reader_url = reader_url
        self.writer_url = writer_url
        self._stack = AsyncExitStack()
        self._task: asyncio.Task[ServerState] | None = None

    def start(self) -> None:
        """Begin making the state, without waiting for it, unless that was begun already."""
        if self._task is None:
            self._attempt()

    async def get(self) -> ServerState:
        """The state, made now if it is not yet (or if the last attempt failed)."""
        task = self._task
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._attempt()
        return await asyncio.shield(task)

    def _attempt(self) -> asyncio.Task[ServerState]:
        self._task = asyncio.get_running_loop().create_task(self._make())
        self._task.add_done_callback(_report_failure)
        return self._task

    async def _make(self) -> ServerState:
        # The database layer loads here, in the background, not when the server starts.
        from openclaw.mcp.state import open_state

        return await self._stack.enter_async_context(
            open_state(
                self.target,
                self.home,
                allow_writes=self.allow_writes,
                reader_url=self.reader_url,
                writer_url=self.writer_url,
            )
        )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        await self._stack.aclose()


def _report_failure(task: asyncio.Task[ServerState]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    if not is_foreseen(exc):  # a bug (of a migration too): its traceback is what we need
        traceback.print_exception(exc, file=sys.stderr)
    print(f"openclaw mcp: {describe_failure(exc)}", file=sys.stderr, flush=True)
