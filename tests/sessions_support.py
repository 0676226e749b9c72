"""Helpers for the session tests: Rust-format fixtures, a cuttable TCP proxy, a process
that file permissions apply to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from openclaw.chat import Message, Role, ToolCall
from openclaw.sessions.sqlite_store import SCHEMA

T0 = datetime(2026, 3, 1, 9, 30, 0, 123000, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample_turn(start: float = 0) -> list[Message]:
    """A turn as openclaw-rs stores it: user, assistant with a tool call, the result, the answer."""
    call = ToolCall("call_1", "exec", json.dumps({"command": "ls -la ~/données"}))
    return [
        Message(Role.USER, content="list my files 📁", timestamp=at(start)),
        Message(
            Role.ASSISTANT,
            content=None,
            reasoning_content="need exec",
            tool_calls=(call,),
            timestamp=at(start + 1),
        ),
        Message(Role.TOOL, content="a.txt\nb.txt", tool_call_id="call_1", timestamp=at(start + 2)),
        Message(Role.ASSISTANT, content="You have a.txt and b.txt ✅", timestamp=at(start + 3)),
    ]


def write_rust_db(
    path: Path,
    sessions: Sequence[tuple[str, str, str, int, int, int]],
    messages: Sequence[tuple[str, str, str | None, str | None, str | None, str | None, int]],
) -> None:
    """A sessions.db exactly as openclaw-rs creates it. sessions: (key, agent, model, created_ms,
    updated_ms, tokens); messages: (key, role, content, reasoning, tool_calls_json, tool_call_id, ms)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA user_version = 1")
    conn.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)", sessions)
    conn.executemany(
        "INSERT INTO messages (session_key, role, content, reasoning_content, tool_calls_json, tool_call_id,"
        " timestamp_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        messages,
    )
    conn.commit()
    conn.close()


def as_a_normal_user(argv: Sequence[str]) -> list[str]:
    """`argv`, run so that file permissions apply to it. Root ignores them unless it drops
    the capabilities that override them (with capsh; the test is skipped without it)."""
    if os.geteuid() != 0:
        return list(argv)
    capsh = shutil.which("capsh")
    if capsh is None:
        pytest.skip("needs capsh to act, as root, as a user that file permissions apply to")
    return [capsh, "--drop=cap_dac_override,cap_dac_read_search,cap_fowner", "--", "-c", shlex.join(argv)]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a Postgres server (TCP or Unix socket); `cut()` drops every
    connection and refuses new ones until `restore()` — a database outage, for real."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.up = True
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target_host.startswith("/"):
            return await asyncio.open_unix_connection(f"{self.target_host}/.s.PGSQL.{self.target_port}")
        return await asyncio.open_connection(self.target_host, self.target_port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await self._open_target()
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self.up = False
        for w in list(self._writers):
            w.close()

    def restore(self) -> None:
        self.up = True

    async def stop(self) -> None:
        self.cut()
        if self._server:
            self._server.close()
            await self._server.wait_closed()
