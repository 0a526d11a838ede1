"""A command's rows in every format (suite.rows): the Rich table on a terminal, TSV for a
program by default, CSV and JSON; all from the same rows."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from rich.console import Console

from suite import rows
from suite.errors import UserError
from suite.rows import Column

COLUMNS = [
    Column("name", style="bold"),
    Column("ok", styles={"yes": "green", "no": "red"}),
    Column("versions"),
    Column("note"),
    Column("ms", justify="right", missing="–"),
    Column("where", under="name", style="dim"),
    Column("threads", table=False),
]
ROWS = [
    {"name": "alpha", "ok": True, "versions": {"a": "1.2", "b": "3"}, "note": None,
     "ms": 0.123456789, "where": "pkg.alpha:Alpha", "threads": 2},
    {"name": "beta", "ok": False, "versions": {}, "note": 'tab\there, "quoted", comma\nnext',
     "ms": np.float64(float("nan")), "where": "pkg.beta:Beta", "threads": np.int64(2)},
]


def test_tsv_is_a_header_then_one_line_a_row_with_plain_fields():
    lines = rows.render(ROWS, COLUMNS, "tsv").splitlines()
    assert lines[0].split("\t") == [c.key for c in COLUMNS]
    assert len(lines) == 1 + len(ROWS)
    first, second = (line.split("\t") for line in lines[1:])
    assert first == ["alpha", "true", "a=1.2,b=3", "", "0.123456789", "pkg.alpha:Alpha", "2"]
    assert second[:4] == ["beta", "false", "", 'tab here, "quoted", comma next']
    assert second[4] == ""  # NaN: not measured


def test_csv_reads_back_with_dict_reader():
    found = list(csv.DictReader(io.StringIO(rows.render(ROWS, COLUMNS, "csv"))))
    assert [r["name"] for r in found] == ["alpha", "beta"]
    assert found[1]["note"] == 'tab\there, "quoted", comma\nnext'
    assert found[0]["ms"] == "0.123456789" and found[1]["ms"] == ""


def test_json_is_a_list_of_objects_with_typed_values():
    found = json.loads(rows.render(ROWS, COLUMNS, "json"))
    assert [list(r) for r in found] == [[c.key for c in COLUMNS]] * 2
    assert found[0]["ok"] is True and found[0]["ms"] == 0.123456789
    assert found[0]["versions"] == {"a": "1.2", "b": "3"} and found[0]["note"] is None
    assert found[1]["ms"] is None and found[1]["threads"] == 2


def test_machine_formats_hold_no_markup_or_escape_codes():
    for fmt in ("tsv", "csv", "json"):
        out = io.StringIO()
        rows.write(Console(file=out, force_terminal=True), ROWS, COLUMNS, fmt, title="T")
        assert out.getvalue() == rows.render(ROWS, COLUMNS, fmt)
        assert "\x1b" not in out.getvalue() and "[bold]" not in out.getvalue()


def test_the_table_shows_every_table_column_and_the_under_one_below():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    rows.write(console, ROWS, COLUMNS, "table", title="Things")
    text = out.getvalue()
    assert "Things" in text and "┏" in text
    header = next(line for line in text.splitlines() if "name" in line)
    assert [h.strip() for h in header.strip("┃").split("┃")] == ["name", "ok", "versions",
                                                                  "note", "ms"]
    lines = text.splitlines()
    alpha = next(i for i, line in enumerate(lines) if "alpha" in line)
    assert "pkg.alpha:Alpha" in lines[alpha + 1]  # the target below its name
    assert "yes" in lines[alpha] and "0.123" in lines[alpha] and "a 1.2" in lines[alpha]
    assert "threads" not in text  # a machine-only column
    assert "–" in next(line for line in lines if "beta" in line)


def test_table_cells_are_text_not_markup():
    out = io.StringIO()
    rows.write(Console(file=out, width=100), [{"name": "[red]x[/]"}], [Column("name")], "table")
    assert "[red]x[/]" in out.getvalue()


def test_the_default_is_the_table_on_a_terminal_and_tsv_for_a_program():
    assert rows.choose(None, Console(file=io.StringIO(), force_terminal=True)) == "table"
    assert rows.choose(None, Console(file=io.StringIO())) == "tsv"
    assert rows.choose("json", Console(file=io.StringIO(), force_terminal=True)) == "json"


def test_an_unknown_format_is_one_clear_line():
    with pytest.raises(UserError) as info:
        rows.choose("yaml", Console(file=io.StringIO()))
    assert str(info.value) == ("expected --format table, tsv, csv or json. "
                               "Received: --format yaml")
