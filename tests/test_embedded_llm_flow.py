"""The default path: no LLM URL configured -> a real embedded llama.cpp model writes the copy."""

import importlib.util

import polars as pl
import pytest

from catalog_intel.io.synthetic import draw_top
from catalog_intel.quality.copy_quality import copy_quality
from catalog_intel.settings import load_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def three_products(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    for color, pattern, sleeve in [("red", "solid", "short sleeve"), ("navy", "striped", "long sleeve"),
                                   ("green", "solid", "sleeveless")]:
        draw_top(color, pattern, sleeve, size=(480, 600), seed=1).save(folder / f"{color}.jpg", quality=90)
    return folder


def test_embedded_llm_writes_schema_valid_copy(prefect_server, three_products, tmp_path, tiny_clip, cache_dir):
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("the llm extra is not installed (pip install -e '.[dev,llm]')")
    from catalog_intel.orchestration.flow import catalog_flow

    config_file = tmp_path / "embedded.toml"  # no llm.base_url: the embedded server is the default
    config_file.write_text(
        f'[clip]\nmodel = "tiny-clip"\nmodel_config = "{tiny_clip["clip.model_config"]}"\n'
        f'checkpoint = "{tiny_clip["clip.checkpoint"]}"\ndecode_workers = 0\n'
        # one thread at normal priority: CI machines are often shared, and llama.cpp threads stall
        # when others take their cores (the default, every core at nice 10, suits a machine of its own)
        "[llm]\ntimeout_s = 300\nembedded_threads = 1\nembedded_nice = 0\n[run]\nmax_reject_share = 1.0\n"
    )
    out = tmp_path / "out"
    summary = catalog_flow(source=str(three_products), out_dir=str(out), config_path=str(config_file),
                           cache_dir=str(cache_dir), color_policy="ensemble")
    table = pl.read_parquet(out / "catalog.parquet").sort("image")
    rejects = pl.read_csv(out / "rejects.csv")
    # Copy the rules still object to at the last attempt is repaired; only copy with too little
    # left is rejected (by design). Anything else (timeouts, broken JSON) would be a plumbing failure.
    assert summary["rows"] + summary["rejects"] == 3 and summary["rows"] >= 1
    assert all(r.startswith("LLM copy failed: copy rejected") for r in rejects["reason"])
    assert sorted(table["image"].to_list() + rejects["image"].to_list()) == ["green.jpg", "navy.jpg", "red.jpg"]
    colors = dict(zip(table["image"], table["color"]))
    assert all(colors[f"{c}.jpg"] == c for c in ("green", "navy", "red") if f"{c}.jpg" in colors)  # from the pixels
    assert summary["llm_calls"] >= 3
    assert table["llm_model"][0] == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    quality = copy_quality(table, load_config(), name="embedded")
    assert quality["schema_valid"]["share"] == 1.0, quality["schema_valid"]
    assert quality["contradictions"]["rows"] == 0, quality["contradictions"]["rows_flagged"]
    # what the gate let through is grounded and well formed (repaired where it had to be)
    assert quality["ungrounded_claims"]["rows"] == 0, quality["ungrounded_claims"]["rows_flagged"]
    assert quality["form"]["truncated_fields"] == 0 and quality["form"]["rows"]["duplicate_tag"] == 0
    assert quality["form"]["other_script_rows"] == 0
    for row in table.iter_rows(named=True):
        assert 2 <= len(row["bullet_points"]) <= 6 and 3 <= len(row["seo_tags"]) <= 5
        assert 1 <= len(row["title"].split()) <= 12
