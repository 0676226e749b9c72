"""Waiting in tests: for the event itself, with a generous deadline, never for a fixed time
that a busy machine outruns. Every wait that runs out says what it was waiting for.

- `until`: in a test's event loop, for a condition (plain or awaitable).
- `wait_for`: from a plain test (subprocesses, threads), for a condition; fails at once
  when the process it is given exits.
- `wait_for_http`: for an HTTP answer (a server starting, an endpoint showing a value).
- `wait_for_line`: for a line in a process's output.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import selectors
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any, TypeVar

import httpx

DEADLINE_S = 30.0  # generous: CI machines are shared, developers' laptops are busy
T = TypeVar("T")


def describe(condition: object, what: str | None = None) -> str:
    """What a wait is for: `what`, else the condition's source (a lambda's line)."""
    if what:
        return what
    try:
        source = " ".join(inspect.getsource(condition).split())  # type: ignore[arg-type]
    except (OSError, TypeError):
        return getattr(condition, "__qualname__", repr(condition))
    return source if len(source) <= 300 else source[:300] + "…"


def _timed_out(timeout_s: float, condition: object, what: str | None, last: object) -> AssertionError:
    seen = f" (last seen: {last!r})" if not isinstance(last, bool | type(None)) else ""
    return AssertionError(f"timed out after {timeout_s:g} s waiting for: {describe(condition, what)}{seen}")


def _exited(process: subprocess.Popen[Any], condition: object, what: str | None) -> AssertionError:
    err = ""
    try:
        _, err_output = process.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        err_output = None
    if err_output:
        text = err_output if isinstance(err_output, str) else err_output.decode(errors="replace")
        err = f"; its stderr ends: {text[-2000:]}"
    return AssertionError(
        f"the process exited with code {process.returncode} while waiting for:"
        f" {describe(condition, what)}{err}"
    )


async def until(
    condition: Callable[[], T | Awaitable[T]],
    timeout_s: float = DEADLINE_S,
    *,
    what: str | None = None,
    interval_s: float = 0.02,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Wait, in the event loop, until `condition()` is truthy (awaited if it returns an
    awaitable); return that value. Exceptions of the `ignoring` types mean "not yet"."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            last = value
        except ignoring as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise _timed_out(timeout_s, condition, what, last)
        await asyncio.sleep(interval_s)


def wait_for(
    condition: Callable[[], T],
    timeout_s: float = DEADLINE_S,
    *,
    what: str | None = None,
    interval_s: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
    process: subprocess.Popen[Any] | None = None,
) -> T:
    """Wait, blocking, until `condition()` is truthy; return that value. Exceptions of the
    `ignoring` types mean "not yet". With `process`, fail as soon as it has exited."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except ignoring as exc:
            last = exc
        if process is not None and process.poll() is not None:
            raise _exited(process, condition, what)
        if time.monotonic() >= deadline:
            raise _timed_out(timeout_s, condition, what, last)
        time.sleep(interval_s)


def _any_response(response: httpx.Response) -> bool:
    return True


def wait_for_http(
    url: str,
    accept: Callable[[httpx.Response], bool] = _any_response,
    timeout_s: float = DEADLINE_S,
    *,
    method: str = "GET",
    what: str | None = None,
    process: subprocess.Popen[Any] | None = None,
    **request: Any,
) -> httpx.Response:
    """Wait until `url` answers with a response that `accept` takes; return it. A refused
    connection or a request that timed out means "not yet"."""

    def answered() -> httpx.Response | None:
        response = httpx.request(method, url, timeout=10, **request)
        return response if accept(response) else None

    return wait_for(
        answered,
        timeout_s,
        what=what
        or f"{method} {url} to answer" + ("" if accept is _any_response else f", as in {describe(accept)}"),
        ignoring=(httpx.TransportError,),
        process=process,
    )


def wait_for_line(
    process: subprocess.Popen[Any],
    match: str | Callable[[str], bool],
    timeout_s: float = DEADLINE_S,
    *,
    stream: IO[Any] | None = None,
    what: str | None = None,
) -> list[str]:
    """Read the process's output (its stdout, a pipe, unless `stream` says otherwise) until a
    line matches: contains the text, or satisfies the predicate. Returns every whole line read,
    the matching one and any that came in the same read after it. Read the stream only through
    this function until it returns (it reads beneath the file object's buffer)."""
    pipe = stream if stream is not None else process.stdout
    assert pipe is not None, "the process's output is not a pipe"
    matches = (lambda line: match in line) if isinstance(match, str) else match
    label = what or (f"a line containing {match!r}" if isinstance(match, str) else describe(match))
    deadline = time.monotonic() + timeout_s
    buffer = b""
    lines: list[str] = []
    found = False
    with selectors.DefaultSelector() as selector:
        selector.register(pipe.fileno(), selectors.EVENT_READ)
        while not found:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout_s:g} s waiting for {label}; last lines: {lines[-5:]}"
                )
            if not selector.select(remaining):
                continue
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                try:
                    code: int | None = process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None  # still running, its output closed
                raise AssertionError(
                    f"the process closed its output (exit code {code}) before {label};"
                    f" last lines: {lines[-5:]}"
                )
            buffer += chunk
            *whole, buffer = re.split(rb"\r?\n", buffer)
            for raw in whole:
                line = raw.decode(errors="replace")
                lines.append(line)
                found = found or matches(line)
    return lines
