"""How commands print: Rich tables for people, `--json` for scripts.

Tables are designed for 80 columns and up: no cell is ever cut (long ids and URNs fold onto
the next line instead of ending in "…"), numbers are right-aligned with a few significant
digits, and ids are printed in a short form (`short_id`) that every command taking the id
accepts as a unique prefix. Commands choose the columns that matter; `--wide` shows more and
`--columns a,b,c` picks them (`choose_columns`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

console = Console()
err_console = Console(stderr=True)

JSON_HELP = "Print JSON instead of a table."
SHORT_ID = 12  # characters of an id in tables: unique in practice, and accepted as a prefix
SIGNIFICANT = 4  # digits of a number in tables

WideOpt = Annotated[bool, typer.Option("--wide", "-w", help="Show every column.")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Comma-separated columns to show, in this order (see --wide for their names).",
    ),
]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "to_json"):
        return value.to_json()
    return str(value)


def progress_bar(*columns: ProgressColumn, json_out: bool = False) -> Progress:
    """A Rich progress bar on stderr that leaves nothing behind once done; off with --json
    and when stderr is not a terminal (a log or a pipe gets the outcome, not frames)."""
    from rich.progress import Progress

    return Progress(
        *columns,
        console=err_console,
        transient=True,
        disable=json_out or not err_console.is_terminal,
    )


def print_json(data: Any) -> None:
    print(json.dumps(data, default=_default, indent=2))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table whose cells are never cut: text wraps at spaces, long words (URNs) fold;
    numbers are right-aligned; short atoms (ids, statuses, names, times) stay on one line
    where the terminal allows (`_widths`)."""
    cells = [[row[i] if i < len(row) else None for row in rows] for i in range(len(columns))]
    widths = _widths(columns, cells, console.width)
    if widths is None:
        _print_records_vertically(title, columns, rows)
        return
    table = Table(title=title, header_style="bold cyan")
    for column, values, width in zip(columns, cells, widths, strict=True):
        table.add_column(
            column,
            overflow="fold",
            justify="right" if _numeric_column(values) else "left",
            width=width,
        )
    for row in rows:
        table.add_row(*("" if v is None else _cell(v) for v in row))
    console.print(table)


ATOM_MAX = 40  # a cell without spaces up to this long is kept whole when others can wrap
BORDER = 3  # a column's padding and its right border
MIN_FLEX = 8  # the narrowest a wrapping column gets


