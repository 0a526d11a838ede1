"""A command's output as rows: a Rich table for people, TSV, CSV or JSON for programs.

A command builds its rows once (dicts keyed by machine names, typed values: numbers,
bools, dicts, lists, None where missing) and names its columns; every format is rendered
from those same rows, so the table and the machine output never disagree. The machine
formats carry no markup, color or wrapping and go to stdout alone: a command's notes go
to stderr when its stdout is a program.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from suite.errors import UserError
from suite.terminal import figure

#: the table first: the default on a terminal; tsv: the default for a program
FORMATS = ("table", "tsv", "csv", "json")


@dataclass(frozen=True)
class Column:
    """One field of a command's rows, and how the table shows it."""

    key: str  # the machine name: JSON key, CSV and TSV header
    title: str = ""  # the table's header; the key where empty
    justify: Literal["left", "center", "right"] = "left"
    style: str = ""  # of the table's cells
    styles: Mapping[str, str] = field(default_factory=dict)  # cell text -> its style
    missing: str = ""  # what the table shows for None
    under: str = ""  # the table shows it on a second line of that column's cell
    table: bool = True  # False: the machine formats only (the table's title says it)

    @property
    def header(self) -> str:
        return self.title or self.key


def choose(requested: str | None, console: Console) -> str:
    """The format asked for, else ``table`` on a terminal and ``tsv`` for a program."""
    if requested is None:
        return "table" if console.is_terminal else "tsv"
    if requested not in FORMATS:
        raise UserError(f"expected --format {', '.join(FORMATS[:-1])} or {FORMATS[-1]}. "
                        f"Received: --format {requested}")
    return requested


def write(console: Console, rows: Iterable[Mapping[str, Any]], columns: list[Column],
          fmt: str, title: str = "", **table_options: Any) -> None:
    """``rows`` in ``fmt`` on ``console``: the table through Rich, the others as plain text
    on its file (``table_options`` go to :class:`rich.table.Table`)."""
    rows = list(rows)
    if fmt == "table":
        console.print(table(rows, columns, title, **table_options))
        return
    console.file.write(render(rows, columns, fmt))
    console.file.flush()


def render(rows: Iterable[Mapping[str, Any]], columns: list[Column], fmt: str) -> str:
    """The text of a machine format: ``tsv``, ``csv`` or ``json``."""
    records = [{c.key: typed(row.get(c.key)) for c in columns} for row in rows]
    if fmt == "json":
        return json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        cell = plain
    else:  # NOTE: TSV has no quoting: a tab or line break in a value becomes a space
        writer = csv.writer(out, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None,
                            lineterminator="\n")
        cell = _tsv_cell
    writer.writerow([c.key for c in columns])
    writer.writerows([cell(record[c.key]) for c in columns] for record in records)
    return out.getvalue()


def table(rows: Iterable[Mapping[str, Any]], columns: list[Column], title: str = "",
          **options: Any) -> Table:
    """The Rich table of ``rows``: the columns with ``table`` set, each ``under`` column on
    a second line of the cell it names."""
    below = {c.under: c for c in columns if c.under and c.table}
    shown = [c for c in columns if c.table and not c.under]
    result = Table(title=title or None, **options)
    for column in shown:
        result.add_column(column.header, justify=column.justify, overflow="fold")
    for row in rows:
        cells = []
        for column in shown:
            # Text, not markup: a value may hold [brackets]
            parts = [_styled(row.get(column.key), column)]
            if column.key in below:
                text, style = _styled(row.get(below[column.key].key), below[column.key])
                parts.append(("\n" + text, style))
            cells.append(Text.assemble(*parts))
        result.add_row(*cells)
    return result


def typed(value: Any) -> Any:
    """A value as JSON types it: NumPy scalars as Python numbers, NaN as None."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def plain(value: Any) -> str:
    """A value as one CSV or TSV field: "" for None, true/false, numbers in full,
    ``k=v,k=v`` for a mapping, a list space-separated."""
    value = typed(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def shown_text(value: Any, column: Column) -> str:
    """A value as the table shows it: yes/no, figures to 3 significant digits, a mapping
    one ``k v`` a line."""
    value = typed(value)
    if value is None:
        return column.missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return figure(value)
    if isinstance(value, Mapping):
        return "\n".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _styled(value: Any, column: Column) -> tuple[str, str]:
    text = shown_text(value, column)
    return text, column.styles.get(text, column.style)


def _tsv_cell(value: Any) -> str:
    return " ".join(plain(value).replace("\t", " ").splitlines())


#: the --format option of every command that lists rows
FormatOption = Annotated[str | None, typer.Option(
    "--format", metavar="FORMAT", help="table, tsv, csv or json. Default: table when stdout "
    "is a terminal, else tsv (one row a line, tab-separated, a header line first).")]
