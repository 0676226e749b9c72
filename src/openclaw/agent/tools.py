"""Tools the model may call: a small registry, and the built-in ones.

A tool gets its arguments as a dict and returns text for the model. Nothing a tool does
wrong ends the turn: invalid JSON arguments, an unknown tool, or an exception become an
`error: ...` result the model can read and correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openclaw.chat import ToolCall
from openclaw.errors import OpenclawError, is_transient
from openclaw.home import openclaw_home
from openclaw.llm.types import ToolSpec

if TYPE_CHECKING:
    from openclaw.config.gateway_file import SandboxSection

log = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 16_000
MAX_FILE_BYTES = 100_000

Handler = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Tool:
    spec: ToolSpec
    run: Handler


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = (), *, refused: dict[str, str] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        # Tools left out on purpose: not offered to the model, and a call answers why.
        self._refused: dict[str, str] = dict(refused or {})
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        self._tools[tool.spec.name] = tool

    def specs(self) -> list[ToolSpec]:
        return [t.spec for t in self._tools.values()]

    def names(self) -> list[str]:
        return list(self._tools)

    def restricted(self, root: Path, why: str) -> ToolRegistry:
        """The tools for a chat anyone may start: no `exec`, and `read_file`/`list_dir` kept
        under `root`; `why` says to the model (and to whoever reads the history) why."""
        root = root.expanduser()
        replaced = {"read_file": confined_read_file(root), "list_dir": confined_list_dir(root)}
        kept = [replaced.get(name, tool) for name, tool in self._tools.items() if name != "exec"]
        refused = {**self._refused}
        if "exec" in self._tools:
            refused["exec"] = f"exec is off in this chat: {why}"
        return ToolRegistry(kept, refused=refused)

    async def call(self, call: ToolCall) -> str:
        tool = self._tools.get(call.name)
        if tool is None and call.name in self._refused:
            return f"error: {self._refused[call.name]}"
        if tool is None:
            return f"error: unknown tool {call.name!r} (available: {', '.join(self._tools)})"
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            return f"error: the arguments are not valid JSON ({exc.msg} at column {exc.colno})"
        if not isinstance(arguments, dict):
            return "error: the arguments must be a JSON object"
        try:
            return _cap(await tool.run(arguments))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a tool's failure is the model's information, not the turn's end
            if not isinstance(exc, _FORESEEN) and not is_transient(exc):  # a bug: its traceback too
                log.exception("tool %s failed", call.name)
            return f"error: {type(exc).__name__}: {exc}"


# How a tool fails without a bug of ours: a file or a command the OS refuses, arguments of
# the wrong shape from the model (a missing key, a bad value), a problem we describe.
_FORESEEN = (OSError, KeyError, ValueError, TypeError, OpenclawError)


def _cap(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters cut]"


def _schema(**properties: dict[str, Any]) -> dict[str, Any]:
    required = [name for name, p in properties.items() if not p.pop("optional", False)]
    return {"type": "object", "properties": properties, "required": required}


# ---- files ------------------------------------------------------------------------------


def _read_file_now(args: dict[str, Any]) -> str:
    path = Path(str(args["path"])).expanduser()
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    text = data[:MAX_FILE_BYTES].decode(errors="replace")
    return text + ("\n[... file continues]" if len(data) > MAX_FILE_BYTES else "")


def _list_dir_now(args: dict[str, Any]) -> str:
    path = Path(str(args.get("path") or ".")).expanduser()
    entries = sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    lines = [f"{p.name}/" if p.is_dir() else p.name for p in entries[:500]]
    if len(entries) > 500:
        lines.append(f"[... {len(entries) - 500} more]")
    return "\n".join(lines) or "(empty)"


# File access runs in a worker thread: a slow disk must not stall every chat.
async def _read_file(args: dict[str, Any]) -> str:
    return await asyncio.to_thread(_read_file_now, args)


async def _list_dir(args: dict[str, Any]) -> str:
    return await asyncio.to_thread(_list_dir_now, args)


def _inside(root: Path, given: str) -> Path:
    """`given` (relative to `root`, or absolute) resolved, symbolic links followed; an error
    when the result is not under `root`."""
    base = root.resolve()
    path = (base / Path(given).expanduser()).resolve()
    if not path.is_relative_to(base):
        raise PermissionError(f"{given!r} is outside the workspace {root}: this chat may read only under it")
    return path


def confined_read_file(root: Path) -> Tool:
    async def run(args: dict[str, Any]) -> str:
        try:
            path = _inside(root, str(args["path"]))
        except PermissionError as exc:
            return f"error: {exc}"
        return await asyncio.to_thread(_read_file_now, {"path": str(path)})

    spec = ToolSpec(
        "read_file",
        f"Read a text file (the first 100 kB) under the workspace {root}; paths are relative to it.",
        _schema(path={"type": "string", "description": "File path, relative to the workspace"}),
    )
    return Tool(spec, run)


def confined_list_dir(root: Path) -> Tool:
    async def run(args: dict[str, Any]) -> str:
        try:
            path = _inside(root, str(args.get("path") or "."))
        except PermissionError as exc:
            return f"error: {exc}"
        return await asyncio.to_thread(_list_dir_now, {"path": str(path)})

    spec = ToolSpec(
        "list_dir",
        f"List a directory under the workspace {root}: folders end with '/'.",
        _schema(
            path={"type": "string", "description": "Directory (default: the workspace)", "optional": True}
        ),
    )
    return Tool(spec, run)


READ_FILE = Tool(
    ToolSpec(
        "read_file",
        "Read a text file (the first 100 kB).",
        _schema(path={"type": "string", "description": "File path"}),
    ),
    _read_file,
)
LIST_DIR = Tool(
    ToolSpec(
        "list_dir",
        "List a directory: folders end with '/'.",
        _schema(
            path={"type": "string", "description": "Directory (default: the current one)", "optional": True}
        ),
    ),
    _list_dir,
)


# ---- exec -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """The gateway config's `agent.sandbox` (reference §2)."""

    blocked_commands: tuple[str, ...] = ()
    max_exec_timeout_secs: float = 30.0
    turn_timeout_secs: float = 300.0
    max_concurrent: int = 5
    rate_limit_messages: int = 10
    rate_limit_window_secs: float = 60.0
    # A chat channel without an allowlist is open to anyone who finds the bot: its turns get
    # no exec, and read_file/list_dir only under `root`, unless this is set.
    allow_exec_for_everyone: bool = False
    root: Path | None = None  # default: $OPENCLAW_HOME/workspace

    @property
    def workspace(self) -> Path:
        """Where open channels' turns may read files."""
        return self.root if self.root is not None else openclaw_home() / "workspace"


