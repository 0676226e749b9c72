"""The chat message: what sessions store, providers send and the agent loop passes around."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """An OpenAI-style function call; `arguments` is a JSON-encoded string, as on the wire."""

    id: str
    name: str
    arguments: str = "{}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        function = data.get("function") or {}
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):  # some writers stored the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        return cls(id=str(data.get("id", "")), name=str(function.get("name", "")), arguments=arguments)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None
    timestamp: datetime = field(default_factory=_now)  # when it happened, not when it was stored

    @classmethod
    def user(cls, text: str) -> Message:
        return cls(Role.USER, content=text)

    @classmethod
    def system(cls, text: str) -> Message:
        return cls(Role.SYSTEM, content=text)

    @classmethod
    def assistant(
        cls, text: str | None, *, tool_calls: tuple[ToolCall, ...] | None = None, reasoning: str | None = None
    ) -> Message:
        return cls(Role.ASSISTANT, content=text, tool_calls=tool_calls or None, reasoning_content=reasoning)

    @classmethod
    def tool_result(cls, tool_call_id: str, text: str) -> Message:
        return cls(Role.TOOL, content=text, tool_call_id=tool_call_id)

    def tool_calls_json(self) -> str | None:
        """The `tool_calls_json` column of the Rust SQLite format."""
        if not self.tool_calls:
            return None
        return json.dumps([c.to_json() for c in self.tool_calls], ensure_ascii=False, separators=(",", ":"))


def parse_tool_calls(text: str | None) -> tuple[ToolCall, ...] | None:
    """Tool calls from a stored JSON array; None when absent or unreadable (as openclaw-rs)."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, list):
        return None
    calls = tuple(ToolCall.from_json(item) for item in data if isinstance(item, dict))
    return calls or None
