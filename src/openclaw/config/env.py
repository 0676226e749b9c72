"""The environment variables that override the config files (pydantic-settings).

The file wins where the README says so (agent.name, agent.fallback, agent.model and the
channels' api_base); the environment wins for the bot tokens, the Telegram allowlist and
the sessions backend. OPENCLAW_HOME and GATEWAY_CONFIG say where the files are, so
openclaw.home reads them (light commands need them without pydantic).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from openclaw.config.problems import invalid


class EnvSettings(BaseSettings):
    # Empty variables count as unset, as `os.environ.get(...) or default` read them.
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, frozen=True)

    telegram_bot_token: str | None = Field(default=None, repr=False)
    discord_bot_token: str | None = Field(default=None, repr=False)
    allowed_user_ids: str | None = None  # comma-separated: Telegram's allowlist
    telegram_api_base: str | None = None
    discord_api_base: str | None = None
    agent_name: str | None = None
    use_fallback: bool | None = None  # true/false, 1/0, yes/no, on/off
    model: str | None = None
    http_bind: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 3100
    database_url: str | None = Field(default=None, repr=False)
    openclaw_sessions_backend: str | None = None


def read_env() -> EnvSettings:
    """The environment, read once; a bad value is one line naming the variable."""
    try:
        return EnvSettings()
    except ValidationError as exc:
        names = {name: name.upper() for name in EnvSettings.model_fields}
        raise invalid(exc, "environment", names=names) from None
