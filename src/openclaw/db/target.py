"""Which PostgreSQL server openclaw talks to.

Resolution order: the `--database-url` option, then `DATABASE_URL`, then `database.url`
in the gateway config file, then the embedded server in `$OPENCLAW_HOME/pgdata`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from openclaw.home import pgdata_path
from openclaw.settings import configured_database_url


class TargetSource(StrEnum):
    OPTION = "option"
    ENV = "env"
    CONFIG = "config"
    EMBEDDED = "embedded"


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """Where the database is. `url` is None for an embedded server not started yet."""

    source: TargetSource
    url: str | None = None
    pgdata: Path | None = None

    @property
    def is_embedded(self) -> bool:
        return self.source is TargetSource.EMBEDDED

    def describe(self) -> str:
        """A human description with the password hidden."""
        if self.is_embedded:
            return f"embedded server in {self.pgdata}"
        assert self.url is not None
        origin = {
            TargetSource.OPTION: "--database-url",
            TargetSource.ENV: "DATABASE_URL",
            TargetSource.CONFIG: "gateway config",
        }[self.source]
        return f"{redact_url(self.url)} (from {origin})"


def resolve_target(option_url: str | None = None) -> DatabaseTarget:
    if option_url:
        return DatabaseTarget(TargetSource.OPTION, url=option_url)
    env_url = os.environ.get("DATABASE_URL", "").strip()
    if env_url:
        return DatabaseTarget(TargetSource.ENV, url=env_url)
    config_url = configured_database_url()
    if config_url:
        return DatabaseTarget(TargetSource.CONFIG, url=config_url)
    return DatabaseTarget(TargetSource.EMBEDDED, pgdata=pgdata_path())


_KEYWORD_PASSWORD = re.compile(r"((?:^|\s)(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)([^&]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Hide the passwords of a `postgresql://` URL (user info and query) or of a `key=value`
    conninfo string."""
    if "://" not in url:
        return _KEYWORD_PASSWORD.sub(r"\1***", url)
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{hostinfo}")
    return _QUERY_PASSWORD.sub(r"\1***", urlunsplit(parts))
