import csv

import polars as pl

from catalog_intel.exports.tables import csv_view, write_outputs
from catalog_intel.quality.validation import validate
from catalog_intel.schemas import CSV_COLUMNS
from catalog_intel.settings import load_config

ATTRS = ["color", "neckline", "sleeve", "pattern", "fabric", "fit", "garment_type"]


def _table(n=4, overrides=None):
    cfg = load_config()
    rows = []
    for i in range(n):
        row = {"image": f"img{i}.jpg", "sha256": f"{i:064d}", "product_id": None}
        for a in ATTRS:
            row[a] = cfg.attributes[a].values[0]
            row[f"{a}_confidence"] = 0.9
            row[f"{a}_margin"] = 0.5
        row.update(title="Black Round Neck Top", bullet_points=["Black", "Round neck"],
                   description="A black top with a round neck.", style_summary="Simple.",
                   seo_tags=["black top", "round neck top", "women top"])
        rows.append(row)
    for (i, key), value in (overrides or {}).items():
        rows[i][key] = value
    return pl.DataFrame(rows)


def test_csv_has_the_original_columns_and_neutralises_formulas(tmp_path):
    table = _table(3, {(0, "title"): "=HYPERLINK(\"http://x\")", (1, "description"): "-5 % off", (1, "image"): "@a.jpg",
                       (2, "image"): 'sub dir/tröja, "röd" 👚.jpg', (2, "style_summary"): "  \t=1+1"})
    paths = write_outputs(table, pl.DataFrame({"image": ["+bad.jpg"], "reason": ["empty file (0 bytes)"]}), tmp_path)
    rows = list(csv.reader(open(paths["catalog_csv"], newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1][7] == "'=HYPERLINK(\"http://x\")"
    assert rows[2][9] == "'-5 % off"
    assert rows[3][10] == "'  \t=1+1"  # leading whitespace does not hide a formula
    assert rows[2][0] == "@a.jpg" and '\n"@a.jpg",' in open(paths["catalog_csv"]).read()  # a key: quoted, unchanged
    assert rows[3][0] == 'sub dir/tröja, "röd" 👚.jpg' and len(rows) == 4  # quoted, not split
    assert rows[1][8] == "Black; Round neck" and rows[1][11] == "black top; round neck top; women top"
    assert list(csv.reader(open(paths["rejects_csv"]))) == [["image", "reason"], ["+bad.jpg", "empty file (0 bytes)"]]
    assert open(paths["rejects_csv"]).read() == '"image","reason"\n"+bad.jpg","empty file (0 bytes)"\n'
    back = pl.read_parquet(paths["catalog_parquet"])
    assert back["title"][0] == "=HYPERLINK(\"http://x\")"  # Parquet keeps the raw value
    assert back["bullet_points"].to_list()[0] == ["Black", "Round neck"]


def test_csv_view_handles_rows_without_copy():
    table = _table(1).with_columns(pl.lit(None, dtype=pl.List(pl.Utf8)).alias("bullet_points"),
                                   pl.lit(None, dtype=pl.Utf8).alias("title"))
    view = csv_view(table)
    assert view.columns == list(CSV_COLUMNS) and view["bullet_points"][0] is None


def test_validation_rejects_rows_with_reasons_and_writes_docs(tmp_path):
    cfg = load_config()
    table = _table(6, {
        (1, "color"): "chartreuse",
        (2, "title"): " ".join(["word"] * 13),
        (3, "seo_tags"): ["one"],
        (4, "sleeve_confidence"): 1.5,
        (5, "image"): "img0.jpg",
    })
    summary, rejects = validate(table, cfg, with_copy=True, out_dir=tmp_path)
    reasons = dict(zip(rejects["image"], rejects["reason"]))
    assert summary["success"] is False and summary["rows_failing"] == 6  # both img0.jpg rows fail uniqueness
    assert reasons["img1.jpg"] == "color value is outside the vocabulary"
    assert reasons["img2.jpg"] == "title is empty or longer than 12 words"
    assert reasons["img3.jpg"] == "needs 2-5 SEO tags"
    assert reasons["img4.jpg"] == "sleeve_confidence is outside [0, 1]"
    assert reasons["img0.jpg"] == "image id is not unique"  # both rows named img0.jpg
    assert (tmp_path / "validation_result.json").is_file()
    html = (tmp_path / "data_docs" / "index.html").read_text()
    assert "static/vendor/bootstrap/bootstrap.min.css" in html and "bootstrapcdn" not in html


def test_validation_without_copy_skips_copy_checks(tmp_path):
    cfg = load_config()
    table = _table(3).drop("title", "bullet_points", "description", "style_summary", "seo_tags")
    summary, rejects = validate(table, cfg, with_copy=False, out_dir=tmp_path)
    assert summary["success"] is True and rejects.height == 0
    assert summary["evaluated_expectations"] == summary["successful_expectations"] > 30


def test_a_neutralised_csv_reads_back_as_written(tmp_path):
    from catalog_intel.io.csv_cells import restore_formulas
    from catalog_intel.quality.evaluate import load_predictions

    table = _table(2, {(0, "title"): " =SUM(A1)", (1, "description"): "- soft cotton", (1, "image"): "=b.jpg"})
    paths = write_outputs(table, pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8}), tmp_path)
    back = load_predictions(paths["catalog_csv"]).sort("image")
    assert back["image"].to_list() == ["=b.jpg", "img0.jpg"]
    assert back["title"][1] == " =SUM(A1)" and back["description"][0] == "- soft cotton"
    assert restore_formulas(pl.DataFrame({"x": ["'it's", "'@x"]}))["x"].to_list() == ["'it's", "@x"]
