"""Postgres mode through an outage (DESIGN.md §5): a decorator around the plain store.

`ResilientSessionStore` wraps an `IdempotentSessionStore` (the Postgres store) and the
outbox spool, as `DualSessionStore` wraps the SQLite store. It owns three things the
plain store knows nothing of:

- the breaker: after Postgres was found unavailable (`is_unavailable`), writes go
  straight to the spool and reads to memory for `retry_after_s`, instead of each waiting
  for the pool's timeout;
- the fallback: a write Postgres cannot take is spooled, with the same idempotency keys
  as the direct try (a write that committed but whose answer was lost lands once);
- the window: the last messages of the sessions this process talked in, for the history
  of a session whose writes wait in the spool (Postgres lacks them until they ship).

A session is "behind the outbox" while the spool holds writes of it (this process's or
an earlier run's, or another process's): its new writes queue behind them, its delete
too, and its history is Postgres's plus what the spool holds. Only that session waits
for its own entries (`Spool.has_pending`): the others go straight to Postgres.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from openclaw.chat import Message, Role, parse_tool_calls
from openclaw.errors import NotStoredError, first_line
from openclaw.outbox import Spool
from openclaw.outbox.classify import Verdict, classify, describe, is_unavailable
from openclaw.sessions.history import MAX_MESSAGES
from openclaw.sessions.keys import parse_key
from openclaw.sessions.mirror import CREATE, DELETE, MESSAGES, TOKENS_ADD, messages_entry
from openclaw.sessions.models import SessionInfo, SessionStats
from openclaw.sessions.sqlite_store import from_ms, to_ms
from openclaw.sessions.store import IdempotentSessionStore, SessionStore

log = logging.getLogger(__name__)

REMEMBERED_SESSIONS = 1000
RETRY_AFTER_S = 5.0

# What a store call raises when Postgres may be unavailable; `classify` sorts them. Any
# other exception is a bug and propagates as it is.
STORE_ERRORS = (psycopg.Error, PoolTimeout, OSError)


def spooled_history(spool: Spool, session_key: str) -> tuple[bool, list[tuple[str, Message]]]:
    """Whether a delete of this session waits in the spool (what came before it is gone),
    and its messages spooled after that, oldest first, with their uids. Blocking (an index
    lookup of the spool): asked once per session and process, for a session found behind
    the outbox with no window."""
    history: list[tuple[str, Message]] = []
    deleted = False
    for entry in spool.entries_of(session_key):
        if entry.kind == DELETE:
            history, deleted = [], True
        elif entry.kind == MESSAGES:
            history += [(m["uid"], _spooled_message(m)) for m in entry.payload["messages"]]
    return deleted, history


def _spooled_message(m: dict[str, Any]) -> Message:
    return Message(
        Role(m["role"]),
        content=m["content"],
        reasoning_content=m["reasoning_content"],
        tool_calls=parse_tool_calls(m["tool_calls_json"]),
        tool_call_id=m["tool_call_id"],
        timestamp=from_ms(m["ms"]),
    )


class ResilientSessionStore(SessionStore):
    """`inner`'s sessions, with writes spooled while Postgres cannot take them."""

    def __init__(
        self, inner: IdempotentSessionStore, spool: Spool, *, retry_after_s: float = RETRY_AFTER_S
    ) -> None:
        self.inner = inner
        self.spool = spool
        self.agent = inner.agent
        self.retry_after_s = retry_after_s
        self._recent: OrderedDict[str, deque[Message]] = OrderedDict()  # the window, per session
        self._behind: set[str] = set()  # sessions that had writes waiting in the spool
        self._down_until = 0.0  # the breaker: open (skip Postgres) until then
        self._backlog_read = False
        self._backlog_lock = asyncio.Lock()

    # ---- the breaker ----------------------------------------------------------------

    def _open(self) -> bool:
        return time.monotonic() < self._down_until

    def _trip(self, exc: BaseException) -> None:
        if not self._open():  # one line per outage, not one per write
            log.warning("Postgres unreachable (%s): session writes wait in the outbox", describe(exc))
        self._down_until = time.monotonic() + self.retry_after_s

    def _unavailable(self, exc: BaseException) -> bool:
        """Whether `exc` means Postgres is unavailable (the breaker trips); False for a
        row Postgres refuses or a bug: the caller raises."""
        if not is_unavailable(exc):
            return False
        self._trip(exc)
        return True

    # ---- which sessions wait for their spooled writes ---------------------------------

    async def _read_backlog(self) -> None:
        """At first use: the sessions with writes in the spool from before this process
        (an earlier run, another process). Their new writes must land after those."""
        if self._backlog_read:
            return
        async with self._backlog_lock:
            if self._backlog_read:
                return
            spool = self.spool
            keys = await asyncio.to_thread(lambda: spool.pending_sessions() if spool.pending() else set())
            self._behind |= keys
            self._backlog_read = True

    def behind_outbox(self, session_keys: set[str]) -> None:
        """These sessions have writes in the spool (the store also finds them itself)."""
        self._behind |= session_keys

    async def _is_behind(self, session_key: str) -> bool:
        """Whether Postgres lacks writes of this session that wait in the spool: a set
        lookup, and for the sessions that had some, an index probe of the spool for this
        session alone (off the event loop)."""
        await self._read_backlog()
        if session_key not in self._behind:
            return False
        if not await asyncio.to_thread(self.spool.has_pending, session_key):
            self._behind.discard(session_key)  # all shipped: Postgres has this session whole again
            return False
        return True

    # ---- writes -----------------------------------------------------------------------

    async def _spool(self, kind: str, payload: dict[str, Any], session_key: str) -> None:
        if not await self.spool.put(kind, payload):
            raise NotStoredError(
                "Postgres is unreachable and the outbox cannot take more: this message was not stored",
                retryable=True,
            )
        self._behind.add(session_key)

    async def _write(
        self,
        session_key: str,
        kind: str,
        payload: Callable[[], dict[str, Any]],
        direct: Callable[[], Awaitable[None]],
    ) -> bool:
        """Write directly, or spool `payload()` (the same write; made only then, off the
        common path) when Postgres cannot take it or this session's earlier writes still
        wait. Returns whether it was spooled."""
        if not self._open() and not await self._is_behind(session_key):
            try:
                await direct()
                return False
            except STORE_ERRORS as exc:
                if classify(exc) is Verdict.BAD_ROW:  # for what it holds: waiting will not help
                    raise NotStoredError(
                        f"Postgres refused to store this message: {first_line(exc)}", retryable=False
                    ) from exc
                if not self._unavailable(exc):
                    raise
        await self._spool(kind, payload(), session_key)
        return True

    async def create_session(self, session_key: str, agent: str, model: str = "") -> None:
        def entry() -> dict[str, Any]:
            now = to_ms(datetime.now(UTC))
            return {
                "key": session_key,
                "agent": agent,
                "model": model,
                "created_ms": now,
                "updated_ms": now,
                "authoritative": False,  # the session may exist already: it keeps its creation time
            }

        await self._write(
            session_key, CREATE, entry, lambda: self.inner.create_session(session_key, agent, model)
        )

    async def append_messages(self, session_key: str, messages: Sequence[Message]) -> None:
        uids = [uuid.uuid4() for _ in messages]

        def entry() -> dict[str, Any]:
            agent = parse_key(session_key).agent or self.agent
            return messages_entry(session_key, agent, messages, [str(u) for u in uids])

        spooled = await self._write(
            session_key, MESSAGES, entry, lambda: self.inner.append_with_uids(session_key, messages, uids)
        )
        self._remember(session_key, messages, start=not spooled)

    async def add_tokens(self, session_key: str, tokens: int) -> None:
        uid = uuid.uuid4()  # one per addition, tried directly or spooled: it lands once
        await self._write(
            session_key,
            TOKENS_ADD,
            lambda: {"key": session_key, "add": tokens, "uid": str(uid)},
            lambda: self.inner.add_tokens_once(session_key, tokens, uid),
        )

    async def delete_session(self, session_key: str) -> bool:
        # Behind the outbox, the delete is spooled behind the session's writes: run first,
        # their replay would bring the session back. True: the session is (or will be)
        # in Postgres, as far as this process knows.
        deleted = True

        async def direct() -> None:
            nonlocal deleted
            deleted = await self.inner.delete_session(session_key)

        await self._write(session_key, DELETE, lambda: {"key": session_key, "keys": [session_key]}, direct)
        self._remember(session_key, [], replace=True)  # known: empty from now on
        return deleted

    async def prune(self, older_than: timedelta, agent: str | None = None) -> int:
        # Sessions with writes in the spool are not stale (and a delete run ahead of them
        # would be undone by their replay): spared. An outage is an error here (an
        # administrator's command, not a turn).
        spool = self.spool
        keep = await asyncio.to_thread(lambda: spool.pending_sessions() if spool.pending() else set())
        keys = await self.inner.prune_returning_keys(older_than, agent, keep=keep)
        for key in keys:
            self._recent.pop(key, None)
        return len(keys)

    # ---- the window -------------------------------------------------------------------

    def _remember(
        self, key: str, messages: Sequence[Message], *, replace: bool = False, start: bool = True
    ) -> None:
        """Keep `messages` in the session's window. `start`: make a window if there is
        none (not for a spooled write: the window is made from Postgres and the spool,
        or it would hold only this write)."""
        window = self._recent.pop(key, None)
        if window is None and not start:
            return
        if window is None or replace:
            window = deque(maxlen=MAX_MESSAGES)
        window.extend(messages)
        self._recent[key] = window
        while len(self._recent) > REMEMBERED_SESSIONS:
            self._recent.popitem(last=False)

    async def _window(self, session_key: str) -> list[Message]:
        """The history of a session read from memory; a session with no window yet (after a
        restart) gets one: Postgres's last messages, then what the spool holds for it, a
        message in both (its commit's answer was lost) once."""
        window = self._recent.get(session_key)
        if window is not None:
            self._recent.move_to_end(session_key)
            return list(window)
        stored: list[tuple[str, Message]] = []
        if not self._open():
            try:
                stored = await self.inner.load_recent_with_uids(session_key, MAX_MESSAGES)
            except STORE_ERRORS as exc:
                if not self._unavailable(exc):
                    raise
        deleted, spooled = await asyncio.to_thread(spooled_history, self.spool, session_key)
        if deleted:  # a delete waits in the spool: Postgres's part is gone
            stored = []
        # While Postgres is down its part is not known: the spool's is what there is (the
        # window is made again once the session has caught up).
        seen = {uid for uid, _ in stored}
        history = [m for _, m in stored] + [m for uid, m in spooled if uid not in seen]
        self._remember(session_key, history, replace=True)
        return history[-MAX_MESSAGES:]

    # ---- reads ------------------------------------------------------------------------

    async def load_recent_messages(self, session_key: str, limit: int) -> list[Message]:
        if not self._open() and not await self._is_behind(session_key):
            try:
                messages = await self.inner.load_recent_messages(session_key, limit)
            except STORE_ERRORS as exc:
                if not self._unavailable(exc):
                    raise
            else:
                if limit >= MAX_MESSAGES or len(messages) < limit:  # the window, whole
                    self._remember(session_key, messages, replace=True)
                return messages
        return (await self._window(session_key))[-limit:] if limit > 0 else []

    async def load_messages(self, session_key: str) -> list[Message]:
        return await self.inner.load_messages(session_key)

    async def list_sessions(self, agent: str | None = None, limit: int = 50) -> list[SessionInfo]:
        return await self.inner.list_sessions(agent, limit)

    async def get_session(self, session_key: str) -> SessionInfo | None:
        return await self.inner.get_session(session_key)

    async def find_latest_session(self, prefix: str) -> SessionInfo | None:
        # The session a chat continues is asked for on every message: during an outage (or
        # while this chat's writes wait in the outbox) the sessions this process talked
        # in answer it, newest first.
        remembered = [k for k in reversed(self._recent) if k == prefix or k.startswith(prefix + ":")]
        if not self._open() and not [k for k in remembered if await self._is_behind(k)]:
            try:
                return await self.inner.find_latest_session(prefix)
            except STORE_ERRORS as exc:
                if not self._unavailable(exc):
                    raise
        if not remembered:
            return None
        now = datetime.now(UTC)
        key = remembered[0]
        info = parse_key(key)
        return SessionInfo(
            key, self.agent, "", info.channel, info.user_id, now, now, 0, len(self._recent[key])
        )

    async def stats(self) -> SessionStats:
        return await self.inner.stats()

    async def close(self) -> None:
        await self.inner.close()
