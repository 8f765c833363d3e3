"""A supplier column named like an output column (title, description, color_confidence, run_id...)
is kept as supplier_<name>: it never takes the generated column's place."""

from __future__ import annotations

import csv
import json
import logging

import polars as pl
import pytest
from PIL import Image

from catalog_intel.settings import load_config
from catalog_intel.errors import FactsError
from catalog_intel.pipeline.facts import is_generated_column, split_facts
from conftest import run_catalog

SUPPLIER_TITLE = "SUPPLIER TITLE 123 do not publish"
SUPPLIER_DESCRIPTION = "Supplier text: organic cotton jersey from the Porto mill"


def test_manifest_and_facts_file_columns_named_like_outputs_are_renamed(tmp_path, caplog):
    inventory = pl.DataFrame({"image": ["a.jpg"], "path": ["/x/a.jpg"], "product_id": ["1"], "sha256": ["s1"],
                              "title": [SUPPLIER_TITLE], "color_confidence": ["0.99"], "color": ["red"],
                              "brand": ["Acme"]})
    facts_file = tmp_path / "facts.csv"
    pl.DataFrame({"image": ["a.jpg"], "run_id": ["theirs"], "seo_tags": ["x; y"]}).write_csv(facts_file)
    with caplog.at_level(logging.WARNING, logger="catalog_intel.pipeline.facts"):
        renamed, facts = split_facts(inventory, load_config(), str(facts_file))
    assert renamed.columns == ["image", "path", "product_id", "sha256", "supplier_title", "supplier_color_confidence",
                               "color_fact", "brand", "supplier_run_id", "supplier_seo_tags"]
    assert renamed["supplier_title"].to_list() == [SUPPLIER_TITLE] and facts["color_fact"].to_list() == ["red"]
    assert [r.getMessage() for r in caplog.records] == [
        "input columns named like output columns kept as title -> supplier_title, color_confidence -> "
        "supplier_color_confidence, run_id -> supplier_run_id, seo_tags -> supplier_seo_tags (list one in "
        "facts.free_text to give it to the copy as a fact)"]
    clash = inventory.with_columns(pl.lit("x").alias("supplier_title"))
    with pytest.raises(FactsError, match="supplier_title"):
        split_facts(clash, load_config())


def test_every_column_the_pipeline_generates_counts_as_generated(catalog_run):
    """Guards the list against new output columns: each generated column of a real run's catalog.parquet."""
    table = pl.read_parquet(catalog_run.out / "catalog.parquet")
    inputs = {"image", "path", "product_id", "sha256"}
    attributes = set(load_config().attributes)
    missing = [c for c in table.columns if c not in inputs | attributes and not is_generated_column(c)]
    assert missing == []


@pytest.mark.slow
def test_supplier_title_description_and_confidence_never_published_as_generated(prefect_server, tmp_path, cache_dir,
                                                                                 config_file, fake_llm):
    src = tmp_path / "src"
    src.mkdir()
    names = [f"p{k}.png" for k in range(4)]
    for k, name in enumerate(names):
        Image.new("RGB", (64, 80), (60 * k, 200 - 40 * k, 90)).save(src / name)
    pl.DataFrame({"image": names, "title": [SUPPLIER_TITLE] * 4, "description": [SUPPLIER_DESCRIPTION] * 4,
                  "color_confidence": ["not a number"] * 4}).write_csv(src / "manifest.csv")
    config = tmp_path / "with-free-text.toml"
    config.write_text(config_file.read_text() + '[facts]\nfree_text = ["supplier_description"]\n')

    summary = run_catalog(src / "manifest.csv", tmp_path / "out", config, cache_dir, llm_base_url=fake_llm.base_url)

    assert (summary["rows"], summary["rejects"]) == (4, 0)
    table = pl.read_parquet(tmp_path / "out" / "catalog.parquet")
    assert not [c for c in table.columns if c.endswith("_right")]
    assert table.schema["color_confidence"] in (pl.Float32, pl.Float64)  # the model's, not the supplier's text
    assert all(0.0 <= c <= 1.0 for c in table["color_confidence"].to_list())
    assert table["supplier_title"].to_list() == [SUPPLIER_TITLE] * 4
    assert table["supplier_color_confidence"].to_list() == ["not a number"] * 4
    assert all(t and t != SUPPLIER_TITLE for t in table["title"].to_list())
    assert all(d and d != SUPPLIER_DESCRIPTION for d in table["description"].to_list())
    with open(tmp_path / "out" / "catalog.csv", newline="") as fh:
        published = fh.read()
    assert SUPPLIER_TITLE not in published and SUPPLIER_DESCRIPTION not in published
    rows = list(csv.DictReader(published.splitlines()))
    assert [r["title"] for r in rows] == table.sort("image")["title"].to_list()
    # The supplier's description reached the LLM as a fact (facts.free_text names supplier_description).
    asked = [json.loads(r["body"]["messages"][-1]["content"].split("(JSON):\n", 1)[1]) for r in fake_llm.request_log]
    assert any(a.get("facts", {}).get("supplier_description") == SUPPLIER_DESCRIPTION for a in asked)
