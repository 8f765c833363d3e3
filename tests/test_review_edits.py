"""Reviewer edits as the next run's facts: reading the edits file (errors name the line),
locking attribute values, which rows get new copy, and the review applied to the table."""

from __future__ import annotations

import polars as pl
import pytest

from catalog_intel.errors import FactsError
from catalog_intel.pipeline.review_edits import (ReviewPlan, apply_review, frozen_shas, load_plan, lock_attributes,
                                                 needs_copy, read_edits)
from catalog_intel.schemas import ATTRIBUTE_ORDER
from catalog_intel.settings import load_config

CONFIG = load_config()
IMAGES = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]


def _inventory():
    return pl.DataFrame({"image": IMAGES, "sha256": [f"s{i}" for i in IMAGES]})


def _attributes(color="black"):
    frame = {"sha256": [f"s{i}" for i in IMAGES]}
    for a in ATTRIBUTE_ORDER:
        frame[a] = [CONFIG.attributes[a].values[0]] * len(IMAGES)
        frame[f"{a}_confidence"] = [0.5] * len(IMAGES)
        frame[f"{a}_source"] = ["clip"] * len(IMAGES)
    frame["color"] = [color] * len(IMAGES)
    frame["conflicts"] = [["color: fact says red, clip says black (0.90)", "fit: fact says slim, clip says x (0.9)"]] \
        + [[]] * (len(IMAGES) - 1)
    return pl.DataFrame(frame)


def _previous():
    prev = _inventory().join(_attributes("white"), on="sha256").with_columns(
        pl.format("old title {}", pl.col("image")).alias("title"),
        pl.lit(["x", "y"]).alias("bullet_points"), pl.lit("old desc").alias("description"),
        pl.lit("old style").alias("style_summary"), pl.lit(["t1", "t2", "t3"]).alias("seo_tags"))
    return prev


def _edits(tmp_path):
    path = tmp_path / "edits.csv"
    path.write_text(
        "image,color,title,bullet_points,review_status,review_reason\n"
        "a.jpg,red,,,edited,\n"                       # attribute edited: copy regenerated
        "b.jpg,,My own title,one; two ,edited,\n"     # copy edited: kept as written
        "c.jpg,,,,approved,\n"                        # approved: never regenerated
        "d.jpg,,,,rejected,\"blurry, wrong item\"\n")  # rejected: to rejects.csv
    return path


def test_read_edits_parses_lists_and_blanks(tmp_path):
    supplier = tmp_path / "facts.csv"
    supplier.write_text("image,color,brand\na.jpg,red,Acme\n")
    assert load_plan(supplier, tmp_path) is None  # a supplier facts file is facts.py's alone
    edits = read_edits(_edits(tmp_path))
    rows = {r["image"]: r for r in edits.iter_rows(named=True)}
    assert rows["a.jpg"]["color"] == "red" and rows["a.jpg"]["title"] is None
    assert rows["b.jpg"]["bullet_points"] == ["one", "two"] and rows["b.jpg"]["color"] is None
    assert rows["d.jpg"]["review_reason"] == "blurry, wrong item"


@pytest.mark.parametrize("body, message", [
    ("image,review_status\na.jpg,approved\nb.jpg,ok\n",
     "line 3 (b.jpg): review_status 'ok' is not one of approved, edited, rejected"),
    ("product_id,title\np1,Nice top\n", "an edits file is keyed by 'image'"),
    ("img,color\na.jpg,red\n", "has no 'image' or 'product_id' column"),
    ("image,title\na.jpg,A\na.jpg,B\n", "image values occur more than once"),
])
def test_read_edits_errors_name_the_line_and_the_fix(tmp_path, body, message):
    path = tmp_path / "edits.csv"
    path.write_text(body)
    with pytest.raises(FactsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_edits(path)


def test_review_plan_locks_regenerates_keeps_and_rejects(tmp_path):
    plan = ReviewPlan(read_edits(_edits(tmp_path)), _previous())
    locked = lock_attributes(_attributes("black"), _inventory(), plan, CONFIG)
    colors = dict(zip(locked["sha256"], locked["color"]))
    # edited -> the edit; approved/edited rows keep what the reviewer saw (previous: white); others: the model's
    assert colors == {"sa.jpg": "red", "sb.jpg": "white", "sc.jpg": "white", "sd.jpg": "black", "se.jpg": "black"}
    assert dict(zip(locked["sha256"], locked["color_confidence"]))["sa.jpg"] == 1.0
    assert dict(zip(locked["sha256"], locked["color_source"])) == {
        "sa.jpg": "facts", "sb.jpg": "facts", "sc.jpg": "facts", "sd.jpg": "clip", "se.jpg": "clip"}
    # the reviewer settled a's colour (and its fit, by keeping it): no conflicts left
    assert locked["conflicts"].to_list()[0] == []
    assert sorted(frozen_shas(_inventory(), plan)) == ["sb.jpg", "sc.jpg", "sd.jpg"]
    assert needs_copy(locked, _inventory(), plan)["sha256"].to_list() == ["sa.jpg", "se.jpg"]

    fresh = _inventory().join(locked, on="sha256").with_columns(
        pl.when(pl.col("image").is_in(["a.jpg", "e.jpg"])).then(pl.format("new title {}", pl.col("image")))
        .alias("title"),
        pl.lit(None, pl.List(pl.Utf8)).alias("bullet_points"), pl.lit(None, pl.Utf8).alias("description"),
        pl.lit(None, pl.Utf8).alias("style_summary"), pl.lit(None, pl.List(pl.Utf8)).alias("seo_tags"),
        pl.lit(None, pl.Utf8).alias("copy_error"))
    table, rejects = apply_review(fresh, plan)
    rows = {r["image"]: r for r in table.iter_rows(named=True)}
    assert rows["a.jpg"]["title"] == "new title a.jpg"  # attributes changed: new copy
    assert rows["b.jpg"]["title"] == "My own title" and rows["b.jpg"]["bullet_points"] == ["one", "two"]
    assert rows["b.jpg"]["description"] == "old desc"  # unedited fields of edited copy: as before
    assert rows["c.jpg"]["title"] == "old title c.jpg" and rows["c.jpg"]["seo_tags"] == ["t1", "t2", "t3"]
    assert rows["e.jpg"]["title"] == "new title e.jpg" and rows["e.jpg"]["review_status"] is None
    assert [rows[i]["review_status"] for i in IMAGES[:4]] == ["edited", "edited", "approved", "rejected"]
    assert rejects.rows() == [("d.jpg", "rejected by reviewer: blurry, wrong item")]
