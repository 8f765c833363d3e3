"""The default path: no LLM URL configured -> a real embedded llama.cpp model writes the copy."""

from pathlib import Path

import polars as pl
import pytest

from catalog_intel.settings import load_config
from catalog_intel.quality.copy_quality import copy_quality
from catalog_intel.io.synthetic import draw_top
from conftest import link_model, run_catalog, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_products(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    # two products, one per slot of the session's server
    for color, pattern, sleeve in [("red", "solid", "short sleeve"), ("navy", "striped", "long sleeve")]:
        draw_top(color, pattern, sleeve, size=(480, 600), seed=1).save(folder / f"{color}.jpg", quality=90)
    return folder


def _reuse(server):
    """Stands in for EmbeddedLLMServer: the run's `with` block gets the session's running server
    (started the same way, as a child process) and leaves it running; records what the run asked for."""
    asked = []

    class Shared:
        def __init__(self, gguf, **kw):
            asked.append((Path(gguf), kw))
            self.base_url, self.model = server.base_url, server.model

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    return Shared, asked


def test_embedded_llm_writes_schema_valid_copy(prefect_server, two_products, tmp_path, tiny_clip, cache_dir,
                                               real_gguf, embedded_llm, monkeypatch):
    from catalog_intel.copywriting import local_llm

    # The verified model (and its hash sidecar) as a first run would have left it in this cache: the run
    # finds it in place, and the process start is the session's (test_local_llm starts and stops its own).
    model = link_model(cache_dir, real_gguf)
    shared, asked = _reuse(embedded_llm)
    monkeypatch.setattr(local_llm, "EmbeddedLLMServer", shared)
    config_file = write_config(tmp_path / "embedded.toml", tiny_clip, {  # no llm.base_url: embedded is the default
        # one thread at normal priority: CI machines are often shared, and llama.cpp threads stall
        # when others take their cores (the default, every core at nice 10, suits a machine of its own)
        "llm": {"timeout_s": 300, "embedded_threads": 1, "embedded_nice": 0}, "run": {"max_reject_share": 1.0}},
        llm=None)
    out = tmp_path / "out"
    summary = run_catalog(two_products, out, config_file, cache_dir, color_policy="ensemble")
    [(gguf, kw)] = asked  # one server, for the model in the run's cache, with the config's threads and priority
    assert gguf == model and (kw["threads"], kw["nice"], kw["isolate"]) == (1, 0, True)
    assert {k: getattr(embedded_llm, k) for k in kw} == kw  # the session's server was started as the run asked
    table = pl.read_parquet(out / "catalog.parquet").sort("image")
    rejects = pl.read_csv(out / "rejects.csv")
    # Copy the rules still object to at the last attempt is repaired; only copy with too little
    # left is rejected (by design). Anything else (timeouts, broken JSON) would be a plumbing failure.
    assert summary["rows"] + summary["rejects"] == 2 and summary["rows"] >= 1
    assert all(r.startswith("LLM copy failed: copy rejected") for r in rejects["reason"])
    assert sorted(table["image"].to_list() + rejects["image"].to_list()) == ["navy.jpg", "red.jpg"]
    colors = dict(zip(table["image"], table["color"]))
    assert all(colors[f"{c}.jpg"] == c for c in ("navy", "red") if f"{c}.jpg" in colors)  # from the pixels
    assert summary["llm_calls"] >= 2
    assert table["llm_model"][0] == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    quality = copy_quality(table, load_config(), name="embedded")
    assert quality["schema_valid"]["share"] == 1.0, quality["schema_valid"]
    assert quality["contradictions"]["rows"] == 0, quality["contradictions"]["rows_flagged"]
    # what the gate let through is grounded and well formed (repaired where it had to be)
    assert quality["ungrounded_claims"]["rows"] == 0, quality["ungrounded_claims"]["rows_flagged"]
    assert quality["form"]["truncated_fields"] == 0 and quality["form"]["rows"]["duplicate_tag"] == 0
    assert quality["form"]["other_script_rows"] == 0
    limits = load_config().validation  # templated bullets and tags: as many as the facts give, within the limits
    for row in table.iter_rows(named=True):
        assert limits.bullets_min <= len(row["bullet_points"]) <= limits.bullets_max
        assert limits.seo_tags_min <= len(row["seo_tags"]) <= limits.seo_tags_max
        assert 1 <= len(row["title"].split()) <= 12
