"""`openclaw --help`, drawn as Typer draws every other help page, with rich's core only.

Typer's help module loads Markdown, tracebacks and syntax highlighting (pygments) for any
page; that alone costs more CPU than `import typer, psycopg`, the yardstick of a small
tool's start-up (DESIGN.md §8). The root page needs none of it: two plain paragraphs, a few
options and the commands with their short help. This module draws the same panels with the
same styles; tests/test_cli_startup.py checks that it prints the text Typer would. Every
other page (`openclaw db --help`...) is Typer's own.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence

from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.highlighter import RegexHighlighter
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.theme import Theme
from typer import _click
from typer.core import TyperOption

# typer.rich_utils' styles, for what the root page shows.
_THEME = Theme(
    {
        "option": "bold cyan",
        "switch": "bold green",
        "negative_option": "bold magenta",
        "negative_switch": "bold red",
        "types": "bold yellow",
        "types_sep": "dim",
        "usage": "yellow",
    }
)


class _OptionHighlighter(RegexHighlighter):
    highlights = [  # noqa: RUF012 (rich declares them so)
        r"(^|\W)(?P<switch>\-\w+)(?![a-zA-Z0-9])",
        r"(^|\W)(?P<option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
        r"(?P<types>\<[^\>]+\>)",
        r"(?P<usage>Usage: )",
    ]


class _NegativeOptionHighlighter(RegexHighlighter):
    highlights = [  # noqa: RUF012
        r"(^|\W)(?P<negative_switch>\-\w+)(?![a-zA-Z0-9])",
        r"(^|\W)(?P<negative_option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
    ]


class _TypesHighlighter(RegexHighlighter):
    highlights = [  # noqa: RUF012
        r"^(?P<types_sep>(\[|<))",
        r"(?P<types_sep>\|)",
        r"(?P<types_sep>(\]|>))(\.\.\.)?$",
    ]


_highlight = _OptionHighlighter()
_highlight_negative = _NegativeOptionHighlighter()
_highlight_types = _TypesHighlighter()


def _console() -> Console:
    """Typer's console: TERMINAL_WIDTH, FORCE_COLOR and the like mean the same here."""
    env = os.environ.get
    force: bool | None = True if env("GITHUB_ACTIONS") or env("FORCE_COLOR") or env("PY_COLORS") else None
    if env("_TYPER_FORCE_DISABLE_TERMINAL"):
        force = False
    width = env("TERMINAL_WIDTH")
    return Console(
        theme=_THEME,
        highlighter=_highlight,
        color_system="auto",
        force_terminal=force,
        width=int(width) if width else None,
    )


def _table(*, highlight: bool) -> Table:
    return Table(
        highlight=highlight,
        show_header=False,
        expand=True,
        box=None,
        show_lines=False,
        leading=0,
        border_style=None,
        row_styles=None,
        pad_edge=False,
        padding=(0, 1),
    )


def _panel(table: Table, title: str) -> Panel:
    return Panel(table, border_style="dim", title=title, title_align="left")


def _first_paragraph(help_text: str) -> str:
    return inspect.cleandoc(help_text).split("\n\n")[0].replace("\n", " ").strip()


def _options_panel(group: _click.Command, ctx: _click.Context) -> Panel | None:
    table = _table(highlight=True)
    for param in group.get_params(ctx):
        if not isinstance(param, TyperOption) or param.hidden:
            continue
        long = [opt for opt in param.opts if "--" in opt]
        short = [opt for opt in param.opts if "--" not in opt]
        negative_long = [opt for opt in param.secondary_opts if "--" in opt]
        negative_short = [opt for opt in param.secondary_opts if "--" not in opt]
        types = Text(style="bold yellow", overflow="fold")
        types.append(param.display_type_rich(ctx) or "")
        help_items: list[RenderableType] = [Text(param.help.strip())] if param.help else []
        if param.required:
            help_items.append(Text("[required]", style="dim red"))
        table.add_row(
            _highlight(",".join(long)),
            _highlight(",".join(short)),
            _highlight_negative(",".join(negative_long)),
            _highlight_negative(",".join(negative_short)),
            _highlight_types(types),
            Columns(help_items),
        )
    return _panel(table, "Options") if table.row_count else None


def _commands_panel(commands: Sequence[_click.Command]) -> Panel | None:
    table = _table(highlight=False)
    table.add_column(
        style="bold cyan", no_wrap=True, width=max((len(c.name or "") for c in commands), default=0)
    )
    table.add_column("Description", justify="left", no_wrap=False, ratio=10)
    for command in commands:
        table.add_row(
            Text(command.name or ""), Text(_first_paragraph(command.short_help or command.help or ""))
        )
    return _panel(table, "Commands") if table.row_count else None


def print_root_help(group: _click.Command, ctx: _click.Context, commands: Sequence[_click.Command]) -> None:
    """Print the help of `group` (the root) listing `commands`, as Typer's markdown mode would."""
    console = _console()
    console.print(Padding(_highlight(group.get_usage(ctx)), 1), style="bold")
    if group.help:
        first, *rest = inspect.cleandoc(group.help).partition("\f")[0].split("\n\n")
        parts: list[RenderableType] = [Text(first.replace("\n", " ").strip())]
        if rest:
            parts += [Text(""), Text("\n\n".join(rest), style="dim")]
        console.print(Padding(Group(*parts), (0, 1, 1, 1)))
    for panel in (_options_panel(group, ctx), _commands_panel(commands)):
        if panel is not None:
            console.print(panel)
