"""The gateway's settings: the snake_case config file openclaw-rs reads, and its env overrides.

    $GATEWAY_CONFIG (default /etc/openclaw-gateway/config.json):
    {"telegram": {"bot_token": "...", "allowed_user_ids": [123], "api_base": "https://api.telegram.org"},
     "discord":  {"bot_token": "...", "allowed_user_ids": [456], "api_base": "https://discord.com/api/v10"},
     "agent": {"name": "main", "fallback": true, "model": null, "sandbox": {...}},
     "webhook": {"token": "...", "allowed_session_prefixes": ["webhook:"], "body_timeout_s": 10},
     "metrics": {"snapshot_interval_secs": 60}, "llm_log": {"capacity": 256},
     "cron": {"lease_s": 120}, "outbox": {"max_entries": 1000000, "memory_entries": 10000}}

A webhook request's body must arrive within `webhook.body_timeout_s` seconds of its
headers (408 and the connection closed otherwise): a client that sends slowly, or less than
it announced, does not hold a connection.

A channel without an allowlist is open to anyone who finds the bot: its turns get no
`exec`, and `read_file`/`list_dir` only under `agent.sandbox.root` (default
$OPENCLAW_HOME/workspace), unless `agent.sandbox.allow_exec_for_everyone` is true. The
webhook (its token holder is the operator) and the CLI (the local user) keep every tool.

Env: TELEGRAM_BOT_TOKEN, DISCORD_BOT_TOKEN and ALLOWED_USER_IDS (comma-separated, Telegram's)
override the file, TELEGRAM_API_BASE and DISCORD_API_BASE apply where it has none; without
a file AGENT_NAME (main), USE_FALLBACK (true) and MODEL apply; HTTP_BIND (127.0.0.1) and
HTTP_PORT (3100) say where the API listens.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from openclaw.agent.tools import SandboxSettings, sandbox_from
from openclaw.cron.lease import DEFAULT_LEASE_S, lease_seconds
from openclaw.errors import ConfigError
from openclaw.home import gateway_config_path, manual_config_path
from openclaw.llm.config import ModelRef
from openclaw.sessions.keys import MAX_SESSION_KEY_CHARS, agent_name_problem, session_key_problem
from openclaw.settings import read_gateway_config, read_json_object

DEFAULT_PORT = 3100
DEFAULT_BIND = "127.0.0.1"
MAX_WEBHOOK_BODY_BYTES = 1_000_000
WEBHOOK_BODY_TIMEOUT_S = 10.0
WEBHOOK_SESSION_PREFIXES = ("webhook:",)  # openclaw-rs's webhook keys: webhook:{agent}:{uuid}
TELEGRAM_API_BASE = "https://api.telegram.org"
DISCORD_API_BASE = "https://discord.com/api/v10"


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    bot_token: str | None = field(default=None, repr=False)
    allowed_user_ids: tuple[int, ...] = ()  # empty: everyone may talk
    api_base: str = TELEGRAM_API_BASE

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token)

    @property
    def open_to_everyone(self) -> bool:
        """No allowlist: anyone who finds the bot may talk to it."""
        return not self.allowed_user_ids

    def allows(self, user_id: int) -> bool:
        return not self.allowed_user_ids or user_id in self.allowed_user_ids


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    agent_name: str = "main"
    use_fallback: bool = True
    model: ModelRef | None = None
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    telegram: ChannelConfig = field(default_factory=ChannelConfig)
    discord: ChannelConfig = field(default_factory=lambda: ChannelConfig(api_base=DISCORD_API_BASE))
    webhook_token: str | None = field(default=None, repr=False)
    api_token: str | None = field(default=None, repr=False)  # gateway.auth of openclaw-manual.json
    bind: str = DEFAULT_BIND
    port: int = DEFAULT_PORT
    snapshot_interval_s: float = 60.0
    max_body_bytes: int = MAX_WEBHOOK_BODY_BYTES
    webhook_body_timeout_s: float = WEBHOOK_BODY_TIMEOUT_S
    webhook_session_prefixes: tuple[str, ...] = WEBHOOK_SESSION_PREFIXES
    cron_lease_s: float = DEFAULT_LEASE_S

    def tokens(self) -> tuple[str, ...]:
        """Tokens that open /logs, /status and the webhook."""
        return tuple(t for t in (self.webhook_token, self.api_token) if t)

    def webhook_key_problem(self, key: str) -> str | None:
        """Why the webhook may not write to session `key`, or None when it may: a webhook
        caller must not write into a Telegram or Discord user's conversation."""
        fits = any(key.startswith(p) and len(key) > len(p) for p in self.webhook_session_prefixes)
        if fits and session_key_problem(key) is None:
            return None
        return (
            f'"session_key" must start with {", ".join(self.webhook_session_prefixes)} '
            f"(webhook.allowed_session_prefixes), continue after it, and be at most "
            f"{MAX_SESSION_KEY_CHARS} printable characters"
        )

    def open_channel_warning(self, running: Collection[str] | None = None) -> str | None:
        """One line for the log at start: which chat channels (of `running`, default the
        enabled ones) have no allowlist, and what their chats cannot do (or that they can,
        when the operator allowed it)."""
        open_channels = [
            name
            for name, ch in (("telegram", self.telegram), ("discord", self.discord))
            if (ch.enabled if running is None else name in running) and ch.open_to_everyone
        ]
        if not open_channels:
            return None
        names = " and ".join(open_channels)
        which = "its" if len(open_channels) == 1 else "their"
        if self.sandbox.allow_exec_for_everyone:
            return (
                f"{names}: allowed_user_ids is empty and agent.sandbox.allow_exec_for_everyone is true: "
                f"anyone who finds the bot may run commands through exec"
            )
        return (
            f"{names}: allowed_user_ids is empty: exec, and read_file/list_dir outside "
            f"{self.sandbox.workspace}, are off for {which} chats "
            f"(set agent.sandbox.allow_exec_for_everyone: true to allow)"
        )


