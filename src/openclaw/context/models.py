"""Rows of the developer-context tables, and the values their enumerated columns allow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from openclaw.errors import UsageError


class Severity(StrEnum):
    """Declared in order, as the database enum is: low < medium < high < critical."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class IssueStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    WONTFIX = "wontfix"


class Component(StrEnum):
    GATEWAY = "gateway"
    AGENT = "agent"
    CLI = "cli"
    CORE = "core"
    INFRA = "infra"


class TaskCategory(StrEnum):
    FEATURE = "feature"
    BUGFIX = "bugfix"
    REFACTOR = "refactor"
    DEPLOY = "deploy"
    CONFIG = "config"


class ChangeSource(StrEnum):
    MANUAL = "manual"
    WATCHDOG = "watchdog"
    WINDSURF = "windsurf"
    CLI = "cli"
    GATEWAY = "gateway"


class DeploymentStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"
    FAILED = "failed"
    SUPERSEDED = "superseded"


E = TypeVar("E", bound=StrEnum)


def parse_choice(kind: type[E], value: str | E, what: str) -> E:
    """`value` as a member of `kind`, or a UsageError that lists the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise UsageError(f"unknown {what} {value!r} (expected one of: {allowed})") from None


@dataclass(slots=True)
class Deployment:
    id: int
    host: str
    component: str
    version: str
    binary_path: str | None
    service_name: str | None
    git_commit: str | None
    pid: int | None
    built_at: datetime | None
    deployed_at: datetime
    status: str
    superseded_by: int | None
    superseded_at: datetime | None
    notes: str | None


@dataclass(slots=True)
class ConfigSnapshot:
    id: int
    host: str | None
    config_path: str
    config_json: dict[str, Any]
    changed_keys: list[str] | None
    change_source: str | None
    snapshot_at: datetime


@dataclass(slots=True)
class KnownIssue:
    id: int
    title: str
    description: str | None
    severity: str
    status: str
    component: str | None
    workaround: str | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(slots=True)
class Task:
    id: int
    description: str
    category: str | None
    files_changed: list[str] | None
    version: str | None
    git_commit: str | None
    completed_at: datetime


@dataclass(slots=True)
class ContextEntry:
    key: str
    value: Any
    updated_at: datetime
