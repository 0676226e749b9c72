"""Parameters that need no pydantic: `str` and `bool` values as the command line gives them.

Typer (0.29) coerces every parameter's value through a pydantic TypeAdapter, built on first
use, even a flag's or a missing option's; importing pydantic for it costs a short command
like `openclaw context get KEY` more CPU than all the rest of its work (DESIGN.md §8). For a
`str` or `bool` parameter whose value already has that type (the command line's strings and
flags), Typer's adapters return the value unchanged; `PlainParam` does the same without
them, and hands any other value (a default of another type, an environment variable) to
Typer's own coercion, so the results are Typer's.

This leans on Typer's internals (`typer._coercion`, `_TyperParameter._runtime_param`): the
app imports it inside `try`, and with a Typer whose internals differ, every parameter goes
through pydantic again (tests/test_cli_startup.py then fails, as a reminder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from typer import _click
from typer._coercion import RuntimeParam, build_runtime_param
from typer.core import _TyperParameter


@dataclass(frozen=True)
class PlainParam(RuntimeParam):
    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
        if type(value) is self.annotation:
            return value
        return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)


def _make_plain(param: _click.Parameter | None) -> None:
    if not isinstance(param, _TyperParameter) or getattr(param, "_runtime_param", True) is not None:
        return  # not Typer's, coerced already, or a Typer without this attribute: left to Typer
    described = param.type_descriptor
    if (
        described.annotation in (str, bool)
        and described.parameter_info.parser is None
        and described.file_annotation is None
        and param.nargs == 1
        and not param.multiple
    ):
        param._runtime_param = PlainParam(
            parameter_info=described.parameter_info, annotation=described.annotation
        )


def use_plain_params(command: _click.Command, ctx: _click.Context, *, subcommands: bool = True) -> None:
    """Give the plain `str` and `bool` parameters of `command` (and of its subcommands),
    --help included, `PlainParam`; `ctx` is the root's, whose help option names all share."""
    for param in command.params:
        _make_plain(param)
    if ctx.command is command or "help_option_names" not in command.context_settings:
        _make_plain(command.get_help_option(ctx))  # else it has names of its own: left as is
    if subcommands:
        for subcommand in getattr(command, "commands", {}).values():
            use_plain_params(subcommand, ctx)
