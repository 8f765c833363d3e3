import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from catalog_intel.errors import CopyQualityError
from catalog_intel.exports.tables import write_outputs
from catalog_intel.quality.copy_quality import (assess_file, build_terms, contradictions, copy_quality, load_output, split_list_cell)
from catalog_intel.settings import load_config

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "data" / "seed-samples" / "reference_output.csv"


@pytest.fixture(scope="module")
def terms():
    return build_terms(load_config())


def _row(**kw) -> dict:
    row = {"image": "a.jpg", "color": "red", "sleeve": "long sleeve", "pattern": "solid", "garment_type": "blouse",
           "title": "Red Long-Sleeved Blouse", "bullet_points": ["Long sleeves", "Soft woven fabric"],
           "description": "A red blouse with long sleeves. Pair it with white jeans or a black skirt.",
           "style_summary": "An easy red blouse for the office.",
           "seo_tags": ["red blouse", "long sleeve blouse", "women's top"]}
    row.update(kw)
    return row


def test_consistent_copy_is_not_flagged(terms):
    assert contradictions(_row(), terms) == []  # "white jeans", "black skirt" are styling suggestions


def test_other_colour_is_flagged_with_the_reason(terms):
    reasons = contradictions(_row(title="Navy Blouse with Long Sleeves"), terms)
    assert reasons == ["colour: says navy (title: 'Navy'), row colour is red"]
    # "navy blue" is one colour (navy), and navy is a shade of blue: no contradiction for a blue row
    assert contradictions(_row(color="blue", title="Navy blue blouse", description="A blue blouse.",
                               style_summary="Blue.", seo_tags=["blue blouse", "navy blouse", "top"]), terms) == []


def test_mens_and_unisex_are_flagged(terms):
    assert contradictions(_row(style_summary="A classic men's shirt-style blouse."), terms) == [
        "gender: says 'men's' (style_summary) for a women's item"]
    assert contradictions(_row(seo_tags=["red blouse", "unisex top", "blouse"]), terms)[0].startswith(
        "gender: says 'unisex' (seo_tags)")
    assert contradictions(_row(description="Red blouse, long sleeves, for women and men."), terms)
    assert contradictions(_row(description="Red blouse with long sleeves; menswear-inspired cut."), terms) == []
    assert contradictions(_row(gender="unisex", style_summary="Unisex blouse."), terms) == []


def test_sleeve_and_garment_contradictions(terms):
    assert contradictions(_row(bullet_points=["Short-sleeved", "Soft"]), terms) == [
        "sleeve: says short sleeve (bullet_points: 'Short-sleeved'), row sleeve is long sleeve"]
    # longest match first: a t-shirt is not a shirt, a tank top not a top
    tee = _row(garment_type="t-shirt", title="Red long sleeve T-Shirt", style_summary="A red tee.",
               seo_tags=["red t-shirt", "long sleeve tee", "women's top"])
    assert contradictions(tee, terms) == []
    assert contradictions(_row(garment_type="sweater", title="Red long sleeve T-Shirt"), terms) == [
        "garment: says t-shirt (title: 'T-Shirt'), row garment type is sweater",
        "garment: says blouse (style_summary: 'blouse'), row garment type is sweater",
    ]
    # blouse/shirt are compatible; "top" is generic; a dress is never a top; "dress it up" is a verb
    assert contradictions(_row(title="Red long sleeve shirt blouse"), terms) == []
    assert contradictions(_row(seo_tags=["red dresses", "blouse", "top"]), terms) == [
        "garment: says dress (seo_tags: 'dresses'), not a top"]
    assert contradictions(_row(style_summary="Easy to dress up or down."), terms) == []
    # without a garment type only non-top garments count
    assert contradictions(_row(garment_type=None, title="Red long sleeve shirt"), terms) == []


def test_patterned_rows_may_name_their_other_colours(terms):
    striped = _row(color="white", pattern="striped", title="White Blouse with Navy Stripes",
                   description="A white long sleeve blouse.", style_summary="Crisp.", seo_tags=["white blouse", "a", "b"])
    assert contradictions(striped, terms) == []
    solid = {**striped, "pattern": "solid"}
    assert contradictions(solid, terms) == ["colour: says navy (title: 'Navy'), row colour is white"]
    no_ground = {**striped, "title": "Navy Striped Blouse", "description": "Long sleeves.",
                 "seo_tags": ["striped blouse", "a", "b"]}
    assert contradictions(no_ground, terms) == ["colour: says navy (title: 'Navy'), row colour is white"]
    assert contradictions({**solid, "color": "unknown"}, terms) == []


