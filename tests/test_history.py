"""Data-quality history: pure trend and sudden-change rules, then three real runs into one
output folder (Data Docs list three validations; the report shows the trend and calls out
the doubled rejects)."""

from __future__ import annotations

import re

import polars as pl
import pytest

from catalog_intel.quality.history import read_history, reject_category, sudden_changes, trend_table
from conftest import make_source, run_catalog, write_config


def _metrics(rows=10, rejects=1, by_reason=None, abst=None, warnings=0, conflicts=0):
    abst = abst or {"fit": 1}
    return {"run_id": "r", "processed_at": f"t{rows}-{rejects}", "rows": rows, "rejects": rejects,
            "rejects_by_reason": by_reason or {"empty file": rejects}, "abstentions": abst,
            "abstention_rate": {k: v / rows for k, v in abst.items()}, "copy_warnings": warnings, "conflicts": conflicts}


def test_reject_reasons_are_grouped_without_row_particulars():
    assert reject_category("LLM copy failed: HTTP 500 <b>") == "LLM copy failed"
    assert reject_category("empty file (0 bytes)") == "empty file"
    assert reject_category("color value is outside the vocabulary; title is empty") == "color value is outside the vocabulary"


def test_sudden_changes_flag_doubling_and_abstention_jumps_only():
    before = _metrics(rejects=2, abst={"fit": 1, "color": 0})
    assert sudden_changes(None, before, 3, 0.15) == []
    assert sudden_changes(before, _metrics(rejects=3, abst={"fit": 2, "color": 0}), 3, 0.15) == []  # 1.5x, +10 pts
    alerts = sudden_changes(before, _metrics(rejects=4, abst={"fit": 4, "color": 0}, warnings=3), 3, 0.15)
    assert alerts == ["rejects: 2 -> 4 since the previous run",  # one reason: not repeated per reason
                      "fit abstains on 40% of rows, up from 10% in the previous run",
                      "copy warnings: 0 -> 3 since the previous run"]
    assert sudden_changes(_metrics(rejects=0), _metrics(rejects=2), 3, 0.15) == []  # under the minimum
    mixed = _metrics(rejects=5, by_reason={"empty file": 1, "not an image": 4})
    assert sudden_changes(_metrics(rejects=3, by_reason={"empty file": 2, "not an image": 1}), mixed, 3, 0.15) == [
        "rejects 'not an image': 1 -> 4 since the previous run"]


def test_trend_table_lists_recent_runs_oldest_first():
    runs = [_metrics(rows=n, rejects=n // 10, by_reason={"empty file": 1} if n < 30 else {"not an image": 2})
            for n in (10, 20, 30, 40)]
    assert trend_table(runs[:1], 10) is None
    trend = trend_table(runs, 3)
    assert trend["columns"] == ["rows", "rejects", "rejects: empty file", "rejects: not an image", "unknown fit",
                                "copy warnings", "conflicts"]
    assert [r["cells"][:4] for r in trend["runs"]] == [[20, 2, 1, 0], [30, 3, 0, 2], [40, 4, 0, 2]]


@pytest.mark.slow
def test_three_runs_into_one_folder_keep_their_history(prefect_server, tiny_clip, tmp_path):
    from html.parser import HTMLParser

    out, cache = tmp_path / "out", tmp_path / "cache"
    src = make_source(tmp_path / "src", 4)
    config = write_config(tmp_path / "c.toml", tiny_clip, {"run": {"max_reject_share": 1.0}}, llm=None)
    for run, broken in enumerate((1, 1, 4)):
        for i in range(broken):
            (src / f"broken-{i}.jpg").write_bytes(b"")
        summary = run_catalog(src, out, config, cache, no_llm=True)

    history = read_history(out)
    assert [h["rejects"] for h in history] == [1, 1, 4] and [h["rows"] for h in history] == [4, 4, 4]
    assert history[2]["alerts"][0] == "rejects: 1 -> 4 since the previous run"
    assert summary["alerts"] == history[2]["alerts"]  # the run summary (and its Prefect artifact) carry them

    results = sorted((out / "history" / "validations").rglob("*.json"))
    assert len(results) == 3
    index = (out / "data_docs" / "index.html").read_text()
    links = set(re.findall(r"validations/[^\"']+?\.html", index))
    assert len(links) == 3 and all((out / "data_docs" / link).is_file() for link in links)

    class Trend(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.alerts, self._where = [], [], None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table" and a.get("id") == "trend":
                self._where = "trend"
            elif tag == "ul" and a.get("id") == "alerts":
                self._where = "alerts"
            elif tag in ("tr", "li") and self._where:
                (self.rows if self._where == "trend" else self.alerts).append([])

        def handle_endtag(self, tag):
            if tag in ("table", "ul"):
                self._where = None

        def handle_data(self, data):
            if self._where == "trend" and self.rows:
                self.rows[-1].append(data)
            elif self._where == "alerts" and self.alerts:
                self.alerts[-1].append(data)

    page = Trend()
    page.feed((out / "report" / "index.html").read_text())
    header, *runs = page.rows
    assert header[:4] == ["run", "rows", "rejects", "rejects: empty file"]
    assert [r[1:4] for r in runs] == [["4", "1", "1"], ["4", "1", "1"], ["4", "4", "4"]]
    assert ["rejects: 1 -> 4 since the previous run"] in page.alerts
    assert pl.read_csv(out / "rejects.csv").height == 4


def test_run_summary_markdown_calls_out_sudden_changes():
    from catalog_intel.pipeline.summary import RunSummary

    md = RunSummary(inputs=5, alerts=["rejects: 1 -> 4 since the previous run"]).markdown()
    assert md.splitlines()[2] == "**Sudden change:** rejects: 1 -> 4 since the previous run  "
    assert "Sudden change" not in RunSummary(inputs=5).markdown()
    line = RunSummary(inputs=5, alerts=["fit abstains on 40% of rows, up from 10% in the previous run"]).one_line()
    assert line.splitlines()[1] == "sudden change: fit abstains on 40% of rows, up from 10% in the previous run"
