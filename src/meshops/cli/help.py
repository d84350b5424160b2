"""How `meshops ... --help` reads: flags as flags, values as click-style metavars, usage
lines in capitals, and descriptions that are whole sentences.

This Typer renders every parameter's Python type (`--json <bool>` as if the flag took a
value, `<str>`) and wraps a required argument in braces in the usage line (`{folder}`);
in its "rich" markup mode a docstring's single line breaks stay breaks, so a listing cut
descriptions mid-sentence. `polish` swaps the classes of a built command tree for the
subclasses below (the parameters' classes when the command hands them out), which render
`--json`, `--port INTEGER`, `RUN_ID`, `[ALIAS]` and reflowed text instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    from typer import _click as click

TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN"}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")


def metavar(type_label: str | None) -> str | None:
    """`<int>` -> INTEGER, `<list[str]>` -> TEXT, `<text|json>` -> [text|json]."""
    if not type_label:
        return None
    label = type_label.strip("<>")
    if label.startswith("list[") and label.endswith("]"):
        label = label[len("list[") : -1]
    if "|" in label:
        return f"[{label}]"
    return TYPE_NAMES.get(label, label.upper())


class PolishedOption(TyperOption):
    def display_type_rich(self, ctx: click.Context) -> str | None:
        if self.is_flag or self.count:
            return None  # a flag takes no value
        if self.metavar is not None:
            return self.metavar
        return metavar(self.display_type(ctx))


class PolishedArgument(TyperArgument):
    def _rich_display_name(self) -> str:
        name = (self.metavar or self.name or "").upper()
        return name if self.nargs == 1 else f"{name}..."

    def _usage_display_name(self) -> str:
        name = (self.metavar or self.name or "").upper()
        name = name if self.required else f"[{name}]"
        return name if self.nargs == 1 else f"{name}..."

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return metavar(self.display_type(ctx))


def _polished(params: list[Any]) -> list[Any]:
    """`params` (the help option too) as the polished classes."""
    for param in params:
        if isinstance(param, TyperOption) and not isinstance(param, PolishedOption):
            param.__class__ = PolishedOption
        elif isinstance(param, TyperArgument) and not isinstance(param, PolishedArgument):
            param.__class__ = PolishedArgument
    return params


class PolishedCommand(TyperCommand):
    def get_params(self, ctx: click.Context) -> list[Any]:
        return _polished(super().get_params(ctx))


class PolishedGroup(TyperGroup):
    def get_params(self, ctx: click.Context) -> list[Any]:
        return _polished(super().get_params(ctx))


def reflow(text: str | None) -> str | None:
    """`text` with each paragraph on one line (list items and indented lines kept apart):
    docstrings are wrapped at 92 characters for the source, not for the terminal."""
    if not text:
        return text
    paragraphs = []
    for paragraph in text.strip().split("\n\n"):
        lines = [line.rstrip() for line in paragraph.splitlines()]
        if paragraph.startswith("\b"):
            paragraphs.append(paragraph)
            continue
        merged: list[str] = []
        for line in lines:
            keep_apart = line.lstrip().startswith(("- ", "* ")) or line.startswith("    ")
            if merged and not keep_apart:
                merged[-1] = f"{merged[-1]} {line.strip()}"
            else:
                merged.append(line if keep_apart else line.strip())
        paragraphs.append("\n".join(merged))
    return "\n\n".join(paragraphs)


def summary(text: str | None) -> str | None:
    """The first sentence of `text`'s first paragraph, whole: a command's line in a listing."""
    flowed = reflow(text)
    if not flowed:
        return flowed
    first = flowed.split("\n\n", 1)[0].split("\n", 1)[0]
    return SENTENCE_END.split(first, maxsplit=1)[0]


def polish(command: click.Command) -> click.Command:
    """`command` (and its sub-commands) rendered as the module docstring says."""
    if isinstance(command, TyperGroup):
        if not isinstance(command, PolishedGroup):
            command.__class__ = type(
                f"Polished{type(command).__name__}", (PolishedGroup, type(command)), {}
            )
        for sub in command.commands.values():
            polish(sub)
    elif isinstance(command, TyperCommand) and not isinstance(command, PolishedCommand):
        command.__class__ = PolishedCommand
    command.help = reflow(command.help)
    command.short_help = command.short_help or summary(command.help)
    return command