def test_split_list_cell_reports_the_separator():
    assert split_list_cell("a; b; c") == (["a", "b", "c"], "; ")
    assert split_list_cell("a;b") == (["a", "b"], ";")
    assert split_list_cell("a, b") == (["a", "b"], ", ")
    assert split_list_cell("a,b,c") == (["a", "b", "c"], ",")
    assert split_list_cell("a; b, c") == (["a", "b, c"], "; and ,")
    assert split_list_cell("one tag") == (["one tag"], "none")
    assert split_list_cell(None) == (None, "empty")
    assert split_list_cell("a, b", "; ") == (["a, b"], "none")


def _table() -> pl.DataFrame:
    base = {"product_id": None, "neckline": "v-neck", "fabric": "cotton", "fit": "regular"}
    rows = [
        {**base, **_row(image="ok.jpg")},
        {**base, **_row(image="navy.jpg", title="Navy Blouse")},
        {**base, **_row(image="long.jpg", title="A Very Long Red Blouse Title That Goes On And On Past The Limit")},
        {**base, **_row(image="tags.jpg", seo_tags=["Red Blouse", "red blouse"])},
    ]
    return pl.DataFrame(rows).with_columns(sha256=pl.lit("0" * 64))


def test_parquet_and_csv_outputs_give_the_same_figures(tmp_path):
    paths = write_outputs(_table(), pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8}), tmp_path)
    cfg = load_config()
    pq, csv = assess_file(paths["catalog_parquet"], cfg), assess_file(paths["catalog_csv"], cfg)
    for res in (pq, csv):
        assert res["rows"] == 4 and res["rows_with_copy"] == 4
        assert res["schema_valid"]["rows"] == 2  # title over 12 words; 2 SEO tags
        assert res["schema_valid"]["problems"] == {
            # the two tags are one after de-duplication
            "title: over 12 words": 1, "seo_tags: List should have at least 2 items after validation, not 1": 1}
        assert res["contradictions"]["rows"] == 1 and res["contradictions"]["by_kind"]["colour"] == 1
        assert res["contradictions"]["rows_flagged"][0]["image"] == "navy.jpg"
        assert res["title_words"]["max"] == 14 and res["title_words"]["over_limit_share"] == pytest.approx(0.25)
        assert res["seo_tags"]["count_distribution"] == {"2": 1, "3": 3}
        assert res["seo_tags"]["within_range_share"] == pytest.approx(1.0)  # 2 tags are within 2-5
        assert res["seo_tags"]["all_lowercase_share"] == pytest.approx(0.75)
        assert res["seo_tags"]["no_duplicates_share"] == pytest.approx(0.75)
    assert pq["seo_tags"]["separators"] == {"native list": 4}
    assert csv["seo_tags"]["separators"] == {"; ": 4}


def test_reference_style_csv_with_mixed_separators(tmp_path):
    path = tmp_path / "ref.csv"
    pl.DataFrame({
        "image": ["1.jpg", "2.jpg", "3.jpg"], "color": ["black", "white", "pink"],
        "neckline": ["v-neck"] * 3, "sleeve": ["sleeveless", "long sleeve", "long sleeve"],
        "pattern": ["solid"] * 3, "fabric": ["silk"] * 3, "fit": ["slim"] * 3,
        "title": ["Black Silk Top", "White Top", "Pink Top"],
        "bullet_points": ["V-neck style; Silky feel", "V Neckline, White Color", "Pink"],
        "description": ["A black silk top without sleeves."] * 3,
        "style_summary": ["Slim men's shirt", "Slim top", "Slim top"],
        "seo_tags": ["black tops; silk; v-neck", "women,top,cotton,v-neck", "pink top"],
    }).write_csv(path)
    frame, seps = load_output(path)
    assert frame["bullet_points"].to_list()[1] == ["V Neckline", "White Color"]
    assert seps == {"bullet_points": {"; ": 1, ", ": 1, "none": 1}, "seo_tags": {"; ": 1, ",": 1, "none": 1}}
    res = copy_quality(frame, load_config(), separators=seps)
    assert res["schema_valid"]["rows"] == 2  # row 3: one bullet, one tag
    flagged = {f["image"]: f["reasons"] for f in res["contradictions"]["rows_flagged"]}
    # row 1: "men's"; rows 2 and 3 copy says "without sleeves" for a long-sleeve row
    assert flagged["1.jpg"] == ["gender: says 'men's' (style_summary) for a women's item"]
    assert flagged["2.jpg"][0].startswith("colour: says black") and any("sleeve: says sleeveless" in r for r in flagged["2.jpg"])
    with pytest.raises(CopyQualityError, match="copy columns missing"):
        pl.DataFrame({"image": ["a"]}).write_csv(tmp_path / "x.csv")
        load_output(tmp_path / "x.csv")


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"{REFERENCE} not present")
def test_original_tool_reference_figures():
    res = assess_file(REFERENCE, load_config())
    assert res["rows"] == 500 and res["rows_with_copy"] == 500
    assert res["schema_valid"]["rows"] == 489  # 11 rows with fewer than 2 SEO tags (37 have fewer than 3)
    assert res["seo_tags"]["separators"]["; "] > 300 and res["seo_tags"]["separators"][", "] > 100
    assert res["contradictions"]["rows"] == 106
    assert res["contradictions"]["by_kind"] == {"colour": 0, "sleeve": 3, "garment": 100, "gender": 5}
    assert res["title_words"]["max"] == 10 and res["title_words"]["over_limit_share"] == 0


