"""Secrets never reach the database: redaction of config documents (DESIGN.md §6).

A secret value becomes `[redacted:<hash>]`, where the hash is an HMAC of the value under
a key kept in `$OPENCLAW_HOME/redaction.key` (created on first use, mode 0600). A changed
secret therefore still shows as changed, and nobody who reads the database (a prompt-
injected assistant included) can test guesses of a weak password against the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from openclaw.errors import ConfigError

MARKER_PREFIX = "[redacted:"

# Key names are compared lower-cased with '_' and '-' removed: apiKey, api_key, API-KEY.
_SECRET_KEY_PARTS = (
    "token",
    "apikey",
    "password",
    "passwd",
    "secret",
    "credential",
    "privatekey",
    "authorization",
    "cookie",
)
# Short names that are secrets when they hold a value, but may also name a section whose
# other settings are not secret (`gateway.auth` is a token or `{mode, token}`).
_SECRET_KEY_NAMES = frozenset({"auth", "key", "pass", "pwd"})
# Every value below these keys is a secret: environment variables (`env`, `mcp_servers[].env`)
# and chat-channel settings (`channels.*`, bot credentials of every kind).
_SECRET_SUBTREES = frozenset({"env", "channels"})
# user:password@ in URLs such as a DATABASE_URL written into a config.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?=@)", re.I)


def _normalise(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def is_secret_key(key: str, value: Any = None) -> bool:
    name = _normalise(key)
    if name in _SECRET_KEY_NAMES:
        return not isinstance(value, dict | list)
    return any(part in name for part in _SECRET_KEY_PARTS)


class Redactor:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_home(cls, home: Path) -> Redactor:
        """The redactor of this installation, creating its key on first use."""
        path = home / "redaction.key"
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except FileNotFoundError:
            pass
        except ValueError:
            raise ConfigError(f"{path} is damaged: delete it to make a new one") from None
        home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return cls(bytes.fromhex(path.read_text().strip()))
        with os.fdopen(fd, "w") as f:
            f.write(key.hex())
        return cls(key)

    def marker(self, value: Any) -> str:
        digest = hmac.new(self._key, json.dumps(value, sort_keys=True).encode(), hashlib.sha256)
        return f"{MARKER_PREFIX}{digest.hexdigest()[:12]}]"

    def redact(self, document: Any) -> Any:
        """A copy of `document` with every secret replaced by its marker."""
        return self._walk(document, secret=False)

    def _walk(self, value: Any, *, secret: bool) -> Any:
        if isinstance(value, dict):
            return {
                k: self._walk(v, secret=secret or is_secret_key(k, v) or k in _SECRET_SUBTREES)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._walk(v, secret=secret) for v in value]
        if secret and value is not None and not isinstance(value, bool):
            return self.marker(value)
        if isinstance(value, str):
            return _URL_PASSWORD.sub(lambda m: m["head"] + self.marker(m["password"]), value)
        return value


def is_redacted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MARKER_PREFIX)