def sandbox_settings(section: SandboxSection) -> SandboxSettings:
    """`agent.sandbox` of the checked gateway config (openclaw.config.gateway_file)."""
    return SandboxSettings(
        blocked_commands=tuple(section.blocked_commands),
        max_exec_timeout_secs=section.max_exec_timeout_secs,
        turn_timeout_secs=section.turn_timeout_secs,
        max_concurrent=section.max_concurrent,
        rate_limit_messages=section.rate_limit_messages,
        rate_limit_window_secs=section.rate_limit_window_secs,
        allow_exec_for_everyone=section.allow_exec_for_everyone,
        root=Path(section.root).expanduser() if section.root else None,
    )


def sandbox_from(section: dict[str, Any]) -> SandboxSettings:
    """`agent.sandbox` from a plain dict (tests, tools); missing keys keep openclaw-rs's
    defaults. The gateway and the CLI get theirs from openclaw.app.load_settings."""
    from openclaw.config.gateway_file import parse_sandbox

    return sandbox_settings(parse_sandbox(section))


def _words(command: str, depth: int = 0) -> list[str]:
    """The words of a shell command, split at operators (; | && $( ...), and the words of
    any `sh -c '...'` string inside it."""
    lexer = shlex.shlex(command.replace("$(", " ( ").replace("`", " ` "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        words = list(lexer)
    except ValueError:
        words = command.split()
    if depth < 3:
        for i, word in enumerate(words[:-1]):
            if word == "-c" or (word.startswith("-") and word.endswith("c") and not word.startswith("--")):
                words += _words(words[i + 1], depth + 1)
    return words


def blocked_by(command: str, blocked: Iterable[str]) -> str | None:
    """The blocked entry a command uses, if any: a program name anywhere (after ; | && $(
    or inside sh -c '...'), or a blocked phrase such as "rm -rf /" (spacing ignored).

    A guard rail against mistakes, not a security boundary: a shell can always build a
    name at run time. Run the gateway as a user that may only do what it should."""
    words = _words(command)
    programs = {Path(w).name for w in words}
    squeezed = " ".join(words)
    for entry in blocked:
        entry = " ".join(entry.split())
        if entry and ((" " not in entry and entry in programs) or (" " in entry and entry in squeezed)):
            return entry
    return None


async def _drain_and_reap(process: asyncio.subprocess.Process) -> None:
    # asyncio's wait() returns only once the pipes are closed, and a pipe left unread never
    # is: read what the killed command had written, then reap it.
    assert process.stdout is not None
    while await process.stdout.read(65536):
        pass
    await process.wait()


def exec_tool(settings: SandboxSettings) -> Tool:
    async def run(args: dict[str, Any]) -> str:
        command = str(args["command"])
        entry = blocked_by(command, settings.blocked_commands)
        if entry is not None:
            return f"error: {entry!r} is blocked by the sandbox settings"
        requested = float(args.get("timeout_secs") or settings.max_exec_timeout_secs)
        timeout = max(0.1, min(requested, settings.max_exec_timeout_secs))
        process = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
        assert process.stdout is not None
        output = bytearray()
        too_much = False
        try:
            async with asyncio.timeout(timeout):
                # Read no more than the model will see: a command printing gigabytes must not
                # fill this process's memory.
                while chunk := await process.stdout.read(65536):
                    output += chunk
                    if len(output) > MAX_OUTPUT_CHARS * 4:
                        too_much = True
                        break
                if not too_much:
                    await process.wait()
        except TimeoutError:
            return f"error: timed out after {timeout:g} s\n{output.decode(errors='replace')}"
        finally:
            if process.returncode is None:  # timed out, too much output, or the turn was cancelled
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the whole group: a shell's children too
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(_drain_and_reap(process))
        text = output.decode(errors="replace")
        if too_much:
            return f"stopped: more than {MAX_OUTPUT_CHARS} characters of output\n{text}"
        return f"exit code {process.returncode}\n{text}"

    spec = ToolSpec(
        "exec",
        f"Run a shell command (at most {settings.max_exec_timeout_secs:g} s).",
        _schema(
            command={"type": "string"},
            timeout_secs={"type": "number", "description": "Seconds", "optional": True},
        ),
    )
    return Tool(spec, run)
