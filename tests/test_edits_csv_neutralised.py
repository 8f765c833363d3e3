"""The review report's JavaScript writes edits.csv cells as exports/tables.py writes ours: a text
cell a spreadsheet would run as a formula gets a quote, a key (image, product_id) is only quoted.
Runs report.js's own cell() under node."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from catalog_intel.io.csv_cells import neutralise_formulas, restore_formulas

REPORT_JS = Path(__file__).resolve().parents[1] / "catalog_intel" / "report" / "templates" / "report.js"
VALUES = ["=HYPERLINK(\"http://x\")", "  =1+1", "\t=cmd", "+49 30", "-5 % off", "@SUM(A1)", "plain, with comma",
          "say \"hi\"", "", "a - b", "'quoted already"]


def _js_cells(values: list[str], key: bool) -> list[str]:
    source = REPORT_JS.read_text()
    cell = re.search(r"^  function cell\(v, key\) \{.*?^  \}", source, re.S | re.M)
    assert cell, "report.js has no cell(v, key) function"
    script = cell.group(0) + f"\nprocess.stdout.write(JSON.stringify({json.dumps(values)}.map(function (v) {{ " \
                             f"return cell(v, {json.dumps(key)}); }})));"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_report_js_neutralises_edit_cells_as_python_does():
    raw = _js_cells(VALUES, key=False)
    parsed = [next(csv.reader([r])) [0] if r else "" for r in raw]
    expected = neutralise_formulas(pl.DataFrame({"title": VALUES}))["title"].to_list()
    assert parsed == expected
    assert parsed[1] == "'  =1+1" and parsed[4] == "'-5 % off" and parsed[9] == "a - b"
    assert restore_formulas(pl.DataFrame({"title": parsed}))["title"].to_list() == VALUES  # the next run reads them back


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_report_js_quotes_but_never_changes_a_key():
    raw = _js_cells(["=a.jpg", "@b.jpg", "c.jpg"], key=True)
    assert raw == ['"=a.jpg"', '"@b.jpg"', "c.jpg"]
