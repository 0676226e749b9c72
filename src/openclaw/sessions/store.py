"""The one interface every session backend implements (the plan's SessionStore API)."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from datetime import timedelta

from openclaw.chat import Message
from openclaw.sessions.history import MAX_MESSAGES, history_window
from openclaw.sessions.models import SessionInfo, SessionStats


class SessionStore(ABC):
    @abstractmethod
    async def create_session(self, session_key: str, agent: str, model: str = "") -> None:
        """Create the session if it does not exist (the model is set only at creation)."""

    @abstractmethod
    async def append_messages(self, session_key: str, messages: Sequence[Message]) -> None:
        """Store messages in order and bump the session's updated time."""

    @abstractmethod
    async def add_tokens(self, session_key: str, tokens: int) -> None: ...

    @abstractmethod
    async def load_messages(self, session_key: str) -> list[Message]:
        """Every message of the session, oldest first."""

    @abstractmethod
    async def load_recent_messages(self, session_key: str, limit: int) -> list[Message]:
        """The last `limit` messages, oldest first."""

    @abstractmethod
    async def list_sessions(self, agent: str | None = None, limit: int = 50) -> list[SessionInfo]:
        """Sessions, most recently updated first."""

    @abstractmethod
    async def get_session(self, session_key: str) -> SessionInfo | None: ...

    @abstractmethod
    async def find_latest_session(self, prefix: str) -> SessionInfo | None:
        """The newest session whose key is `prefix` or continues it after a ':'."""

    @abstractmethod
    async def delete_session(self, session_key: str) -> bool: ...

    @abstractmethod
    async def stats(self) -> SessionStats: ...

    @abstractmethod
    async def prune(self, older_than: timedelta, agent: str | None = None) -> int:
        """Delete sessions not updated for `older_than`; return how many."""

    async def close(self) -> None:  # noqa: B027 - a store without resources needs no close
        """Release what the store holds."""

    async def append_message(self, session_key: str, message: Message) -> None:
        await self.append_messages(session_key, [message])

    async def load_llm_messages(self, session_key: str) -> list[Message]:
        """The history window to replay to the model (openclaw-rs rules, see `history`)."""
        return history_window(await self.load_recent_messages(session_key, MAX_MESSAGES))


class IdempotentSessionStore(SessionStore):
    """A store whose writes take the caller's idempotency keys, so a write tried directly
    and also spooled (its commit's answer lost) lands once; what `ResilientSessionStore`
    needs of the store it wraps."""

    agent: str  # the agent of sessions whose key names none

    @abstractmethod
    async def append_with_uids(
        self, session_key: str, messages: Sequence[Message], uids: Sequence[uuid.UUID]
    ) -> None: ...

    @abstractmethod
    async def add_tokens_once(self, session_key: str, tokens: int, uid: uuid.UUID) -> None: ...

    @abstractmethod
    async def load_recent_with_uids(self, session_key: str, limit: int) -> list[tuple[str, Message]]:
        """`load_recent_messages`, each message with its uid (as text)."""

    @abstractmethod
    async def prune_returning_keys(
        self, older_than: timedelta, agent: str | None = None, *, keep: Collection[str] = ()
    ) -> list[str]:
        """`prune`, sparing the sessions in `keep`; returns the keys deleted."""