def _print_records_vertically(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """A table too wide for the terminal, as one block of `column  value` lines per row."""
    table = Table(title=title, header_style="bold cyan", show_header=False)
    table.add_column("column", style="bold cyan", overflow="fold")
    table.add_column("value", overflow="fold")
    for number, row in enumerate(rows):
        if number:
            table.add_section()
        for column, value in zip(columns, row, strict=False):
            table.add_row(column, "" if value is None else _cell(value))
    console.print(table)


def _widths(columns: Sequence[str], cells: list[list[Any]], total: int) -> list[int | None] | None:
    """Column widths for `total` terminal columns: Rich's natural widths (all None) when
    the table fits; else the atomic columns (numbers, times, words without spaces) keep
    their width and the columns of text share the rest; None when even that cannot fit
    (the rows are then printed one block each)."""
    desired = [
        max([len(header), *(len(_cell(v)) for v in values if v is not None)])
        for header, values in zip(columns, cells, strict=True)
    ]
    if sum(d + BORDER for d in desired) + 1 <= total:
        return [None] * len(columns)
    atomic = [_atomic(values) and d <= ATOM_MAX for values, d in zip(cells, desired, strict=True)]
    flex = [i for i, a in enumerate(atomic) if not a]
    room = total - 1 - sum(d + BORDER for d, a in zip(desired, atomic, strict=True) if a)
    room -= BORDER * len(flex)
    # A column of tokens (`output=d74a4c429b98, ...`, aliases, metrics) is never narrower
    # than its longest token, so tokens wrap whole, or the rows go vertical; prose may
    # fold a long word.
    least = {i: min(desired[i], _narrowest(cells[i])) for i in flex}
    if room < sum(least.values()) or (not flex and room < 0):
        return None
    widths: list[int | None] = [d if a else None for d, a in zip(desired, atomic, strict=True)]
    room -= sum(least.values())
    left = len(flex)
    for i in sorted(flex, key=lambda i: desired[i] - least[i]):  # who needs least goes first
        share = least[i] + min(desired[i] - least[i], room // left)
        if share < desired[i] and _atomic(cells[i]):
            return None  # a long URN would fold: one block per row keeps each on its line
        widths[i] = share
        room -= share - least[i]
        left -= 1
    return widths


PROSE_WORDS = 5  # words per cell, on average, from which a column is prose


def _narrowest(values: list[Any]) -> int:
    """The narrowest a wrapping column of `values` may get (see `_widths`)."""
    texts = [_cell(v) for v in values if v is not None]
    words = [word for text in texts for word in text.split()]
    if not words or len(words) >= PROSE_WORDS * len(texts):
        return MIN_FLEX
    return max(MIN_FLEX, min(max(map(len, words)), ATOM_MAX))


def _atomic(values: list[Any]) -> bool:
    """Numbers, times and single words (ids, statuses, versions, product names)."""
    return all(
        v is None or isinstance(v, int | float | datetime) or " " not in _cell(v) for v in values
    )


def _numeric_column(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def format_number(value: float, significant: int = SIGNIFICANT) -> str:
    """A number for people: `0.9123`, `12.35`, `12,346`; scientific notation only for
    magnitudes fixed notation cannot show in a few digits (`1.96e-06`, `3.1e+15`)."""
    if isinstance(value, int) or (
        math.isfinite(value) and value == int(value) and abs(value) < 1e15
    ):
        return f"{int(value):,}"
    if not math.isfinite(value):
        return str(value)
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude < -4 or magnitude >= 15:
        return f"{value:.{significant - 1}e}"
    decimals = max(0, significant - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def short_id(value: str | None) -> str:
    """The first `SHORT_ID` characters of an id (commands accept them as a unique prefix)."""
    return "" if value is None else value[:SHORT_ID]


def choose_columns(
    available: Sequence[str], default: Sequence[str], *, wide: bool, columns: str | None
) -> list[str]:
    """The columns to print: `--columns a,b,c` (checked against `available`), every
    available column with `--wide`, else the command's `default`."""
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in available]
        if unknown or not wanted:
            raise typer.BadParameter(
                f"unknown column(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(available)}",
                param_hint="--columns",
            )
        return wanted
    return list(available) if wide else [c for c in default if c in available]


def fit_columns(
    required: Sequence[str],
    optional: Sequence[str],
    widths: dict[str, int],
    budget: int | None = None,
) -> list[str]:
    """`required` columns, then as many `optional` ones (in order) as fit the console's
    width, each costing its widest cell (`widths`) plus the border and padding."""
    space = (budget if budget is not None else console.width) - 1
    used = sum(widths.get(c, len(c)) + 3 for c in required)
    chosen = list(required)
    for column in optional:
        cost = widths.get(column, len(column)) + 3
        if used + cost > space:
            break
        chosen.append(column)
        used += cost
    return chosen


def widest(header: str, cells: Sequence[Any]) -> int:
    """The width a column needs on one line: its header or its widest cell."""
    return max([len(header), *(len(_cell(c)) for c in cells if c is not None)])


def print_records(
    title: str,
    fields: Mapping[str, Callable[[Any], Any]],
    records: Sequence[Any],
    default: Sequence[str],
    *,
    extra: Sequence[str] = (),
    wide: bool = False,
    columns: str | None = None,
) -> None:
    """A table of `records`, one column per chosen field (see `choose_columns`); without
    --wide or --columns, the `extra` fields join the default ones while they fit."""
    chosen = choose_columns(list(fields), default, wide=wide, columns=columns)
    if extra and not (wide or columns):
        widths = {c: widest(c, [fields[c](r) for r in records]) for c in [*chosen, *extra]}
        chosen = fit_columns(chosen, extra, widths)
    print_table(title, chosen, [[fields[c](r) for c in chosen] for r in records])
