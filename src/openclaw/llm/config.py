"""Providers and models from `openclaw-manual.json` (the openclaw-rs / Node OpenClaw format).

    {"models": {"providers": {"moonshot": {"baseUrl": "https://api.moonshot.ai/v1",
                                           "api": "openai-completions", "apiKey": "sk-...",
                                           "models": [{"id": "kimi-k2", "reasoning": true}]}},
                "fallbacks": ["moonshot/kimi-k2", "openrouter/anthropic/claude-sonnet-4"]},
     "agents": {"defaults": {"timeoutSeconds": 300, "maxConcurrent": 5}}}

A provider named `anthropic` (or with `"api": "anthropic-messages"`) speaks the Anthropic
Messages API; every other one is OpenAI-compatible (OpenAI, OpenRouter, Ollama's /v1,
vLLM, Moonshot...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from openclaw.config.manual_file import ManualFile, parse_manual_file
from openclaw.errors import ConfigError
from openclaw.home import manual_config_path
from openclaw.settings import read_json_object


class Api(StrEnum):
    OPENAI = "openai-completions"
    ANTHROPIC = "anthropic-messages"


_OPENAI_LIKE = {"openai-completions", "openai", "ollama", "openai-responses", "vllm", ""}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    name: str | None = None
    reasoning: bool = False
    context_window: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    base_url: str
    api: Api
    api_key: str | None = field(default=None, repr=False)
    models: tuple[ModelInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelRef:
    """`provider/model`; a model id may itself contain '/' (openrouter/anthropic/claude...)."""

    provider: str
    model: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        provider, sep, model = text.strip().partition("/")
        if not sep or not provider or not model:
            raise ConfigError(f"model {text!r} is not of the form provider/model")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class LlmConfig:
    providers: dict[str, ProviderConfig]
    fallbacks: tuple[ModelRef, ...]
    timeout_s: float = 300.0
    # agents.defaults.maxConcurrent: how many LLM calls this process has in flight at once
    # (openclaw.llm.router.Router waits for a free slot); a turn's tool rounds take one each.
    max_concurrent: int = 5
    path: Path | None = None
    problem: str | None = None  # why there are no providers, for a gateway that runs without

    @classmethod
    def unusable(cls, problem: str) -> LlmConfig:
        """No models: the gateway still serves, and every turn says why it cannot answer."""
        return cls({}, (), problem=problem)

    @property
    def default_model(self) -> ModelRef | None:
        return self.fallbacks[0] if self.fallbacks else None

    def chain(self, preferred: ModelRef | None = None) -> tuple[ModelRef, ...]:
        """The models to try, in order: the preferred one first, then the fallbacks."""
        if preferred is None:
            return self.fallbacks
        return (preferred, *(m for m in self.fallbacks if m != preferred))

    def known_models(self) -> list[str]:
        """`provider/model` for every listed model; `provider/*` for a provider that lists none."""
        return [f"{p.name}/{m.id}" for p in self.providers.values() for m in p.models] + [
            f"{p.name}/*" for p in self.providers.values() if not p.models
        ]

    def unknown_model(self, ref: ModelRef) -> str | None:
        """Why `ref` names no configured model, or None if it does (a provider that lists no
        models takes any id, as openclaw-rs does)."""
        provider = self.providers.get(ref.provider)
        known = ", ".join(self.known_models()) or "none configured"
        if provider is None:
            return f"unknown provider {ref.provider!r} in {ref} (known models: {known})"
        if provider.models and ref.model not in {m.id for m in provider.models}:
            return f"provider {ref.provider!r} has no model {ref.model!r} (known models: {known})"
        return None

    def provider_of(self, ref: ModelRef) -> ProviderConfig:
        try:
            return self.providers[ref.provider]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none configured"
            raise ConfigError(f"unknown provider {ref.provider!r} in {ref} (providers: {known})") from None


def parse_llm_config(document: dict[str, Any], path: Path) -> LlmConfig:
    """The providers, models and limits of openclaw-manual.json's content: the types are
    checked by the model tree (openclaw.config.manual_file), the meaning here."""
    return llm_config_from(parse_manual_file(document, path), path)


def llm_config_from(manual: ManualFile, path: Path) -> LlmConfig:
    providers: dict[str, ProviderConfig] = {}
    for name, entry in manual.models.providers.items():
        base_url = entry.base_url
        if not base_url or not base_url.strip():
            raise ConfigError(f"provider {name!r} in {path} has no baseUrl")
        api_name = (entry.api or "").strip().lower()
        if name == "anthropic" or api_name in ("anthropic", "anthropic-messages"):
            api = Api.ANTHROPIC
        elif api_name in _OPENAI_LIKE:
            api = Api.OPENAI
        else:
            raise ConfigError(f"provider {name!r} in {path}: unknown api {entry.api!r}")
        infos = tuple(ModelInfo(m.id, m.name, m.reasoning, m.context_window) for m in entry.models)
        providers[name] = ProviderConfig(
            name, base_url.strip().rstrip("/"), api, entry.api_key or None, infos
        )
    fallbacks = tuple(ModelRef.parse(f) for f in manual.models.fallbacks)
    for ref in fallbacks:
        provider = providers.get(ref.provider)
        if provider is None:
            raise ConfigError(
                f"models.fallbacks in {path} names {ref}, but there is no provider {ref.provider!r}"
            )
        if provider.models and ref.model not in {m.id for m in provider.models}:
            raise ConfigError(
                f"models.fallbacks in {path} names {ref}, which provider {ref.provider!r} does not list"
            )
    defaults = manual.agents.defaults
    return LlmConfig(providers, fallbacks, defaults.timeout_seconds, defaults.max_concurrent, path)


def load_llm_config(path: Path | None = None) -> LlmConfig:
    """Read and check `openclaw-manual.json`; a ConfigError names what is wrong."""
    path = path or manual_config_path()
    config = parse_llm_config(read_json_object(path, what="model config"), path)
    if not config.providers:
        raise ConfigError(f"no providers in {path}: add models.providers (see the README)")
    return config
