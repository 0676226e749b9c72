"""Which PostgreSQL server openclaw talks to.

Resolution order: the `--database-url` option, then `DATABASE_URL`, then `database.url`
in the gateway config file, then the embedded server in `$OPENCLAW_HOME/pgdata`.
The environment and the file come from the command's typed settings when it loaded them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from openclaw.home import pgdata_path


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
    """The database of a command that loads no settings (context, db, mcp...): its
    `--database-url`, else DATABASE_URL, else the gateway config's database.url (the file
    read only then), else the embedded server. (The commands that load settings ask them:
    openclaw.app.Settings.database_target.)"""
    if option_url:
        return DatabaseTarget(TargetSource.OPTION, url=option_url)
    env_url = os.environ.get("DATABASE_URL", "").strip() or None
    return target_of(env_url=env_url, config_url=None if env_url else _config_database_url(), home=None)


def target_of(*, env_url: str | None, config_url: str | None, home: Path | None) -> DatabaseTarget:
    """DATABASE_URL, else the config file's database.url, else the embedded server of `home`."""
    if env_url:
        return DatabaseTarget(TargetSource.ENV, url=env_url)
    if config_url:
        return DatabaseTarget(TargetSource.CONFIG, url=config_url)
    return DatabaseTarget(TargetSource.EMBEDDED, pgdata=pgdata_path(home))


def _config_database_url() -> str | None:
    """`database.url` of the gateway config, the whole file checked (pydantic loads only
    here, for a command run without a URL)."""
    from openclaw.config.gateway_file import load_gateway_file

    return load_gateway_file().database.url


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
