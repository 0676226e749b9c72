"""Reading openclaw's JSON configuration files (their typed models: openclaw.config).

openclaw adds one section to the gateway's snake_case config file (`$GATEWAY_CONFIG`),
which openclaw-rs already reads and which ignores keys it does not know:

    {"database": {"url": "postgresql://openclaw:...@127.0.0.1:5432/openclaw"}}

`openclaw-manual.json` is shared with Node OpenClaw, which validates its keys strictly,
so openclaw writes nothing of its own there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from openclaw.errors import ConfigError
from openclaw.errors import InvalidConfigError as InvalidConfigError  # where it was defined before
from openclaw.home import gateway_config_is_explicit, gateway_config_path


def read_json_object(path: Path, *, what: str = "config file") -> dict[str, Any]:
    """Parse a JSON file whose top level must be an object, with a one-line error otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory, not a file: {path}") from None
    except PermissionError:
        raise ConfigError(f"cannot read {what} {path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        value = parse_json(text)
    except ValueError as exc:
        raise ConfigError(f"invalid JSON in {path}: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} {path} must hold a JSON object, not {type(value).__name__}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def parse_json(text: str) -> Any:
    """Strict JSON that PostgreSQL can store: no NaN or Infinity, no NUL characters, no
    nesting deep enough to overflow the parser. Raises ValueError with a one-line reason."""
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    # json.dumps writes a NUL as \\u0000: a cheap test that only runs when the text has one.
    if "\\u0000" in text and "\\u0000" in json.dumps(value):
        raise ValueError("contains a NUL character (\\u0000), which PostgreSQL cannot store")
    return value


def read_gateway_config() -> tuple[Path, dict[str, Any]] | None:
    """The gateway config file and its content; None when the default file is absent.

    A file that `$GATEWAY_CONFIG` names must exist: a typo there would otherwise run the
    gateway with no tokens and no database setting, silently."""
    path = gateway_config_path()
    try:
        if not path.exists():
            if gateway_config_is_explicit():
                raise ConfigError(f"GATEWAY_CONFIG names {path}, which does not exist")
            return None
    except OSError as exc:
        raise ConfigError(f"cannot read gateway config {path}: {exc.strerror or exc}") from None
    return path, read_json_object(path, what="gateway config")
