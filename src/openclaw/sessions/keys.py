"""Session keys, as openclaw-rs writes them (reference §1).

| source   | key                                   |
|----------|---------------------------------------|
| Telegram | tg:{agent}:{user_id}:{chat_id}        |
| Discord  | dc:{agent}:{user_id}:{channel_id}     |
| CLI      | agent:{agent}:cli:{uuid4}             |
| cron     | cron:{agent}:{uuid4}                  |
| webhook  | webhook:{agent}:{uuid4} (or the request's own key) |
| subagent | subagent:{agent}:{uuid4}              |

A key is at most MAX_SESSION_KEY_CHARS printable characters, wherever it comes from (the
webhook, `--session`, a channel): a longer one once failed in Postgres's index on the key
(SQLSTATE 54000, taken for an outage), and migration 0007 adds the same bound as a CHECK.
Keys built from ids always fit: the agent name is at most MAX_AGENT_NAME_CHARS, and the
longest built key, a Telegram chat's after /new, is `tg:{agent}:{user}:{chat}:{uuid4}` with
two 64-bit ids: 82 characters and the name.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from openclaw.errors import UsageError

MAX_SESSION_KEY_CHARS = 256
# What the Postgres CHECK allows (octet_length): any key within the character limit, in
# UTF-8, and far below what a btree index row holds (about 2,700 bytes).
MAX_SESSION_KEY_BYTES = 4 * MAX_SESSION_KEY_CHARS
MAX_AGENT_NAME_CHARS = 64


class InvalidSessionKeyError(UsageError):
    """A session key that is empty, too long, or holds a character a key may not (a usage
    error of whoever gave it: exit code 2 on the command line, 400 from the webhook)."""


def _unprintable(text: str) -> str | None:
    """The first character of `text` that is not printable (a control character, a NUL, a
    lone surrogate that UTF-8 cannot encode...), described, or None."""
    for index, char in enumerate(text):
        if not char.isprintable():
            return f"U+{ord(char):04X} at position {index + 1}"
    return None


def session_key_problem(key: str) -> str | None:
    """Why `key` cannot be a session key, in a few words; None when it can."""
    return _name_problem(key, "a session key", MAX_SESSION_KEY_CHARS)


def check_session_key(key: str) -> str:
    """`key`, or InvalidSessionKeyError saying what is wrong with it."""
    problem = session_key_problem(key)
    if problem is not None:
        raise InvalidSessionKeyError(problem)
    return key


def agent_name_problem(name: str) -> str | None:
    """Why `name` cannot name an agent (it is part of every key the agent's sessions get);
    None when it can."""
    return _name_problem(name, "an agent name", MAX_AGENT_NAME_CHARS)


def _name_problem(value: str, what: str, limit: int) -> str | None:
    if not value.strip():
        return f"{what} may not be empty"
    if len(value) > limit:
        return f"{what} has at most {limit} characters, not {len(value)}"
    bad = _unprintable(value)
    if bad is not None:
        return f"{what} holds printable characters only, not {bad}"
    return None


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


# A session of an openclaw-rs file whose key Postgres already has for another agent (a
# free-form webhook key, an orphan's key, a legacy key two agents kept) is imported under
# `{key}#{agent}` (`migrate-sessions`, recorded in the session_renames table). The rule
# depends on nothing but the key and the agent, so a re-run maps to the same key.
RENAME_MARK = "#"
_RENAME_HASH_CHARS = 16


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "_" for c in text)


def hashed_renamed_key(key: str, agent: str) -> str:
    """The second choice of `renamed_key` (and its form for a key too long or unprintable):
    key and agent cut short and made printable, `~` and 16 hex digits of a hash of both,
    which tells apart whatever the cut made alike."""
    digest = hashlib.sha256(f"{key}\x00{agent}".encode("utf-8", "surrogatepass")).hexdigest()
    tail = f"{RENAME_MARK}{_printable(agent)[:32]}~{digest[:_RENAME_HASH_CHARS]}"
    head = _printable(key)[: MAX_SESSION_KEY_CHARS - len(tail)]
    return head + tail


def renamed_key(key: str, agent: str) -> str:
    """The key `agent`'s session `key` is imported under when another agent holds `key`:
    `{key}#{agent}`; `hashed_renamed_key` when that would not be a valid key."""
    plain = f"{key}{RENAME_MARK}{agent}"
    return plain if session_key_problem(plain) is None else hashed_renamed_key(key, agent)


def renamed_key_candidates(key: str, agent: str) -> tuple[str, str]:
    """The keys tried in order (the second if the first is some other session's)."""
    first = renamed_key(key, agent)
    second = hashed_renamed_key(key, agent)
    return (first, second) if second != first else (first, hashed_renamed_key(first, agent))
