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
override the file, TELEGRAM_API_BASE and DISCORD_API_BASE apply where it has none; where the
file does not set them AGENT_NAME (main), USE_FALLBACK (true) and MODEL apply; HTTP_BIND
(127.0.0.1) and HTTP_PORT (3100) say where the API listens.

The file is checked by openclaw.config.gateway_file, the environment by openclaw.config.env;
`gateway_config_from` resolves the two into the frozen `GatewayConfig` the gateway holds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from openclaw.agent.tools import SandboxSettings, sandbox_settings
from openclaw.cron.lease import DEFAULT_LEASE_S
from openclaw.errors import ConfigError
from openclaw.llm.config import ModelRef
from openclaw.sessions.keys import MAX_SESSION_KEY_CHARS, agent_name_problem, session_key_problem
from openclaw.settings import InvalidConfigError

if TYPE_CHECKING:
    from openclaw.config.env import EnvSettings
    from openclaw.config.gateway_file import ChannelSection, GatewayFile

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


def _ids(value: str, where: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError:
        raise InvalidConfigError(f"{where} must be comma-separated numbers, not {value!r}") from None


def _channel(
    section: ChannelSection,
    token_env: str | None,
    ids_env: str | None,
    api_base_env: str | None,
    default: str,
) -> ChannelConfig:
    ids = _ids(ids_env, "environment: ALLOWED_USER_IDS") if ids_env else tuple(section.allowed_user_ids or ())
    api_base = section.api_base or api_base_env or default
    return ChannelConfig(token_env or section.bot_token or None, ids, api_base.rstrip("/"))


def gateway_config_from(
    file: GatewayFile, env: EnvSettings, *, api_token: str | None = None
) -> GatewayConfig:
    """The gateway's settings from its checked config file and the environment (which
    applies where the module docstring says); `api_token` is gateway.auth of
    openclaw-manual.json."""
    agent = file.agent
    name = agent.name or env.agent_name or "main"
    problem = agent_name_problem(name)
    if problem is not None:
        raise InvalidConfigError(f"gateway config: agent.name (or AGENT_NAME): {problem}")
    fallback = agent.fallback if agent.fallback is not None else env.use_fallback
    model = agent.model or env.model
    try:
        preferred = ModelRef.parse(model) if model else None
    except ConfigError as exc:
        raise InvalidConfigError(f"gateway config: agent.model (or MODEL): {exc}") from None
    return GatewayConfig(
        cron_lease_s=file.cron.lease_s,
        agent_name=name,
        use_fallback=True if fallback is None else fallback,
        model=preferred,
        sandbox=sandbox_settings(agent.sandbox),
        telegram=_channel(
            file.telegram,
            env.telegram_bot_token,
            env.allowed_user_ids,
            env.telegram_api_base,
            TELEGRAM_API_BASE,
        ),
        discord=_channel(file.discord, env.discord_bot_token, None, env.discord_api_base, DISCORD_API_BASE),
        webhook_token=file.webhook.token,
        webhook_session_prefixes=tuple(file.webhook.allowed_session_prefixes),
        webhook_body_timeout_s=file.webhook.body_timeout_s,
        api_token=api_token,
        bind=env.http_bind,
        port=env.http_port,
        snapshot_interval_s=file.metrics.snapshot_interval_secs,
    )