def test_cli_copy_quality_side_by_side(tmp_path):
    paths = write_outputs(_table(), pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8}), tmp_path)
    out = tmp_path / "cq.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "copy-quality", paths["catalog_parquet"],
                           "--reference", paths["catalog_csv"], "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["output"]["schema_valid"]["share"] == pytest.approx(0.5)
    assert res["reference"]["contradictions"]["share"] == pytest.approx(0.25)
    header = proc.stdout.splitlines()[0]
    assert "catalog.parquet" in header and "catalog.csv" in header
    bad = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "copy-quality", str(tmp_path / "none.csv")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "none.csv" in bad.stderr


def test_grounding_and_form_figures():
    from catalog_intel.settings import load_config
    from catalog_intel.quality.copy_quality import copy_quality

    base = {"color": "black", "sleeve": "unknown", "fabric": "unknown", "garment_type": "top",
            "title": "Black Top", "bullet_points": ["Soft feel.", "Easy to wear."],
            "description": "A black top.", "style_summary": "Wear it to the office.",
            "seo_tags": ["black top", "women top", "office top"], "material": None}
    rows = [
        {**base, "image": "ok.jpg", "description": "A black top for work."},
        {**base, "image": "invented.jpg", "bullet_points": ["Long sleeves for warmth.", "Soft cotton feel."]},
        {**base, "image": "fact.jpg", "bullet_points": ["Soft cotton feel.", "Easy to wear."], "material": "cotton"},
        {**base, "image": "season.jpg", "style_summary": "Ideal for chilly evenings."},
        {**base, "image": "cut.jpg", "description": "A black top that adds a touch of style to an",
         "seo_tags": ["black top", "Black  top", "top"]},
        {**base, "image": "script.jpg", "style_summary": "Allows for a放松 look."},
    ]
    res = copy_quality(pl.DataFrame(rows), load_config())
    flagged = {r["image"]: r["reasons"] for r in res["ungrounded_claims"]["rows_flagged"]}
    assert sorted(flagged) == ["invented.jpg", "script.jpg", "season.jpg"]
    assert [r.split(":")[0] for r in flagged["invented.jpg"]] == ["sleeve", "fabric"]
    assert res["ungrounded_claims"]["by_kind"]["season"] == 1 and res["ungrounded_claims"]["by_kind"]["script"] == 1
    assert res["ungrounded_claims"]["free_fact_columns"] == ["material"]
    assert res["form"]["truncated_fields"] == 1 and res["form"]["rows"]["duplicate_tag"] == 1
    assert res["form"]["other_script_rows"] == 1
    assert res["form"]["duplicate_descriptions_share"] == pytest.approx(4 / 6)  # "A black top." x4


def test_the_suppliers_own_values_ground_claims():
    from catalog_intel.settings import load_config
    from catalog_intel.quality.copy_quality import copy_quality
    from catalog_intel.copywriting.copywriter import CatalogCopy

    row = {"image": "a.jpg", "color": "white", "pattern": "unknown", "pattern_fact": "embroidered",
           "garment_type": "t-shirt", "title": "White Embroidered T-Shirt", "bullet_points": ["Soft.", "Light."],
           "description": "A white embroidered t-shirt.", "style_summary": "Wear it with jeans.",
           "seo_tags": ["white t-shirt", "embroidered tee", "t-shirt"]}
    assert copy_quality(pl.DataFrame([row]), load_config())["ungrounded_claims"]["rows"] == 0
    assert copy_quality(pl.DataFrame([{**row, "pattern_fact": None}]), load_config())["ungrounded_claims"]["rows"] == 1
    # a title that echoes the prompt's field name is cleaned
    assert CatalogCopy(**{**{k: row[k] for k in ("bullet_points", "description", "style_summary", "seo_tags")},
                          "title": "Shop Name: White Tee"}).title == "White Tee"
