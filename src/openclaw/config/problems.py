"""A pydantic ValidationError as the one line a user reads: `gateway config: webhook must be
an object, got a string`. Values are not repeated for type errors (a token in the wrong
place must not reach a log), only their kind."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from openclaw.settings import InvalidConfigError

_MUST = {
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "missing": "is required",
}


def kind(value: Any) -> str:
    """What a JSON value is, in the words of the message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def path_of(loc: tuple[int | str, ...], *, prefix: str = "") -> str:
    """('telegram', 'allowed_user_ids', 2) -> telegram.allowed_user_ids[2]"""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _phrase(error: ErrorDetails) -> str:
    kind_of_error = error["type"]
    ctx = error.get("ctx") or {}
    if kind_of_error in _MUST:
        got = "" if kind_of_error == "missing" else f", got {kind(error['input'])}"
        return _MUST[kind_of_error] + got
    if kind_of_error == "greater_than":
        bound = ctx.get("gt")
        must = "must be a positive number" if bound == 0 else f"must be greater than {bound:g}"
        return f"{must}, got {error['input']}"
    if kind_of_error == "greater_than_equal":
        return f"must be at least {ctx.get('ge'):g}, got {error['input']}"
    if kind_of_error == "less_than_equal":
        return f"must be at most {ctx.get('le'):g}, got {error['input']}"
    if kind_of_error in ("string_too_short", "too_short"):
        return "must not be empty"
    if kind_of_error in ("value_error", "assertion_error"):
        message = str(ctx.get("error") or error["msg"])
        return message
    return error["msg"][:1].lower() + error["msg"][1:]


def one_line(
    exc: ValidationError, what: str, *, prefix: str = "", names: dict[str, str] | None = None
) -> str:
    """The first problem of `exc` (pydantic lists them in document order), named by its path."""
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    if names and loc and isinstance(loc[0], str) and loc[0] in names:
        loc = (names[loc[0]], *loc[1:])
    where = path_of(loc, prefix=prefix) or "the top level"
    return f"{what}: {where} {_phrase(error)}"


def invalid(
    exc: ValidationError, what: str, *, prefix: str = "", names: dict[str, str] | None = None
) -> InvalidConfigError:
    return InvalidConfigError(one_line(exc, what, prefix=prefix, names=names))
