"""`load_settings()`: both config files and the environment, read and checked once, at the
edge (the CLI command that runs), and passed down from there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from openclaw.config.env import EnvSettings, read_env
from openclaw.config.gateway_file import load_gateway_file
from openclaw.config.manual_file import parse_manual_file
from openclaw.errors import ConfigError
from openclaw.gateway.config import GatewayConfig, gateway_config_from
from openclaw.home import manual_config_path, openclaw_home
from openclaw.llm.config import LlmConfig, llm_config_from
from openclaw.settings import read_json_object


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything openclaw's runtime is configured by, resolved (the env applied)."""

    home: Path
    gateway: GatewayConfig
    llm: LlmConfig
    config_database_url: str | None = field(default=None, repr=False)  # database.url of the file
    env_database_url: str | None = field(default=None, repr=False)  # DATABASE_URL
    sessions_backend: str | None = None  # OPENCLAW_SESSIONS_BACKEND, else sessions.backend
    outbox_limits: Mapping[str, int] = field(default_factory=dict)
    llm_log_capacity: int = 256


def load_models(path: Path, *, require_models: bool) -> tuple[LlmConfig, str | None]:
    """openclaw-manual.json: the LLM config and gateway.auth's token. Without
    `require_models` (the gateway), a missing file or a file without usable providers gives
    an unusable config that says why; a wrong type is an error either way."""
    if not path.exists() and not require_models:
        return LlmConfig.unusable(f"model config not found: {path}"), None
    manual = parse_manual_file(read_json_object(path, what="model config"), path)
    token = manual.gateway.auth
    try:
        config = llm_config_from(manual, path)
        if not config.providers:
            raise ConfigError(f"no providers in {path}: add models.providers (see the README)")
    except ConfigError as exc:
        if require_models:
            raise
        return LlmConfig.unusable(str(exc)), token
    return config, token


def load_settings(
    *, require_models: bool = False, read_models: bool = True, manual_path: Path | None = None
) -> Settings:
    """Read the gateway config, openclaw-manual.json (unless not `read_models`) and the
    environment. Raises ConfigError (InvalidConfigError, exit code 2, for a wrong value)
    before anything is started or written."""
    home = openclaw_home()
    file = load_gateway_file()
    env: EnvSettings = read_env()
    if read_models:
        llm, api_token = load_models(manual_path or manual_config_path(home), require_models=require_models)
    else:
        llm, api_token = LlmConfig.unusable("openclaw-manual.json not read"), None
    return Settings(
        home=home,
        gateway=gateway_config_from(file, env, api_token=api_token),
        llm=llm,
        config_database_url=file.database.url,
        env_database_url=(env.database_url or "").strip() or None,
        sessions_backend=env.openclaw_sessions_backend or file.sessions.backend,
        outbox_limits={"max_entries": file.outbox.max_entries, "memory_entries": file.outbox.memory_entries},
        llm_log_capacity=file.llm_log.capacity,
    )