def _ids(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, str):
        try:
            return tuple(int(v) for v in value.replace(" ", "").split(",") if v)
        except ValueError:
            raise ConfigError(f"{where} must be comma-separated numbers, not {value!r}") from None
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{where} must be a list of numbers")
    return tuple(value)


def _channel(section: dict[str, Any], name: str, env_prefix: str, default_api_base: str) -> ChannelConfig:
    token = os.environ.get(f"{env_prefix}_BOT_TOKEN") or section.get("bot_token")
    ids_env = os.environ.get("ALLOWED_USER_IDS") if env_prefix == "TELEGRAM" else None
    ids = (
        _ids(ids_env, "ALLOWED_USER_IDS")
        if ids_env
        else _ids(section.get("allowed_user_ids"), f"{name}.allowed_user_ids")
    )
    api_base = section.get("api_base") or os.environ.get(f"{env_prefix}_API_BASE") or default_api_base
    return ChannelConfig(token or None, ids, str(api_base).rstrip("/"))


def _prefixes(webhook: dict[str, Any]) -> tuple[str, ...]:
    value = webhook.get("allowed_session_prefixes", list(WEBHOOK_SESSION_PREFIXES))
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise ConfigError(
            'webhook.allowed_session_prefixes must be a list of non-empty strings, e.g. ["webhook:"]'
        )
    return tuple(value)


def _manual_auth_token() -> str | None:
    path = manual_config_path()
    if not path.exists():
        return None
    auth = (read_json_object(path, what="model config").get("gateway") or {}).get("auth")
    if isinstance(auth, str):
        return auth or None
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return auth["token"] or None
    return None


def load_gateway_config() -> GatewayConfig:
    path, document = read_gateway_config() or (gateway_config_path(), {})
    agent = document.get("agent") or {}
    if not isinstance(agent, dict):
        raise ConfigError(f'"agent" in {path} must be an object')
    name = agent.get("name") or os.environ.get("AGENT_NAME") or "main"
    fallback = agent.get(
        "fallback", os.environ.get("USE_FALLBACK", "true").lower() not in ("0", "false", "no")
    )
    model = agent.get("model") or os.environ.get("MODEL")
    try:
        port = int(os.environ.get("HTTP_PORT", DEFAULT_PORT))
    except ValueError:
        raise ConfigError(f"HTTP_PORT must be a number, not {os.environ['HTTP_PORT']!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"HTTP_PORT {port} is not a port number")
    metrics = document.get("metrics") or {}
    interval = metrics.get("snapshot_interval_secs", 60)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ConfigError("metrics.snapshot_interval_secs must be a positive number")
    problem = agent_name_problem(str(name))
    if problem is not None:
        raise ConfigError(f"agent.name (or AGENT_NAME): {problem}")
    webhook = document.get("webhook") or {}
    if not isinstance(webhook, dict):
        raise ConfigError(f'"webhook" in {path} must be an object')
    body_timeout = webhook.get("body_timeout_s", WEBHOOK_BODY_TIMEOUT_S)
    if isinstance(body_timeout, bool) or not isinstance(body_timeout, int | float) or not body_timeout > 0:
        raise ConfigError("webhook.body_timeout_s must be a positive number of seconds")
    cron = document.get("cron") or {}
    if not isinstance(cron, dict):
        raise ConfigError(f'"cron" in {path} must be an object')
    return GatewayConfig(
        cron_lease_s=lease_seconds(cron),
        agent_name=str(name),
        use_fallback=bool(fallback),
        model=ModelRef.parse(model) if model else None,
        sandbox=sandbox_from(agent.get("sandbox") or {}),
        telegram=_channel(document.get("telegram") or {}, "telegram", "TELEGRAM", TELEGRAM_API_BASE),
        discord=_channel(document.get("discord") or {}, "discord", "DISCORD", DISCORD_API_BASE),
        webhook_token=webhook.get("token") or None,
        webhook_session_prefixes=_prefixes(webhook),
        webhook_body_timeout_s=float(body_timeout),
        api_token=_manual_auth_token(),
        bind=os.environ.get("HTTP_BIND", DEFAULT_BIND),
        port=port,
        snapshot_interval_s=float(interval),
    )
