"""Catalog facts: supplier values merged over the model attributes, with a policy, conflicts,
synonyms, free facts for the copy, sources and completeness."""

import json

import polars as pl
import pytest

from catalog_intel.schemas import ATTRIBUTE_ORDER
from catalog_intel.settings import load_config
from catalog_intel.errors import FactsError
from catalog_intel.pipeline.facts import (completeness, merge_facts, normalise, read_facts_file, split_facts, unmapped_facts)
from conftest import make_source, run_catalog


def _model(rows):
    """Model attributes as classify gives them: value (or unknown) and confidence per attribute."""
    out = []
    for sha, values in rows:
        r = {"sha256": sha}
        for a in ATTRIBUTE_ORDER:
            v, c = values.get(a, ("unknown", 0.1))
            r[a], r[f"{a}_confidence"] = v, c
        out.append(r)
    return pl.DataFrame(out)


INVENTORY = pl.DataFrame({
    "image": ["a.jpg", "b.jpg", "c.jpg"], "path": ["/x/a.jpg", "/x/b.jpg", "/x/c.jpg"],
    "product_id": ["1", "2", "3"], "sha256": ["s1", "s2", "s3"],
    "color": ["Dark Blue", "", "red"], "sleeve": ["long sleeve", None, None],
    "fabric": ["sweatshirt fabric", None, None], "garment_type": ["long-sleeve top", "tee", None],
    "material": ["95% cotton, 5% elastane", None, ""], "brand": ["Acme", None, None],
})
MODEL = _model([
    ("s1", {"color": ("red", 0.93), "sleeve": ("long sleeve", 0.9), "neckline": ("v-neck", 0.7)}),
    ("s2", {"color": ("green", 0.6), "garment_type": ("top", 0.5)}),
    ("s3", {"color": ("pink", 0.5)}),
])


def test_facts_win_model_fills_blanks_conflicts_flagged_and_sources_recorded():
    config = load_config()
    inventory, facts = split_facts(INVENTORY, config)
    assert "color" not in inventory.columns and inventory["color_fact"].to_list() == ["Dark Blue", "", "red"]
    out = merge_facts(MODEL, facts, config).sort("sha256")
    rows = {r["sha256"]: r for r in out.to_dicts()}
    # facts win (synonyms mapped: "Dark Blue" -> navy, "long-sleeve top" -> top, "tee" -> t-shirt)
    assert (rows["s1"]["color"], rows["s1"]["color_source"], rows["s1"]["color_confidence"]) == ("navy", "facts", 1.0)
    assert rows["s1"]["garment_type"] == "top" and rows["s2"]["garment_type"] == "t-shirt"
    assert rows["s3"]["color"] == "red" and rows["s3"]["color_source"] == "facts"
    # the model fills the blanks; an abstention has no source
    assert (rows["s2"]["color"], rows["s2"]["color_source"]) == ("green", "ensemble")
    assert (rows["s1"]["neckline"], rows["s1"]["neckline_source"]) == ("v-neck", "clip")
    assert rows["s2"]["neckline"] == "unknown" and rows["s2"]["neckline_source"] is None
    # a confident model that disagrees: a conflict (red at 0.93 >= 0.8); a weak one does not (pink 0.5 vs red)
    assert rows["s1"]["conflicts"] == ["color: fact says navy, ensemble says red (0.93)"]
    assert rows["s2"]["conflicts"] == [] and rows["s3"]["conflicts"] == []
    # an unmappable value is kept as a free fact for the copy, with the free-text columns; blanks are no fact
    assert rows["s1"]["fabric"] == "unknown"
    assert json.loads(rows["s1"]["facts_json"]) == {"brand": "Acme", "fabric": "sweatshirt fabric",
                                                    "material": "95% cotton, 5% elastane"}
    assert rows["s2"]["facts_json"] is None and rows["s3"]["facts_json"] is None
    assert unmapped_facts(inventory, config) == {"fabric": {"sweatshirt fabric": 1}}


def test_policies():
    base = load_config()
    _, facts = split_facts(INVENTORY, base)

    def merged(policy):
        cfg = load_config(overrides={"facts.policy": {"color": policy}})
        return {r["sha256"]: r for r in merge_facts(MODEL, facts, cfg).to_dicts()}

    trust_model = merged("trust_model")
    assert trust_model["s1"]["color"] == "red" and trust_model["s1"]["conflicts"] == [
        "color: fact says navy, ensemble says red (0.93)"]
    flag_only = merged("flag_only")
    assert flag_only["s1"]["color"] == "red" and flag_only["s3"]["color"] == "pink"
    assert trust_model["s3"]["color"] == "pink"  # the model knows: its value stands
    unknown_model = _model([("s3", {})])
    assert merge_facts(unknown_model, facts, load_config(overrides={"facts.policy": {"color": "trust_model"}})
                       )["color"].to_list() == ["red"]  # ... a fact fills what it left unknown
    assert merge_facts(unknown_model, facts, load_config(overrides={"facts.policy": {"color": "flag_only"}})
                       )["color"].to_list() == ["unknown"]


