import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import polars as pl
import pytest

from catalog_intel.errors import EvaluationError
from catalog_intel.exports.tables import write_outputs
from catalog_intel.quality.evaluate import (calibrate, calibration_toml, evaluate, format_report, load_labels, load_predictions, score)
from catalog_intel.settings import load_config

REPO = Path(__file__).resolve().parents[1]
ATTRS = ["color", "neckline", "sleeve", "pattern", "fabric", "fit", "garment_type"]


def test_score_accuracy_coverage_macro_f1_and_confusion():
    r = score(["a", "a", "b", "b", "c"], ["a", "b", "b", "unknown", "c"], class_order=("c", "b", "a"))
    assert r["support"] == 5 and r["correct"] == 3
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["coverage"] == pytest.approx(4 / 5)
    assert r["accuracy_covered"] == pytest.approx(3 / 4)
    # a: P 1/1 R 1/2 F1 2/3; b: P 1/2 R 1/2 F1 1/2; c: F1 1
    assert r["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    assert r["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    conf = r["confusion"]
    assert conf["labels"] == ["c", "b", "a"]  # vocabulary order
    assert conf["predictions"] == ["c", "b", "a", "unknown"]
    assert conf["matrix"]["a"] == {"c": 0, "b": 1, "a": 1, "unknown": 0}
    assert conf["matrix"]["b"] == {"c": 0, "b": 1, "a": 0, "unknown": 1}


def test_score_counts_predictions_outside_the_label_classes_as_columns():
    r = score(["red", "red"], ["navy", None])  # None = missing prediction = unknown
    assert r["accuracy"] == 0 and r["coverage"] == pytest.approx(0.5) and r["accuracy_covered"] == 0
    assert r["confusion"]["matrix"] == {"red": {"navy": 1, "red": 0, "unknown": 1}}
    assert r["macro_f1"] == 0


def _preds(rows: list[dict]) -> pl.DataFrame:
    full = []
    for r in rows:
        row = {a: "unknown" for a in ATTRS}
        row.update({f"{a}_confidence": 0.9 for a in ATTRS})
        row.update(r)
        full.append(row)
    return pl.DataFrame(full)


LABELS = pl.DataFrame({
    "file": ["images/1.jpg", "images/2.jpg", "images/3.jpg", "images/4.jpg", "images/5.jpg"],
    "category": ["long-sleeve top", "blouse", "t-shirt", "body", "shirt"],
    "color": ["red", "", "navy", "black", "white"],
    "pattern": ["solid", "embroidered", "embroidered", "solid", "striped"],
    "sleeve": ["long sleeve", "sleeveless (usually)", "short sleeve", None, "long sleeve"],
    "neckline": ["high/turtle neck", "v-neck", "", "", ""],
})


def test_evaluate_maps_label_values_skips_blanks_and_reports_gaps():
    pred = _preds([
        {"image": "run/1.jpg", "garment_type": "top", "color": "red", "pattern": "solid", "sleeve": "long sleeve",
         "neckline": "high neck"},
        {"image": "2.jpg", "garment_type": "shirt", "color": "white", "pattern": "solid", "sleeve": "sleeveless",
         "neckline": "v-neck"},
        {"image": "3.jpg", "garment_type": "t-shirt", "color": "unknown", "pattern": "printed",
         "sleeve": "short sleeve"},
        {"image": "4.jpg", "garment_type": "bodysuit", "color": "black", "pattern": "unknown"},
        {"image": "other.jpg", "garment_type": "top"},  # no label row
    ])
    cfg = load_config()
    res = evaluate(pred, LABELS, cfg.attributes)
    assert res["match"] == {"predictions": 5, "labels": 5, "matched": 4, "predictions_without_label": 1,
                            "labels_without_prediction": 1}
    g = res["attributes"]["garment_type"]
    assert g["label_column"] == "category" and g["support"] == 4 and g["correct"] == 3  # top, t-shirt, bodysuit
    assert g["aliases_applied"] == {"body": {"to": "bodysuit", "rows": 1}, "long-sleeve top": {"to": "top", "rows": 1}}
    assert g["confusion"]["matrix"]["blouse"]["shirt"] == 1
    c = res["attributes"]["color"]
    assert c["support"] == 3 and c["label_rows"]["blank"] == 1  # row 2 has a blank colour label
    assert c["accuracy"] == pytest.approx(2 / 3) and c["coverage"] == pytest.approx(2 / 3)
    assert c["accuracy_covered"] == 1.0 and c["confusion"]["matrix"]["navy"]["unknown"] == 1
    p = res["attributes"]["pattern"]
    assert p["support"] == 2 and p["label_rows"]["no_counterpart"] == 2
    assert p["no_counterpart"] == {"embroidered": {"rows": 2, "predicted": {"solid": 1, "printed": 1}}}
    s = res["attributes"]["sleeve"]
    assert s["support"] == 2 and s["label_rows"]["hedged"] == 1 and s["label_rows"]["blank"] == 1
    n = res["attributes"]["neckline"]
    assert n["support"] == 2 and n["accuracy"] == 1.0 and n["aliases_applied"]["high/turtle neck"]["to"] == "high neck"
    text = format_report(res)
    assert "label 'embroidered' has no counterpart (2 rows" in text
    assert "label 'high/turtle neck' scored as 'high neck'" in text


def test_csv_predictions_match_parquet_and_lack_garment_type(tmp_path):
    table = _preds([
        {"image": "images/1.jpg", "garment_type": "top", "color": "red", "pattern": "solid", "sleeve": "long sleeve"},
        {"image": "@5.jpg", "garment_type": "shirt", "color": "white", "pattern": "striped", "sleeve": "short sleeve"},
    ]).with_columns(sha256=pl.lit("0" * 64), product_id=pl.lit(None, dtype=pl.Utf8),
                    title=pl.lit("Red top"), bullet_points=pl.lit(["a", "b"]), description=pl.lit("d" * 12),
                    style_summary=pl.lit("s"), seo_tags=pl.lit(["x", "y", "z"]))
    labels = LABELS.with_columns(file=pl.Series(["images/1.jpg", "2.jpg", "3.jpg", "4.jpg", "x/@5.jpg"]))
    paths = write_outputs(table, pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8}), tmp_path)
    assert '\n"@5.jpg",' in Path(paths["catalog_csv"]).read_text()  # a key: quoted in the CSV, unchanged
    cfg = load_config()
    from_csv = evaluate(load_predictions(paths["catalog_csv"]), labels, cfg.attributes)
    from_parquet = evaluate(load_predictions(paths["catalog_parquet"]), labels, cfg.attributes)
    assert from_csv["match"]["matched"] == from_parquet["match"]["matched"] == 2
    assert "garment_type" not in from_csv["attributes"]
    assert "use catalog.parquet" in from_csv["skipped_attributes"]["garment_type"]
    assert from_parquet["attributes"]["garment_type"]["accuracy"] == 1.0
    for a in ("color", "pattern", "sleeve"):
        assert from_csv["attributes"][a] == from_parquet["attributes"][a]
    assert from_csv["attributes"]["sleeve"]["accuracy"] == pytest.approx(0.5)


