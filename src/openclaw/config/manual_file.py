"""`openclaw-manual.json`: the file Node OpenClaw and openclaw-rs read, camelCase.

Node OpenClaw validates its keys strictly and owns the file: openclaw only reads it, the
sections below, and ignores everything else in it.

    {"models": {"providers": {"moonshot": {"baseUrl": "...", "api": "openai-completions",
                                           "apiKey": "sk-...", "models": [{"id": "kimi-k2"}]}},
                "fallbacks": ["moonshot/kimi-k2"]},
     "agents": {"defaults": {"timeoutSeconds": 300, "maxConcurrent": 5}},
     "gateway": {"auth": {"mode": "token", "token": "..."}}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from openclaw.config.problems import invalid, kind


class ManualSection(BaseModel):
    model_config = ConfigDict(
        extra="ignore", strict=True, frozen=True, alias_generator=to_camel, populate_by_name=True
    )


def _section(value: Any) -> Any:
    return {} if value is None else value


def _model_entry(value: Any) -> Any:
    # A model may be listed by its id alone: "models": ["kimi-k2"].
    return {"id": value} if isinstance(value, str) else value


def _auth_token(value: Any) -> Any:
    """`gateway.auth`: a token, or {"mode": "token", "token": "..."} (another mode: none)."""
    if isinstance(value, dict):
        token = value.get("token")
        return token if isinstance(token, str) else None
    if value is None or isinstance(value, str):
        return value or None
    raise ValueError(f"must be a token or an object with a token, got {kind(value)}")


class ModelEntry(ManualSection):
    id: str
    name: str | None = None
    reasoning: bool = False
    context_window: int | None = None


class ProviderSection(ManualSection):
    base_url: str | None = None
    api: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    models: list[Annotated[ModelEntry, BeforeValidator(_model_entry)]] = []


class ModelsSection(ManualSection):
    providers: Annotated[
        dict[str, Annotated[ProviderSection, BeforeValidator(_section)]], BeforeValidator(_section)
    ] = {}
    fallbacks: list[str] = []


class AgentDefaults(ManualSection):
    timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    max_concurrent: Annotated[int, Field(gt=0)] = 5


class AgentsSection(ManualSection):
    defaults: Annotated[AgentDefaults, BeforeValidator(_section)] = AgentDefaults()


class GatewaySection(ManualSection):
    auth: Annotated[str | None, BeforeValidator(_auth_token)] = Field(default=None, repr=False)


class ManualFile(ManualSection):
    models: Annotated[ModelsSection, BeforeValidator(_section)] = ModelsSection()
    agents: Annotated[AgentsSection, BeforeValidator(_section)] = AgentsSection()
    gateway: Annotated[GatewaySection, BeforeValidator(_section)] = GatewaySection()


def parse_manual_file(document: dict[str, Any], path: Path) -> ManualFile:
    """Validate openclaw-manual.json's content; an InvalidConfigError names the first problem."""
    try:
        return ManualFile.model_validate(document)
    except ValidationError as exc:
        raise invalid(exc, path.name) from None
