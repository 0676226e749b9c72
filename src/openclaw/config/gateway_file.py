"""The gateway's config file ($GATEWAY_CONFIG): snake_case, shared with openclaw-rs.

openclaw-rs ignores keys it does not know, and so do these models (`extra="ignore"`): a
section that only openclaw-rs reads, or a key a newer openclaw-rs adds, is no error here.
Types are strict: `"fallback": "false"` is a string, not false, and is refused.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from openclaw.config.problems import invalid
from openclaw.settings import read_gateway_config

PositiveNumber = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


NonBlankStr = Annotated[str, AfterValidator(_not_blank)]


class Section(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


def _none_if_blank(value: Any) -> Any:
    # "bot_token": "" means no token, as in openclaw-rs.
    return None if isinstance(value, str) and not value.strip() else value


def _comma_separated(value: Any) -> Any:
    """An allowlist may also be written "1, 2" (as ALLOWED_USER_IDS is)."""
    if not isinstance(value, str):
        return value
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise ValueError(f"must be comma-separated numbers, not {value!r}") from None


class ChannelSection(Section):
    """`telegram` / `discord`."""

    bot_token: Annotated[str | None, BeforeValidator(_none_if_blank)] = Field(default=None, repr=False)
    allowed_user_ids: Annotated[list[int] | None, BeforeValidator(_comma_separated)] = None
    api_base: Annotated[str | None, BeforeValidator(_none_if_blank)] = None


class SandboxSection(Section):
    """`agent.sandbox` (reference §2); missing keys keep openclaw-rs's defaults."""

    blocked_commands: list[str] = []
    max_exec_timeout_secs: PositiveNumber = 30.0
    turn_timeout_secs: PositiveNumber = 300.0
    max_concurrent: PositiveInt = 5
    rate_limit_messages: PositiveInt = 10
    rate_limit_window_secs: PositiveNumber = 60.0
    allow_exec_for_everyone: bool = False
    root: NonBlankStr | None = None


class AgentSection(Section):
    name: Annotated[str | None, BeforeValidator(_none_if_blank)] = None
    fallback: bool | None = None
    model: Annotated[str | None, BeforeValidator(_none_if_blank)] = None
    sandbox: SandboxSection = SandboxSection()


class WebhookSection(Section):
    token: Annotated[str | None, BeforeValidator(_none_if_blank)] = Field(default=None, repr=False)
    allowed_session_prefixes: Annotated[list[NonEmptyStr], Field(min_length=1)] = ["webhook:"]
    body_timeout_s: PositiveNumber = 10.0


class MetricsSection(Section):
    snapshot_interval_secs: PositiveNumber = 60.0


class LlmLogSection(Section):
    capacity: Annotated[int, Field(ge=1, le=1_000_000)] = 256


class CronSection(Section):
    lease_s: Annotated[float, Field(ge=3.0)] = 120.0  # openclaw.cron.lease.MIN_LEASE_S


class OutboxSection(Section):
    max_entries: Annotated[int, Field(ge=1, le=1_000_000_000)] = 1_000_000
    memory_entries: Annotated[int, Field(ge=1, le=1_000_000_000)] = 10_000


class DatabaseSection(Section):
    url: NonBlankStr | None = None


class SessionsSection(Section):
    backend: NonBlankStr | None = None


def _section(value: Any) -> Any:
    # `"webhook": null` is an absent section, as openclaw-rs reads it.
    return {} if value is None else value


class GatewayFile(Section):
    """Every section of the gateway config that openclaw reads."""

    telegram: Annotated[ChannelSection, BeforeValidator(_section)] = ChannelSection()
    discord: Annotated[ChannelSection, BeforeValidator(_section)] = ChannelSection()
    agent: Annotated[AgentSection, BeforeValidator(_section)] = AgentSection()
    webhook: Annotated[WebhookSection, BeforeValidator(_section)] = WebhookSection()
    metrics: Annotated[MetricsSection, BeforeValidator(_section)] = MetricsSection()
    llm_log: Annotated[LlmLogSection, BeforeValidator(_section)] = LlmLogSection()
    cron: Annotated[CronSection, BeforeValidator(_section)] = CronSection()
    outbox: Annotated[OutboxSection, BeforeValidator(_section)] = OutboxSection()
    database: Annotated[DatabaseSection, BeforeValidator(_section)] = DatabaseSection()
    sessions: Annotated[SessionsSection, BeforeValidator(_section)] = SessionsSection()


WHAT = "gateway config"


def parse_gateway_file(document: dict[str, Any]) -> GatewayFile:
    """Validate the gateway config's content; an InvalidConfigError names the first problem."""
    try:
        return GatewayFile.model_validate(document)
    except ValidationError as exc:
        raise invalid(exc, WHAT) from None


def load_gateway_file() -> GatewayFile:
    """The gateway config file ($GATEWAY_CONFIG), checked; the defaults when the default file
    is absent. Light on purpose (pydantic, no runtime modules): `openclaw db` and `mcp
    serve` read database.url through it."""
    found = read_gateway_config()
    return parse_gateway_file(found[1] if found is not None else {})


def parse_sandbox(section: dict[str, Any]) -> SandboxSection:
    """`agent.sandbox` alone (openclaw.agent.tools.sandbox_from)."""
    try:
        return SandboxSection.model_validate(section)
    except ValidationError as exc:
        raise invalid(exc, WHAT, prefix="agent.sandbox") from None
