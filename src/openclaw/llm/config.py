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


def _section(value: Any, where: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} in {path} must be an object")
    return value


def parse_llm_config(document: dict[str, Any], path: Path) -> LlmConfig:
    models = _section(document.get("models"), "models", path)
    providers: dict[str, ProviderConfig] = {}
    for name, raw in _section(models.get("providers"), "models.providers", path).items():
        entry = _section(raw, f"models.providers.{name}", path)
        base_url = entry.get("baseUrl")
        if base_url is not None and not isinstance(base_url, str):
            raise ConfigError(f"provider {name!r} in {path}: baseUrl must be a string, not {base_url!r}")
        if not base_url or not base_url.strip():
            raise ConfigError(f"provider {name!r} in {path} has no baseUrl")
        api_name = str(entry.get("api") or "").strip().lower()
        if name == "anthropic" or api_name in ("anthropic", "anthropic-messages"):
            api = Api.ANTHROPIC
        elif api_name in _OPENAI_LIKE:
            api = Api.OPENAI
        else:
            raise ConfigError(f"provider {name!r} in {path}: unknown api {entry.get('api')!r}")
        key = entry.get("apiKey")
        if key is not None and not isinstance(key, str):
            raise ConfigError(f"provider {name!r} in {path}: apiKey must be a string")
        infos = []
        for item in entry.get("models") or []:
            if isinstance(item, str):
                item = {"id": item}
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise ConfigError(f'provider {name!r} in {path}: each model needs an "id"')
            window = item.get("contextWindow")
            infos.append(
                ModelInfo(
                    item["id"],
                    item.get("name"),
                    bool(item.get("reasoning")),
                    window if isinstance(window, int) else None,
                )
            )
        providers[name] = ProviderConfig(name, base_url.strip().rstrip("/"), api, key or None, tuple(infos))
    raw_fallbacks = models.get("fallbacks") or []
    if not isinstance(raw_fallbacks, list) or not all(isinstance(f, str) for f in raw_fallbacks):
        raise ConfigError(f'models.fallbacks in {path} must be a list of "provider/model" strings')
    fallbacks = tuple(ModelRef.parse(f) for f in raw_fallbacks)
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
    defaults = _section(
        _section(document.get("agents"), "agents", path).get("defaults"), "agents.defaults", path
    )
    timeout = defaults.get("timeoutSeconds", 300)
    concurrent = defaults.get("maxConcurrent", 5)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"agents.defaults.timeoutSeconds in {path} must be a positive number")
    if not isinstance(concurrent, int) or concurrent <= 0:
        raise ConfigError(f"agents.defaults.maxConcurrent in {path} must be a positive whole number")
    return LlmConfig(providers, fallbacks, float(timeout), concurrent, path)


def load_llm_config(path: Path | None = None) -> LlmConfig:
    """Read and check `openclaw-manual.json`; a ConfigError names what is wrong."""
    path = path or manual_config_path()
    config = parse_llm_config(read_json_object(path, what="model config"), path)
    if not config.providers:
        raise ConfigError(f"no providers in {path}: add models.providers (see the README)")
    return config
