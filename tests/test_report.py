"""Tests of a compare run's report (suite.compare.render): gold files, a real browser,
runs with missing pieces.

Gold files. tests/gold/report.md is report.md of the fixture run (tests/report_fixture.py)
and tests/gold/report_html.txt the text of its report.html (outside <style> and <svg>, one
block per line, table cells joined by " | "), both with volatile parts scrubbed: dates and
times, run stamps, versions (x.y.z) and durations (a number with s or ms). After an
intended change to the report, regenerate them and review the diff before committing::

    FNN_SUITE_REGOLD=1 .venv/bin/pytest -q tests/test_report.py
    git diff tests/gold

Browser. test_browser_renders_self_contained_page opens report.html in headless Debian
Chromium (``make browser`` installs it) and is skipped when none is on PATH. Its
screenshot stays in the test's tmp_path (pytest keeps the last three base temp dirs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser import Page, browse, external_loads
from report_fixture import build_run

from suite.compare import plots
from suite.compare import render as report_render
from suite.compare.render import render
from suite.errors import UserError
from suite.files import atomic_write_text as write_atomic

GOLD = Path(__file__).parent / "gold"
REGOLD = os.environ.get("FNN_SUITE_REGOLD") == "1"
SCRUB = (
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?", "<DATETIME>"),
    (r"\b\d{8}-\d{6}\b", "<STAMP>"),
    (r"\b\d+\.\d+\.\d+[\w.+-]*", "<VERSION>"),
    (r"\b\d+(\.\d+)? (ms|s)\b", "<DURATION>"),
)

@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, Path]:
    return render(build_run(tmp_path_factory.mktemp("run")))


def scrub(text: str) -> str:
    for pattern, token in SCRUB:
        text = re.sub(pattern, token, text)
    return text


def check_gold(name: str, actual: str) -> None:
    path = GOLD / name
    if REGOLD:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8"), f"differs from {path}; see docstring"


# ---------------------------------------------------------------------------- gold files


def test_render_returns_the_two_report_paths(rendered):
    md, html = rendered
    assert (md.name, html.name) == ("report.md", "report.html")
    assert md.parent == html.parent and md.is_file() and html.is_file()
    assert not list(md.parent.glob(".report*")), "a temporary file was left behind"


def test_markdown_matches_gold(rendered):
    check_gold("report.md", scrub(rendered[0].read_text(encoding="utf-8")))


def test_html_text_matches_gold(rendered):
    check_gold("report_html.txt", scrub(Page(rendered[1].read_text(encoding="utf-8")).text()))


def test_scrub_hides_volatile_parts_only():
    line = "created 2026-11-24T19:30:00+00:00, torch 2.13.0+cpu, 1.92 s, 0.35 ms, 1.0e-04"
    assert scrub(line) == "created <DATETIME>, torch <VERSION>, <DURATION>, <DURATION>, 1.0e-04"


# ---------------------------------------------------------------------------- content


def test_headline_says_one_sentence_per_backend(rendered):
    md = rendered[0].read_text(encoding="utf-8")
    assert "- **torch:** pass on all checks\n" in md
    assert "- **keras:** known difference (keras-adam-epsilon) from step 0 in update, " \
           "trajectory\n" in md
    assert "- **jax:** error — worker timed out after 600 s\n" in md
    assert "- **mlx:** unsupported — loss:sparse_categorical_crossentropy" in md
    assert "- **myplugin:** fail on trajectory: out of tolerance from step 7 " \
           "(param dense_1/kernel)" in md
    assert md.index("## Verdicts") < md.index("## Network") < md.index("## Timing")


def test_verdict_cells_carry_the_verdict_color(rendered):
    page = Page(rendered[1].read_text(encoding="utf-8"))
    classes = [a["class"] for a in page.find("td") if (a.get("class") or "").startswith("v-")]
    expected = (["v-pass"] * 5 + ["v-pass"] * 3 + ["v-known"] * 2
                + ["v-pass"] * 4 + ["v-fail"]
                + ["v-error"] * 5 + ["v-unsupported"] * 5)
    assert classes == expected


def test_html_is_one_self_contained_file(rendered):
    text = rendered[1].read_text(encoding="utf-8")
    page = Page(text)
    assert external_loads(page) == []
    assert len(page.find("svg")) == 4
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "duplicate ids across the inline SVGs"


def test_zero_differences_sit_on_a_stated_floor():
    assert plots.floor_for(np.array([0.0, 2e-7, 3e-3]), "float32") == pytest.approx(1e-8)
    assert plots.floor_for(np.array([0.0, 0.0]), "float32") == plots.FLOOR["float32"]
    assert plots.floor_for(np.array([0.0, 1e-19]), "float32") == plots.FLOOR["float32"]


def test_difference_plot_says_it_clipped_zeros(rendered):
    page = Page(rendered[1].read_text(encoding="utf-8"))
    assert "1 value(s) below 1e-09 (exact agreement included) are drawn at that floor" \
        in page.text()


# ---------------------------------------------------------------------------- missing pieces


def test_run_without_timing_or_failed_backends_rows_still_renders(tmp_path):
    run_dir = build_run(tmp_path, timing="missing", summary_for_failed=False)
    md, html = render(run_dir)
    text = md.read_text(encoding="utf-8")
    assert "No timing was recorded for this run." in text
    assert "| jax | **error** | **error** | **error** | **error** | **error** |" in text
    page = Page(html.read_text(encoding="utf-8"))
    assert page.find("figure", id="fig-timing-bars") == []
    assert len(page.find("figure")) == 3


def test_empty_timing_csv_means_no_timing(tmp_path):
    md, _ = render(build_run(tmp_path, timing="empty"))
    assert "No timing was recorded for this run." in md.read_text(encoding="utf-8")


def test_run_with_only_run_json_renders_every_section(tmp_path):
    full = build_run(tmp_path / "full", status="interrupted")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(full / "run.json", bare / "run.json")
    md, html = render(bare)
    text = md.read_text(encoding="utf-8")
    assert "> **This run is interrupted: some backends or sections may be missing.**" in text
    assert "No gradient comparisons were recorded." in text
    assert "| torch | no result | no result |" in text
    assert "- **torch:** no result recorded for forward, loss, gradients" in text
    page = Page(html.read_text(encoding="utf-8"))
    assert page.find("svg") == [] and len(page.find("table", id="verdict-table")) == 1


def test_missing_run_json_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="run.json is missing"):
        render(tmp_path)


# ---------------------------------------------------------------------------- atomic writes


def test_failed_render_keeps_the_previous_reports(tmp_path, monkeypatch):
    run_dir = build_run(tmp_path)
    (run_dir / "report.md").write_text("old md", encoding="utf-8")

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(report_render, "render_html", broken)
    with pytest.raises(RuntimeError, match="template exploded"):
        render(run_dir)
    assert (run_dir / "report.md").read_text(encoding="utf-8") == "old md"
    assert not (run_dir / "report.html").exists()
    assert not list(run_dir.glob(".report*"))


def test_write_atomic_leaves_no_half_file(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("complete old report", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "half a report, then an unencodable \ud800")
    assert target.read_text(encoding="utf-8") == "complete old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


# ---------------------------------------------------------------------------- real browser


def test_browser_renders_self_contained_page(rendered, tmp_path):
    from PIL import Image

    html = rendered[1]
    dom = Page(browse(tmp_path, html, "--dump-dom").stdout)
    assert len(dom.find("table", id="verdict-table")) == 1
    assert "jax: error — worker timed out after 600 s" in dom.text()
    assert len(dom.find("svg")) == 4 and len(dom.find("figure")) == 4
    assert external_loads(dom) == []
    shot = tmp_path / "report.png"
    browse(tmp_path, html, f"--screenshot={shot}", "--window-size=1280,1400")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1400)
    colors = {color for _, color in image.getcolors(maxcolors=1 << 20)}
    # the verdict colors from the inline CSS were applied: pass, known, fail, error cells
    for rgb in ((0xDC, 0xFC, 0xE7), (0xDB, 0xEA, 0xFE), (0xFE, 0xE2, 0xE2), (0x7F, 0x1D, 0x1D)):
        assert rgb in colors, f"no pixel of {rgb} in {shot}"


def test_fixture_run_json_follows_the_contract(rendered):
    meta = json.loads((rendered[0].parent / "run.json").read_text(encoding="utf-8"))
    roles = {name: b["role"] for name, b in meta["backends"].items()}
    assert roles["numpy"] == "reference" and roles["numpy~keras"] == "variant"
    assert not (rendered[0].parent / "grads" / "jax.npz").exists()
