"""Session keys, as openclaw-rs writes them (reference §1).

| source   | key                                   |
|----------|---------------------------------------|
| Telegram | tg:{agent}:{user_id}:{chat_id}        |
| Discord  | dc:{agent}:{user_id}:{channel_id}     |
| CLI      | agent:{agent}:cli:{uuid4}             |
| cron     | cron:{agent}:{uuid4}                  |
| webhook  | webhook:{agent}:{uuid4} (or the request's own key) |
| subagent | subagent:{agent}:{uuid4}              |
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_CHANNELS = {"tg": "telegram", "dc": "discord", "cron": "cron", "webhook": "webhook", "subagent": "subagent"}


@dataclass(frozen=True, slots=True)
class KeyInfo:
    agent: str | None
    channel: str | None
    user_id: str | None


def parse_key(key: str) -> KeyInfo:
    """What a key says about its agent, channel and user; unknown shapes give Nones."""
    parts = key.split(":")
    prefix = parts[0]
    if prefix in ("tg", "dc") and len(parts) >= 4:
        return KeyInfo(parts[1] or None, _CHANNELS[prefix], parts[2] or None)
    if prefix == "agent" and len(parts) >= 3 and parts[2] == "cli":
        return KeyInfo(parts[1] or None, "cli", None)
    if prefix in ("cron", "webhook", "subagent") and len(parts) >= 3:
        return KeyInfo(parts[1] or None, _CHANNELS[prefix], None)
    return KeyInfo(None, None, None)


def rewrite_legacy_key(key: str, agent: str) -> str:
    """The 3-part keys of early openclaw-rs (`tg:{x}:{chat}`) became `tg:{agent}:0:{chat}`."""
    parts = key.split(":")
    if len(parts) == 3 and parts[0] in ("tg", "dc"):
        return f"{parts[0]}:{agent}:0:{parts[2]}"
    return key


def like_prefix(prefix: str) -> str:
    """A LIKE pattern (ESCAPE '\\') for keys that continue `prefix` after a delimiter, so
    chat `2` never matches chat `23`, and `_` or `%` in the prefix match only themselves.
    The key equal to the prefix is matched separately."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + ("%" if prefix.endswith(":") else ":%")


def matches_prefix(key: str, prefix: str) -> bool:
    """The same test as `like_prefix`, for stores that filter in Python."""
    return key.startswith(prefix if prefix.endswith(":") else prefix + ":") or key == prefix


def new_cli_key(agent: str) -> str:
    return f"agent:{agent}:cli:{uuid.uuid4()}"
