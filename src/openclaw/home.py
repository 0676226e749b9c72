"""Where openclaw keeps its files: `$OPENCLAW_HOME`, default `~/.openclaw`."""

from __future__ import annotations

import os
from pathlib import Path


def openclaw_home() -> Path:
    """The home directory; every path openclaw owns lives below it."""
    configured = os.environ.get("OPENCLAW_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".openclaw"


def manual_config_path(home: Path | None = None) -> Path:
    """`openclaw-manual.json`: providers and models, shared with openclaw-rs and Node OpenClaw."""
    return (home or openclaw_home()) / "openclaw-manual.json"


DEFAULT_GATEWAY_CONFIG = Path("/etc/openclaw-gateway/config.json")


def gateway_config_path() -> Path:
    """The gateway's snake_case config file (`$GATEWAY_CONFIG`, as openclaw-rs reads it)."""
    return Path(os.environ.get("GATEWAY_CONFIG") or DEFAULT_GATEWAY_CONFIG)


def gateway_config_is_explicit() -> bool:
    """Whether `$GATEWAY_CONFIG` names the file: then it must exist (only the default may not)."""
    return bool(os.environ.get("GATEWAY_CONFIG"))


def pgdata_path(home: Path | None = None) -> Path:
    """Data directory of the embedded PostgreSQL server."""
    return (home or openclaw_home()) / "pgdata"
