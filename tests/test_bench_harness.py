"""The bench harness reads what a run prints and writes what a run reads: its parser follows the run summary's own
line, and its settings file is TOML the settings loader accepts."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not installed
from bench.harness import parse_summary, toml_text  # noqa: E402
from catalog_intel.pipeline.summary import RunSummary  # noqa: E402


def test_parse_summary_reads_the_runs_own_line():
    summary = RunSummary(inputs=12, rows=9, rejects=2, skipped=1, embeddings_computed=7, embeddings_cached=2,
                         llm_calls=5, llm_cached=3, llm_failed=1, llm_retries=4, seconds=31.25,
                         phases={"enrich-shard": 20.3, "validate": 1.2}, task_runner="local")
    text = "progress noise\n" + summary.one_line() + "\noutputs: a, b\n"
    got = parse_summary(text)
    assert {k: got[k] for k in ("inputs", "rows", "rejects", "skipped", "embeddings_computed", "embeddings_cached",
                                "llm_calls", "llm_cached", "llm_failed", "llm_retries")} == {
        "inputs": 12, "rows": 9, "rejects": 2, "skipped": 1, "embeddings_computed": 7, "embeddings_cached": 2,
        "llm_calls": 5, "llm_cached": 3, "llm_failed": 1, "llm_retries": 4}
    assert got["seconds"] == 31.2  # one decimal, as printed
    assert got["phases"] == {"enrich-shard": 20.3, "validate": 1.2}
    assert got["runner"] == "local"


def test_parse_summary_takes_the_last_line_and_knows_when_there_is_none():
    first = RunSummary(inputs=1, rows=1, seconds=1.0).one_line()
    last = RunSummary(inputs=5, rows=4, rejects=1, seconds=2.0).one_line()
    assert parse_summary(first + "\n" + last)["inputs"] == 5
    assert parse_summary("Traceback (most recent call last):\n  boom") == {}


def test_toml_text_is_the_settings_it_was_given():
    settings = {"clip.batch_size": 16, "clip.model": "tiny-clip", "run.max_reject_share": 1.0,
                "llm.languages": ["en", "de"], "attributes.color.min_confidence": 0.3, "llm.base_url": None}
    assert tomllib.loads(toml_text(settings)) == {
        "clip": {"batch_size": 16, "model": "tiny-clip"}, "run": {"max_reject_share": 1.0},
        "llm": {"languages": ["en", "de"]}, "attributes": {"color": {"min_confidence": 0.3}}}