def test_errors_name_the_file_and_the_fix(tmp_path):
    cfg = load_config()
    with pytest.raises(EvaluationError, match="predictions file not found: .*nope.parquet"):
        load_predictions(tmp_path / "nope.parquet")
    bad = tmp_path / "labels.csv"
    bad.write_text("path,color\na.jpg,red\n")
    with pytest.raises(EvaluationError, match=r"labels.csv: no 'file' column"):
        load_labels(bad)
    with pytest.raises(EvaluationError, match="no row of p.parquet matched l.csv by file name"):
        evaluate(_preds([{"image": "zzz.jpg"}]), LABELS, cfg.attributes, "p.parquet", "l.csv")
    dup = LABELS.with_columns(file=pl.Series(["a/1.jpg", "b/1.jpg", "3.jpg", "4.jpg", "5.jpg"]))
    with pytest.raises(EvaluationError, match=r"l.csv: 1 file names occur more than once.*1.jpg"):
        evaluate(_preds([{"image": "1.jpg"}]), dup, cfg.attributes, "p.parquet", "l.csv")


# Ten long-sleeve rows: the top value is right from the 3rd lowest confidence on, except the 4th.
CONFS = [0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 0.99]
HITS = [False, False, True, False, True, True, True, True, True, True]


def _calibration_frames(with_raw: bool, current: float = 0.4):
    raw = ["long sleeve" if h else "short sleeve" for h in HITS]
    pred = pl.DataFrame({
        "image": [f"{i}.jpg" for i in range(10)],
        "sleeve": [r if c >= current else "unknown" for r, c in zip(raw, CONFS)],
        "sleeve_confidence": CONFS,
    })
    if with_raw:
        pred = pred.with_columns(sleeve_raw=pl.Series(raw))
    labels = pl.DataFrame({"file": [f"images/{i}.jpg" for i in range(10)], "sleeve": ["long sleeve"] * 10})
    return pred, labels