def test_synonyms_from_config_and_phrases():
    config = load_config(overrides={"facts.synonyms": {"color": {"Bordeaux": "red"}}})
    assert normalise("  BORDEAUX ", "color", config) == "red"
    assert normalise("Off White", "color", config) == "white"  # the packaged table is kept
    assert normalise("navy blue", "color", config) == "navy"
    assert normalise("high/turtle neck", "neckline", config) == "high neck"
    assert normalise("tartan-ish", "pattern", config) is None


def test_completeness_in_and_out():
    config = load_config()
    inventory, facts = split_facts(INVENTORY, config)
    table = merge_facts(MODEL, facts, config)
    figures = completeness(inventory, table, config)
    assert figures["color"] == {"input": pytest.approx(2 / 3), "output": 1.0}
    assert figures["sleeve"] == {"input": pytest.approx(1 / 3), "output": pytest.approx(1 / 3)}
    assert figures["fabric"] == {"input": 0.0, "output": 0.0}  # unmappable: not counted as known
    assert figures["garment_type"] == {"input": pytest.approx(2 / 3), "output": pytest.approx(2 / 3)}
    assert figures["neckline"] == {"input": 0.0, "output": pytest.approx(1 / 3)}


def test_facts_file_overrides_manifest_cells_and_is_checked(tmp_path):
    config = load_config()
    path = tmp_path / "facts.csv"
    pl.DataFrame({"image": ["b.jpg", "c.jpg"], "color": ["Off White", ""], "care": ["hand wash", None]}).write_csv(path)
    inventory, facts = split_facts(INVENTORY, config, str(path))
    by = {r["sha256"]: r for r in facts.to_dicts()}
    assert by["s2"]["color_fact"] == "Off White" and by["s2"]["care"] == "hand wash"
    assert by["s3"]["color_fact"] == "red"  # a blank cell in the file keeps the manifest's value
    (tmp_path / "bad.csv").write_text("sku,color\n1,red\n")
    with pytest.raises(FactsError, match="bad.csv has no 'image' or 'product_id' column"):
        read_facts_file(tmp_path / "bad.csv")
    with pytest.raises(FactsError, match="facts file not found"):
        read_facts_file(tmp_path / "none.csv")


def test_manifest_facts_through_the_flow(prefect_server, tmp_path, cache_dir, config_file, fake_llm):
    """16 products with some fact cells blank: every one becomes a row (a blank is no fact), the
    facts are published with their source, free facts reach the LLM, completeness is reported."""
    src = make_source(tmp_path / "src", 16)
    images = sorted(src.iterdir())
    colors = ["Dark Blue", "", "red", "black"] * 4
    sleeves = ["long sleeve", "", "", "short sleeve"] * 4
    pl.DataFrame({"image": [p.name for p in images], "color": colors, "sleeve": sleeves,
                  "neckline": ["", "v-neck", "", ""] * 4, "garment_type": ["long-sleeve top"] * 16,
                  "material": ["100% cotton", "", "", ""] * 4}).write_csv(src / "manifest.csv")
    facts = tmp_path / "facts.csv"
    pl.DataFrame({"image": [images[1].name], "color": ["Off White"], "care": ["hand wash"]}).write_csv(facts)
    summary = run_catalog(src / "manifest.csv", tmp_path / "out", config_file, cache_dir,
                          llm_base_url=fake_llm.base_url, facts=str(facts))
    assert summary["rows"] == 16 and summary["rejects"] == 0
    table = pl.read_parquet(tmp_path / "out" / "catalog.parquet").sort("image")
    by = {r["image"]: r for r in table.to_dicts()}
    first, second = by[images[0].name], by[images[1].name]
    assert (first["color"], first["color_source"], first["color_fact"]) == ("navy", "facts", "Dark Blue")
    assert (second["color"], second["color_source"]) == ("white", "facts")  # from the --facts file
    assert first["garment_type_source"] == "facts" and first["garment_type"] == "top"
    assert second["neckline"] == "v-neck" and first["neckline_source"] in ("clip", None)
    assert all(s in ("facts", "clip", "ensemble", None) for s in table["sleeve_source"].to_list())
    assert "conflicts" in table.columns and first["material"] == "100% cotton"
    asked = [json.loads(r["body"]["messages"][-1]["content"].split("(JSON):\n", 1)[1]) for r in fake_llm.request_log]
    assert any(a.get("facts", {}).get("material") == "100% cotton" for a in asked)
    assert any(a.get("facts", {}).get("care") == "hand wash" for a in asked)
    assert summary["completeness"]["color"] == {"input": pytest.approx(13 / 16), "output": 1.0}
    assert summary["completeness"]["sleeve"]["input"] == pytest.approx(8 / 16)


def test_conflicts_flag_the_row_for_review():
    from catalog_intel.report.render import review_rows

    config = load_config()
    row = {"image": "a.jpg", **{a: config.attributes[a].values[0] for a in ATTRIBUTE_ORDER},
           **{f"{a}_confidence": 0.99 for a in ATTRIBUTE_ORDER}, "copy_warnings": [], "copy_error": None, "title": "T"}
    table = pl.DataFrame([{**row, "conflicts": ["color: fact says navy, clip says red (0.93)"]},
                          {**row, "image": "b.jpg", "conflicts": []}])
    review = review_rows(table, pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8}), config, True)
    assert dict(zip(review["image"], review["needs_review"])) == {"a.jpg": True, "b.jpg": False}
