"""What session stores return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Backend(StrEnum):
    SQLITE = "sqlite"  # the openclaw-rs file, $OPENCLAW_HOME/agents/{agent}/sessions.db
    POSTGRES = "postgres"
    DUAL = "dual"  # SQLite is the truth; every write is mirrored to Postgres via the outbox


@dataclass(slots=True)
class SessionInfo:
    session_key: str
    agent_name: str
    model: str
    channel: str | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime
    total_tokens: int
    message_count: int


@dataclass(slots=True)
class SessionStats:
    sessions: int = 0
    messages: int = 0
    total_tokens: int = 0
    sessions_by_agent: dict[str, int] = field(default_factory=dict)
    sessions_by_channel: dict[str, int] = field(default_factory=dict)
