"""Secrets never reach the database: redaction of config documents (DESIGN.md §6).

A secret value becomes `[redacted:<hash>]`, where the hash is an HMAC of the value under
a key kept in `$OPENCLAW_HOME/redaction.key` (created on first use, mode 0600). A changed
secret therefore still shows as changed, and nobody who reads the database (a prompt-
injected assistant included) can test guesses of a weak password against the hash.

What counts as a secret, in three nets:
- by key name: token, apiKey / *Key, password, secret, credential, authorization, cookie...
  (but not counts such as maxTokens: a number under a token-ish name is kept);
- by place: everything under `env`, `environment` and `channels`, at any depth;
- by value: passwords in URLs and `key=value` strings, secrets in URL queries, bot tokens
  in Telegram and Discord URLs, well-known key formats (sk-, ghp_, xoxb-, AKIA...), and the
  value after a `--api-key`-like flag in an argument list.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import unicodedata
from pathlib import Path
from typing import Any

from openclaw.errors import ConfigError

MARKER_PREFIX = "[redacted:"
KEY_BYTES = 32

# Key names are compared lower-cased with '_' and '-' removed: apiKey, api_key, API-KEY.
_SECRET_KEY_PARTS = (
    "token",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "authorization",
    "cookie",
    "privatekey",
    "privkey",
    "apikey",
    "bearer",
    "jwt",
    "signature",
)
# A name whose last word is "key" is a secret (openaiKey, access_key, SIGNING-KEY, key),
# and so is one ending in salt, seed, pin, otp or sig (signing_salt, otpSeed)...
_KEY_WORD_AT_END = re.compile(
    r"(?:^|[_\-.\s])(?:[kK][eE][yY][sS]?|salt|seed|pin|otp|sig|SALT|SEED|PIN|OTP|SIG)$"
    r"|[a-z0-9](?:K(?:ey|EY)[sS]?|Salt|SALT|Seed|SEED|Pin|PIN|Otp|OTP|Sig|SIG)$"
)
# ... except these. ("monkey" is not caught: "key" must be a word of its own.)
_NOT_SECRET_KEYS = frozenset(
    {
        "sessionkey",
        "publickey",
        "primarykey",
        "sortkey",
        "hotkey",
        "idempotencykey",
        "cachekey",
        "partitionkey",
    }
)
# Short names that are secrets when they hold a value, but may also name a section whose
# other settings are not secret (`gateway.auth` is a token or `{mode, token}`).
_SECRET_SECTION_NAMES = frozenset({"auth", "pass", "pwd"})
_SECRET_SUBTREES = frozenset({"env", "environment", "channels"})

_SECRET_FLAG = re.compile(r"^--?[\w-]*(key|token|secret|password|passwd|credential)[\w-]*$", re.I)
_VALUE_PATTERNS = [
    # scheme://user:PASSWORD@host
    re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s/]+)(?=@)", re.I),
    # ?password=X&api_key=Y in URLs, password=X in libpq key=value strings
    re.compile(
        r"(?P<head>(?:^|[?&\s;,])(?:ssl)?(?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|key)"
        r"\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^&\s;,]+)",
        re.I,
    ),
    # --api-key=X inside one argument
    re.compile(r"(?P<head>--?[\w-]*(?:key|token|secret|password)[\w-]*=)(?P<secret>\S+)", re.I),
    # Telegram bot URLs and bare bot tokens: 123456:AA...
    re.compile(r"(?P<head>/bot)(?P<secret>\d{5,}:[\w-]{20,})"),
    re.compile(r"(?P<head>)(?P<secret>(?<![\w:])\d{5,}:[\w-]{30,})"),
    # Discord (and Slack-like) webhook URLs: /api/webhooks/<id>/<token>
    re.compile(r"(?P<head>/webhooks/\d+/)(?P<secret>[\w-]{20,})"),
    # PEM private keys, HTTP credentials, JWTs, Slack webhooks, signed URLs
    re.compile(
        r"(?P<head>)(?P<secret>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?"
        r"(?:-----END [A-Z ]*PRIVATE KEY-----|$))"
    ),
    re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)(?P<secret>[\w\-.~+/=]{8,})"),
    re.compile(r"(?P<head>)(?P<secret>\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]+)"),
    re.compile(r"(?P<head>hooks\.slack\.com/services/)(?P<secret>[\w/]+)"),
    re.compile(r"(?P<head>[?&](?:sig|signature|x-amz-signature)=)(?P<secret>[^&\s]+)", re.I),
    # Well-known key formats
    re.compile(
        r"(?P<head>)(?P<secret>\b(?:sk-[\w-]{16,}|sk_live_\w{16,}|gh[pousr]_\w{30,}|github_pat_\w{30,}"
        r"|xox[abpors]-[\w-]{10,}|AKIA[0-9A-Z]{16}|AIza[\w-]{30,}|glpat-[\w-]{20,}))"
    ),
]


def _normalise(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def is_secret_key(key: str, value: Any = None) -> bool:
    name = _normalise(key)
    if isinstance(value, bool) or value is None:
        return False
    if name in _SECRET_SECTION_NAMES:
        return not isinstance(value, dict)
    if "token" in name and isinstance(value, int | float):
        return False  # maxTokens, contextTokens: counts, not credentials
    if any(part in name for part in _SECRET_KEY_PARTS):
        return True
    return bool(_KEY_WORD_AT_END.search(key)) and name not in _NOT_SECRET_KEYS


def looks_secret(key: str, value: Any) -> bool:
    """Whether a key-value entry looks like a credential, by its key (also compatibility
    forms of letters: ＡＰＩ_KEY), by any key inside it, or by a secret-looking text in it."""
    if is_secret_key(unicodedata.normalize("NFKC", key), value if value is not None else ""):
        return True
    if isinstance(value, dict):
        return any(looks_secret(str(k), v) for k, v in value.items())
    if isinstance(value, list):
        return any(looks_secret("", v) for v in value)
    return isinstance(value, str) and any(p.search(value) for p in _VALUE_PATTERNS)


def is_redacted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MARKER_PREFIX)


class Redactor:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a redaction key has {KEY_BYTES} bytes, not {len(key)}")
        self._key = key

    @classmethod
    def for_home(cls, home: Path) -> Redactor:
        """The redactor of this installation, creating its key on first use."""
        path = home / "redaction.key"
        try:
            return cls._read(path)
        except FileNotFoundError:
            pass
        try:
            home.mkdir(parents=True, exist_ok=True)
            # Write a complete key under a temporary name, then link it into place: a
            # concurrent first use either wins the link or reads the winner's whole key.
            tmp = home / f".redaction.key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_bytes(KEY_BYTES).hex())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
            return cls._read(path)
        except FileNotFoundError:
            raise ConfigError(f"cannot create {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from None

    @classmethod
    def _read(cls, path: Path) -> Redactor:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise ConfigError(f"{path} is damaged: delete it to make a new one") from None

    def marker(self, value: Any) -> str:
        digest = hmac.new(self._key, json.dumps(value, sort_keys=True).encode(), hashlib.sha256)
        return f"{MARKER_PREFIX}{digest.hexdigest()[:12]}]"

    def redact(self, document: Any) -> Any:
        """A copy of `document` with every secret replaced by its marker. Idempotent:
        markers are left as they are."""
        return self._walk(document, secret=False)

    def _walk(self, value: Any, *, secret: bool) -> Any:
        if isinstance(value, dict):
            return {
                k: self._walk(v, secret=secret or is_secret_key(k, v) or _normalise(k) in _SECRET_SUBTREES)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return self._walk_list(value, secret=secret)
        if is_redacted(value):
            return value
        if secret and value is not None and not isinstance(value, bool):
            return self.marker(value)
        if isinstance(value, str):
            return self._scrub_string(value)
        return value

    def _walk_list(self, items: list[Any], *, secret: bool) -> list[Any]:
        out: list[Any] = []
        after_flag = False
        for item in items:
            out.append(self._walk(item, secret=secret or after_flag))
            after_flag = isinstance(item, str) and bool(_SECRET_FLAG.match(item))
        return out

    def _scrub_string(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match["secret"].startswith(MARKER_PREFIX):
                return match[0]  # redacted already
            return match["head"] + self.marker(match["secret"])

        for pattern in _VALUE_PATTERNS:
            text = pattern.sub(replace, text)
        return text
