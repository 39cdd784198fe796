"""Tables that fit the terminal they are printed on: one line per row, long values (paths, URLs,
errors) shortened in the middle with an ellipsis, so both ends stay readable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.table import Table
from rich.text import Text

ELLIPSIS = "…"
# Columns a shortened value never goes below: "ab…yz" still tells one name from another.
DEFAULT_MIN_WIDTH = 6
# Below its floor, a value still shows its first and last characters ("a…4").
LAST_RESORT_WIDTH = 3


@dataclass(frozen=True)
class Column:
    """One column: its header, alignment and whether its values may be shortened to fit."""

    header: str
    justify: JustifyMethod = "left"
    shrinkable: bool = False
    min_width: int = DEFAULT_MIN_WIDTH


def middle_ellipsis(text: Text, width: int) -> Text:
    """`text` cut to `width` terminal cells by dropping its middle (`/videos/lo…name.mp4`)."""
    if text.cell_len <= width:
        return text
    if width <= 1:
        return Text(ELLIPSIS[:width])
    plain = text.plain
    keep = width - 1
    head_end = _chars_within(plain, (keep + 1) // 2)
    tail_cells = keep - Text(plain[:head_end]).cell_len
    tail_start = len(plain) - _chars_within(plain[::-1], tail_cells)
    return text[:head_end] + Text(ELLIPSIS) + text[tail_start:]


def _chars_within(plain: str, cells: int) -> int:
    """How many leading characters of `plain` fit in `cells` (wide characters count twice)."""
    used = 0
    for count, char in enumerate(plain):
        used += Text(char).cell_len
        if used > cells:
            return count
    return len(plain)


def fit_widths(natural: Sequence[int], columns: Sequence[Column], available: int) -> list[int]:
    """Column widths within `available` cells (borders included): the widest shrinkable column
    gives up a cell at a time until the table fits, first down to each column's floor, then, on
    a very narrow terminal, down to a few cells."""
    widths = list(natural)
    # Rich's default box: one border cell per column plus one, one padding cell on each side.
    excess = sum(widths) + 3 * len(widths) + 1 - available
    for floor in (_floor, lambda column: LAST_RESORT_WIDTH):
        while excess > 0:
            candidates = [
                i
                for i, column in enumerate(columns)
                if column.shrinkable and widths[i] > floor(column)
            ]
            if not candidates:
                break
            widths[max(candidates, key=lambda i: widths[i])] -= 1
            excess -= 1
    # Whatever is still too wide (fixed columns only) is cut at the edge by rich.
    return widths


def _floor(column: Column) -> int:
    """The narrowest a shrinkable column gets: its minimum, and never narrower than its header."""
    return max(column.min_width, Text(column.header).cell_len)


class FittedTable:
    """A rich table laid out for the width it is printed at, each row on a single line."""

    def __init__(self, columns: Sequence[Column], title: str | None = None) -> None:
        self.columns = list(columns)
        self.title = title
        self.rows: list[list[Text]] = []

    def add_row(self, *cells: str | Text) -> None:
        """Add a row; plain strings are shown as they are (never read as markup)."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([cell if isinstance(cell, Text) else Text(cell) for cell in cells])

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Render as a rich Table whose widths fit `options.max_width`."""
        natural = [
            max([Text(column.header).cell_len, *(row[i].cell_len for row in self.rows)])
            for i, column in enumerate(self.columns)
        ]
        widths = fit_widths(natural, self.columns, options.max_width)
        table = Table(title=self.title)
        for column, width in zip(self.columns, widths, strict=True):
            table.add_column(
                column.header,
                justify=column.justify,
                no_wrap=True,
                overflow="ellipsis",
                min_width=width,
                max_width=width,
            )
        for row in self.rows:
            table.add_row(
                *(middle_ellipsis(cell, width) for cell, width in zip(row, widths, strict=True))
            )
        yield table