def test_calibration_with_raw_values_finds_the_smallest_threshold():
    cfg = load_config(None, {"attributes.sleeve.min_confidence": 0.4})
    pred, labels = _calibration_frames(with_raw=True)
    cal = calibrate(pred, labels, cfg.attributes, target=0.85, min_covered=5)
    s = cal["attributes"]["sleeve"]
    assert s["basis"] == "raw" and s["lowest_threshold_tried"] == 0.0
    # >= 0.26 covers 8 rows, 7 right (0.875); >= 0.16 covers 9 rows, 7 right (0.78)
    assert s["proposed"]["min_confidence"] == pytest.approx(0.26)
    assert s["proposed"]["covered"] == 8 and s["proposed"]["accuracy_covered"] == pytest.approx(7 / 8)
    assert s["at_current"]["accuracy_covered"] == pytest.approx(6 / 7)
    assert calibrate(pred, labels, cfg.attributes, 0.9, min_covered=5)["attributes"]["sleeve"]["proposed"][
        "min_confidence"] == pytest.approx(0.46)
    none = calibrate(pred, labels, cfg.attributes, 0.99, min_covered=7)["attributes"]["sleeve"]
    assert none["proposed"] is None and none["best"]["accuracy_covered"] == pytest.approx(7 / 8)  # at 0.26


def test_calibration_without_raw_only_tries_thresholds_above_the_abstentions():
    cfg = load_config(None, {"attributes.sleeve.min_confidence": 0.4})
    pred, labels = _calibration_frames(with_raw=False)
    cal = calibrate(pred, labels, cfg.attributes, target=0.85, min_covered=5)
    s = cal["attributes"]["sleeve"]
    assert s["basis"].startswith("published values only")
    assert s["lowest_threshold_tried"] == pytest.approx(0.36)  # above the highest abstained confidence, 0.35
    assert s["proposed"]["min_confidence"] == pytest.approx(0.36)
    assert s["proposed"]["covered"] == 7 and s["proposed"]["coverage"] == pytest.approx(0.7)
    snippet = calibration_toml(cal, "l.csv")
    parsed = tomllib.loads(snippet)
    assert parsed == {"attributes": {"sleeve": {"min_confidence": 0.36}}}
    assert "no sleeve_raw" in snippet
    assert load_config(None, parsed).attributes["sleeve"].min_confidence == 0.36  # pastes into a config


def test_calibration_needs_confidences():
    cfg = load_config()
    pred, labels = _calibration_frames(with_raw=False)
    cal = calibrate(pred.drop("sleeve_confidence"), labels, cfg.attributes, 0.9)
    assert "calibration needs the confidences of catalog.parquet" in cal["skipped_attributes"]["sleeve"]
    with pytest.raises(EvaluationError, match="target-precision"):
        calibrate(pred, labels, cfg.attributes, 1.5)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "catalog_intel.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_evaluate_writes_json_and_toml(tmp_path):
    pred, labels = _calibration_frames(with_raw=True, current=0.0)
    pred.write_parquet(tmp_path / "catalog.parquet")
    labels.write_csv(tmp_path / "labels.csv")
    out = tmp_path / "eval.json"
    proc = _cli("evaluate", "--pred", str(tmp_path / "catalog.parquet"), "--labels", str(tmp_path / "labels.csv"),
                "--json", str(out), "--calibrate", "--target-precision", "0.85", "--min-covered", "5")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["match"]["matched"] == 10
    s = res["attributes"]["sleeve"]
    assert s["support"] == 10 and s["accuracy"] == pytest.approx(0.7) and s["coverage"] == 1.0
    assert s["confusion"]["matrix"]["long sleeve"] == {"long sleeve": 7, "short sleeve": 3, "unknown": 0}
    assert res["calibration"]["attributes"]["sleeve"]["proposed"]["min_confidence"] == pytest.approx(0.26)
    assert "[attributes.sleeve]\nmin_confidence = 0.26" in proc.stdout
    assert "color" in res["skipped_attributes"]  # the labels have no colour column

    bad = _cli("evaluate", "--pred", str(tmp_path / "missing.parquet"), "--labels", str(tmp_path / "labels.csv"))
    assert bad.returncode == 2 and "missing.parquet" in bad.stderr and "Traceback" not in bad.stderr
