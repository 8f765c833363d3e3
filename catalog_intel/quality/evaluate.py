"""Attribute accuracy against a labelled image set, and abstention-threshold calibration.

Predictions are our ``catalog.parquet`` (or ``catalog.csv``); labels are a ``labels.csv``
of ``../shared/data/<set>/`` with a ``file`` column and the canonical label columns.
Rows are matched on the image *file name* (basename of ``file`` vs basename of
``image``).

Scoring rules (one place, so the numbers are reproducible):

* A label cell that is blank is "not known" and the row is skipped for that attribute.
* A label value is translated into our vocabulary by :data:`LABEL_VALUE_MAP` (explicit
  aliases), else used as is. :data:`HEDGED` label values are treated like blanks.
  A label value that then is not in the configured vocabulary has *no counterpart*: the
  row cannot be scored, is left out of every metric and listed under ``no_counterpart``
  with what we predicted for it (so a vocabulary gap is visible, not hidden).
* ``unknown`` (an abstention) or a missing prediction counts as wrong in ``accuracy``.
* ``coverage`` = share of scored rows whose prediction is not ``unknown``;
  ``accuracy_covered`` = accuracy on those rows (the precision of what we publish).
* ``macro_f1`` = mean over the label classes present in the scored rows of the per-class
  F1 (same as scikit-learn ``f1_score(y, p, labels=sorted(set(y)), average="macro")``);
  ``unknown`` predictions lower the recall of the true class.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from catalog_intel.errors import EvaluationError
from catalog_intel.io.csv_cells import restore_formulas
from catalog_intel.io.filesystem import read_table
from catalog_intel.schemas import UNKNOWN
from catalog_intel.settings import AttributeConfig

#: our attribute -> the label column that scores it
LABEL_COLUMNS: dict[str, str] = {
    "garment_type": "category",
    "color": "color",
    "pattern": "pattern",
    "sleeve": "sleeve",
    "neckline": "neckline",
}

#: Label value -> our vocabulary value, per attribute. Label values not listed here are used
#: as they are; what is then not in the vocabulary has no counterpart (see module doc).
#: Decisions:
#: * ``long-sleeve top`` (cc0-tops) is a jersey top with long sleeves -> our ``top``; its
#:   sleeve length is scored by the ``sleeve`` column, not by the garment type.
#: * ``body`` (cc0-tops) -> ``bodysuit``.
#: * ``high/turtle neck`` -> ``high neck`` (our value; its CLIP phrase is "high turtle neck").
#: * ``embroidered`` and ``colour block`` patterns have no counterpart in the default vocabulary.
LABEL_VALUE_MAP: dict[str, dict[str, str]] = {
    "garment_type": {"long-sleeve top": "top", "body": "bodysuit", "t shirt": "t-shirt", "tee": "t-shirt",
                     "polo": "polo shirt", "tank": "tank top", "jumper": "sweater"},
    "color": {"gray": "grey", "multi": "multicolor", "multicolour": "multicolor", "multi-color": "multicolor"},
    "pattern": {"plain": "solid", "stripes": "striped", "check": "checked", "dotted": "polka dot"},
    "sleeve": {},
    "neckline": {"high/turtle neck": "high neck", "turtle neck": "high neck", "turtleneck": "high neck",
                 "crew neck": "round neck", "hood": "hooded", "collar": "collared"},
}

#: Label values that are a guess, not an observation: cc0-tops' sleeve "(usually)" values are
#: implied by the garment category (tank top -> sleeveless, polo -> short sleeve). Treated as blank.
HEDGED: dict[str, frozenset[str]] = {
    "sleeve": frozenset({"sleeveless (usually)", "short sleeve (usually)", "long sleeve (usually)"}),
}


# --------------------------------------------------------------------------- IO


def load_predictions(path: str | os.PathLike) -> pl.DataFrame:
    """catalog.parquet or catalog.csv -> frame with an ``image`` column (CSV values as text,
    with the quote that ``export.neutralise_formulas`` prefixes to formula-like cells removed)."""
    p = Path(path)
    if not p.is_file():
        raise EvaluationError(f"predictions file not found: {p} (pass OUT_DIR/catalog.parquet or catalog.csv)")
    try:
        frame = read_table(str(p))
    except ValueError as exc:
        raise EvaluationError(f"{p}: predictions must be catalog.parquet or catalog.csv ({exc})") from None
    if "image" not in frame.columns:
        raise EvaluationError(f"{p}: no 'image' column (columns: {', '.join(frame.columns)}); "
                              "pass a catalog-intel output (catalog.parquet or catalog.csv)")
    if p.suffix.lower() != ".parquet":
        frame = restore_formulas(frame)
    return frame


def load_labels(path: str | os.PathLike) -> pl.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise EvaluationError(f"labels file not found: {p} (e.g. ../shared/data/hm-tops/labels.csv)")
    frame = pl.read_csv(p, infer_schema_length=0)
    if "file" not in frame.columns:
        raise EvaluationError(f"{p}: no 'file' column (columns: {', '.join(frame.columns)}); labels need "
                              "file plus at least one of " + ", ".join(sorted(set(LABEL_COLUMNS.values()))))
    if not set(LABEL_COLUMNS.values()) & set(frame.columns):
        raise EvaluationError(f"{p}: none of the label columns {sorted(set(LABEL_COLUMNS.values()))} is present")
    return frame


# --------------------------------------------------------------------------- matching


def _basename(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Utf8).str.replace(r"^.*[\\/]", "")


def _duplicates(keys: pl.Series) -> list[str]:
    counts = keys.value_counts()
    return counts.filter(pl.col("count") > 1).get_column(keys.name).sort().to_list()


def match_rows(pred: pl.DataFrame, labels: pl.DataFrame, pred_name: str = "predictions",
               labels_name: str = "labels", columns: dict[str, str] = LABEL_COLUMNS) -> tuple[pl.DataFrame, dict]:
    """Inner join on file name; returns the joined frame (label columns prefixed ``label_``)
    and the match counts. Duplicate file names (on either side of a match) are an error:
    matching by name would be ambiguous."""
    lab = labels.with_columns(_basename("file").alias("_key"))
    dup = _duplicates(lab["_key"])
    if dup:
        raise EvaluationError(f"{labels_name}: {len(dup)} file names occur more than once in 'file' "
                              f"(e.g. {dup[:3]}); matching is by file name, so each must be unique")
    prd = pred.with_columns(_basename("image").alias("_key"))
    label_cols = [c for c in set(columns.values()) if c in lab.columns]
    lab = lab.select("_key", *[pl.col(c).alias(f"label_{c}") for c in label_cols])
    joined = prd.join(lab, on="_key", how="inner")
    dup = _duplicates(joined["_key"])
    if dup:
        raise EvaluationError(f"{pred_name}: {len(dup)} labelled file names occur in more than one 'image' row "
                              f"(e.g. {dup[:3]}); evaluate one labelled set's output at a time")
    counts = {
        "predictions": pred.height,
        "labels": labels.height,
        "matched": joined.height,
        "predictions_without_label": pred.height - joined.height,
        "labels_without_prediction": labels.height - joined.height,
    }
    if joined.height == 0:
        ex_p = prd["_key"].head(2).to_list()
        ex_l = lab["_key"].head(2).to_list()
        raise EvaluationError(f"no row of {pred_name} matched {labels_name} by file name (predictions e.g. {ex_p}, "
                              f"labels e.g. {ex_l}); run the pipeline on that labelled set's images/ folder")
    return joined, counts


# --------------------------------------------------------------------------- label mapping


def map_label_values(values: pl.Series, attribute: str, vocabulary: tuple[str, ...] | None) -> pl.DataFrame:
    """Raw label cells -> [label_raw, label, status], status one of
    ``scored`` / ``blank`` / ``hedged`` / ``no_counterpart``; ``label`` is set when scored.
    ``vocabulary=None`` takes every value (training heads on a shop's own taxonomy)."""
    raw = values.cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    aliases = LABEL_VALUE_MAP.get(attribute, {})
    hedged = HEDGED.get(attribute, frozenset())
    vocab = None if vocabulary is None else set(vocabulary)
    labels, status = [], []
    for v in raw.to_list():
        if v is None or v == "":
            labels.append(None), status.append("blank")
        elif v in hedged:
            labels.append(None), status.append("hedged")
        else:
            mapped = aliases.get(v, v)
            if vocab is None or mapped in vocab:
                labels.append(mapped), status.append("scored")
            else:
                labels.append(None), status.append("no_counterpart")
    return pl.DataFrame({"label_raw": raw, "label": pl.Series(labels, dtype=pl.Utf8),
                         "status": pl.Series(status, dtype=pl.Utf8)})


def _prediction_values(frame: pl.DataFrame, column: str) -> pl.Series:
    """Predictions with null / blank as ``unknown``."""
    s = frame[column].cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    return s.fill_null(UNKNOWN).replace("", UNKNOWN)


# --------------------------------------------------------------------------- metrics


def score(labels: list[str] | pl.Series, preds: list[str] | pl.Series,
          class_order: tuple[str, ...] = ()) -> dict:
    """Accuracy, coverage, macro-F1, per-class figures and the confusion matrix of one attribute.
    ``labels`` are the (mapped) true values, ``preds`` ours, ``unknown`` = abstention."""
    frame = pl.DataFrame({"label": pl.Series(list(labels), dtype=pl.Utf8),
                          "pred": pl.Series(list(preds), dtype=pl.Utf8)}).with_columns(pl.col("pred").fill_null(UNKNOWN))
    n = frame.height
    correct = int((frame["label"] == frame["pred"]).sum())
    covered = frame.filter(pl.col("pred") != UNKNOWN)
    correct_cov = int((covered["label"] == covered["pred"]).sum())

    def ordered(values) -> list[str]:
        values = set(values)
        return [v for v in class_order if v in values] + sorted(values - set(class_order))

    classes = ordered(frame["label"].unique().to_list())
    pred_cols = ordered(set(classes) | set(frame["pred"].unique().to_list()) - {UNKNOWN}) + [UNKNOWN]
    pairs = {(a, b): c for a, b, c in frame.group_by("label", "pred").len().iter_rows()}
    matrix = {c: {p: pairs.get((c, p), 0) for p in pred_cols} for c in classes}

    per_class = {}
    for c in classes:
        tp = pairs.get((c, c), 0)
        support = sum(matrix[c].values())
        predicted = sum(v for (_, p), v in pairs.items() if p == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = {"support": support, "predicted": predicted, "correct": tp,
                        "precision": precision, "recall": recall, "f1": f1}
    return {
        "support": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "macro_f1": float(np.mean([v["f1"] for v in per_class.values()])) if per_class else None,
        "coverage": covered.height / n if n else None,
        "covered": covered.height,
        "accuracy_covered": correct_cov / covered.height if covered.height else None,
        "per_class": per_class,
        "confusion": {"rows": "label", "columns": "prediction", "labels": classes, "predictions": pred_cols,
                      "matrix": matrix},
    }


def evaluate(pred: pl.DataFrame, labels: pl.DataFrame, attributes: dict[str, AttributeConfig],
             pred_name: str = "predictions", labels_name: str = "labels") -> dict:
    """Score every attribute of LABEL_COLUMNS that both sides have, and any other configured
    attribute (e.g. one learnt by a head) with a label column of its own name. Pure: frames in, dict out."""
    columns = {**LABEL_COLUMNS, **{a: a for a in attributes if a not in LABEL_COLUMNS and a in labels.columns}}
    joined, counts = match_rows(pred, labels, pred_name, labels_name, columns)
    result: dict = {"predictions": pred_name, "labels": labels_name, "match": counts, "attributes": {},
                    "skipped_attributes": {}}
    for attribute, label_col in columns.items():
        if f"label_{label_col}" not in joined.columns:
            result["skipped_attributes"][attribute] = f"labels have no '{label_col}' column"
            continue
        if attribute not in joined.columns:
            hint = " (catalog.csv has no garment_type: use catalog.parquet)" if attribute == "garment_type" else ""
            result["skipped_attributes"][attribute] = f"predictions have no '{attribute}' column{hint}"
            continue
        if attribute not in attributes:
            result["skipped_attributes"][attribute] = f"'{attribute}' is not in the configured vocabulary"
            continue
        vocab = attributes[attribute].values
        mapped = map_label_values(joined[f"label_{label_col}"], attribute, vocab)
        rows = mapped.with_columns(pred=_prediction_values(joined, attribute))
        scored = rows.filter(pl.col("status") == "scored")
        if scored.height == 0:
            result["skipped_attributes"][attribute] = f"no matched row has a usable '{label_col}' label"
            continue
        entry = {"label_column": label_col, **score(scored["label"], scored["pred"], vocab)}
        entry["label_rows"] = {s: int((rows["status"] == s).sum())
                               for s in ("scored", "blank", "hedged", "no_counterpart")}
        aliases = LABEL_VALUE_MAP.get(attribute, {})
        entry["aliases_applied"] = {
            raw: {"to": aliases[raw], "rows": n}
            for raw, n in scored.filter(pl.col("label_raw") != pl.col("label")).group_by("label_raw").len().sort("label_raw").iter_rows()
        }
        missing = rows.filter(pl.col("status") == "no_counterpart")
        entry["no_counterpart"] = {
            raw: {"rows": grp.height,
                  "predicted": dict(sorted(grp.group_by("pred").len().iter_rows(), key=lambda kv: -kv[1]))}
            for (raw,), grp in sorted(missing.group_by("label_raw"), key=lambda kv: kv[0][0])
        }
        result["attributes"][attribute] = entry
    return result


# --------------------------------------------------------------------------- calibration


def calibrate(pred: pl.DataFrame, labels: pl.DataFrame, attributes: dict[str, AttributeConfig],
              target: float, step: float = 0.01, min_covered: int = 20,
              pred_name: str = "predictions", labels_name: str = "labels") -> dict:
    """Per attribute, the smallest ``min_confidence`` on a ``step`` grid at which accuracy on
    the covered rows (confidence >= threshold) reaches ``target`` with at least ``min_covered``
    covered rows.

    Uses ``<attr>_raw`` (the top value before abstention) when present. Without it, only the
    published values are known, so thresholds are tried only above the highest confidence of
    an abstained row (below that, rows whose value we do not know would be covered)."""
    if not 0 < target <= 1:
        raise EvaluationError(f"--target-precision must be in (0, 1], got {target}")
    if not 0 < step <= 0.5:
        raise EvaluationError(f"calibration step must be in (0, 0.5], got {step}")
    joined, counts = match_rows(pred, labels, pred_name, labels_name)
    grid = np.round(np.arange(int(round(1 / step)) + 1) * step, 6)
    out: dict = {"target": target, "step": step, "min_covered": min_covered, "match": counts,
                 "attributes": {}, "skipped_attributes": {}}
    for attribute, label_col in LABEL_COLUMNS.items():
        conf_col = f"{attribute}_confidence"
        if f"label_{label_col}" not in joined.columns or attribute not in attributes:
            continue
        if attribute not in joined.columns or conf_col not in joined.columns:
            out["skipped_attributes"][attribute] = (
                f"predictions have no '{conf_col}' column (calibration needs the confidences of catalog.parquet)")
            continue
        spec = attributes[attribute]
        mapped = map_label_values(joined[f"label_{label_col}"], attribute, spec.values)
        has_raw = f"{attribute}_raw" in joined.columns
        raw_col = f"{attribute}_raw" if has_raw else attribute
        headed = "color_source" in joined.columns and (joined["color_source"] == "head").any()
        if attribute == "color" and not headed and {"color_clip", "color_clip_confidence"} <= set(joined.columns):
            # attributes.color.min_confidence governs CLIP's colour; the published colour
            # may be fused with the pixel colour (color.policy), so calibrate on CLIP's own.
            raw_col, conf_col, has_raw = "color_clip", "color_clip_confidence", True
        rows = pl.DataFrame({
            "label": mapped["label"], "status": mapped["status"],
            "raw": _prediction_values(joined, raw_col),
            "conf": joined[conf_col].cast(pl.Float64),
        }).filter((pl.col("status") == "scored") & pl.col("conf").is_not_null())
        if rows.height == 0:
            out["skipped_attributes"][attribute] = f"no matched row has a usable '{label_col}' label"
            continue
        conf = rows["conf"].to_numpy()
        hit = (rows["raw"] == rows["label"]).to_numpy()
        unknown_raw = (rows["raw"] == UNKNOWN).to_numpy()
        floor = float(conf[unknown_raw].max()) if unknown_raw.any() else -1.0
        n = rows.height

        def point(t: float) -> dict:
            cov = conf >= t
            k = int(cov.sum())
            return {"min_confidence": float(t), "covered": k, "coverage": k / n,
                    "accuracy_covered": float(hit[cov].mean()) if k else None,
                    "accuracy": float(hit[cov].sum()) / n}

        curve = [point(t) for t in grid if t > floor]
        usable = [c for c in curve if c["covered"] >= min_covered]
        proposal = next((c for c in usable if c["accuracy_covered"] >= target), None)
        best = max(usable, key=lambda c: (c["accuracy_covered"], -c["min_confidence"])) if usable else None
        current = spec.min_confidence
        at_current = point(current) if current > floor else None
        out["attributes"][attribute] = {
            "basis": "raw" if has_raw else "published values only (no <attr>_raw column)",
            "lowest_threshold_tried": curve[0]["min_confidence"] if curve else None,
            "scored_rows": n,
            "current_min_confidence": current,
            "at_current": at_current,
            "proposed": proposal,
            "best": best,
            "curve": curve,
        }
    return out


def calibration_toml(cal: dict, labels_name: str = "") -> str:
    """A TOML snippet with the proposed thresholds, ready to paste into a config file."""
    lines = [f"# catalog-intel evaluate --calibrate: smallest min_confidence whose accuracy on covered rows "
             f"is >= {cal['target']:.2f} with >= {cal['min_covered']} covered rows"]
    if labels_name:
        lines.append(f"# labels: {labels_name} ({cal['match']['matched']} matched predictions)")
    for attribute, res in cal["attributes"].items():
        p = res["proposed"]
        note = (f"; only thresholds >= {res['lowest_threshold_tried']} could be tried (no {attribute}_raw)"
                if res["basis"] != "raw" and (res["lowest_threshold_tried"] or 0) > 0 else "")
        if p is None:
            best = res["best"]
            best_txt = (f"best {best['accuracy_covered']:.3f} at {best['min_confidence']:.2f}, n={best['covered']}"
                        if best else "too few rows")
            lines.append(f"# [attributes.{attribute}] target not reached ({best_txt}{note}); "
                         f"min_confidence left at {res['current_min_confidence']}")
            continue
        lines.append(f"[attributes.{attribute}]")
        lines.append(f"min_confidence = {p['min_confidence']:.2f}  # accuracy on covered {p['accuracy_covered']:.3f}, "
                     f"coverage {p['coverage']:.3f} ({p['covered']}/{res['scored_rows']}), "
                     f"was {res['current_min_confidence']}{note}")
    for attribute, why in cal["skipped_attributes"].items():
        lines.append(f"# [attributes.{attribute}] not calibrated: {why}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- report


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


def format_report(result: dict) -> str:
    m = result["match"]
    lines = [
        f"predictions: {result['predictions']}",
        f"labels:      {result['labels']}",
        f"matched by file name: {m['matched']} of {m['predictions']} predictions "
        f"({m['predictions_without_label']} without a label row); "
        f"{m['labels_without_prediction']} of {m['labels']} label rows have no prediction",
        "",
        f"{'attribute':13s} {'support':>7s} {'accuracy':>8s} {'macro-F1':>8s} {'coverage':>8s} {'acc@cov':>8s}",
    ]
    for a, r in result["attributes"].items():
        f1 = "   -  " if r["macro_f1"] is None else f"{r['macro_f1']:.3f}"
        lines.append(f"{a:13s} {r['support']:7d} {_pct(r['accuracy']):>8s} {f1:>8s} "
                     f"{_pct(r['coverage']):>8s} {_pct(r['accuracy_covered']):>8s}")
    for a, why in result["skipped_attributes"].items():
        lines.append(f"{a:13s} skipped: {why}")
    for a, r in result["attributes"].items():
        lines.append("")
        rows = r["label_rows"]
        lines.append(f"{a} (label column '{r['label_column']}'): {rows['scored']} scored, {rows['blank']} blank, "
                     f"{rows['hedged']} hedged, {rows['no_counterpart']} without a counterpart in the vocabulary")
        for raw, info in r["aliases_applied"].items():
            lines.append(f"  label '{raw}' scored as '{info['to']}' ({info['rows']} rows)")
        for raw, info in r["no_counterpart"].items():
            pred = ", ".join(f"{p} {n}" for p, n in info["predicted"].items())
            lines.append(f"  label '{raw}' has no counterpart ({info['rows']} rows, not scored; predicted: {pred})")
        conf = r["confusion"]
        cols = conf["predictions"]
        width = max(8, *(len(c) for c in cols))
        lab_w = max(10, *(len(c) for c in conf["labels"]))
        lines.append("  confusion (rows: label, columns: prediction)")
        lines.append("  " + " " * lab_w + " " + " ".join(f"{c[:width]:>{width}s}" for c in cols))
        for lab in conf["labels"]:
            lines.append("  " + f"{lab:>{lab_w}s} " + " ".join(f"{conf['matrix'][lab][c]:>{width}d}" for c in cols))
    return "\n".join(lines)


def format_calibration(cal: dict) -> str:
    lines = [f"calibration: target accuracy on covered rows {cal['target']:.2f}, >= {cal['min_covered']} covered rows",
             f"{'attribute':13s} {'now':>5s} {'acc@cov':>8s} {'coverage':>8s}   {'proposed':>8s} {'acc@cov':>8s} {'coverage':>8s}"]
    for a, r in cal["attributes"].items():
        cur, p = r["at_current"], r["proposed"]
        now = (f"{_pct(cur['accuracy_covered']):>8s} {_pct(cur['coverage']):>8s}" if cur
               else f"{'n/a':>8s} {'n/a':>8s}")
        prop = (f"{p['min_confidence']:8.2f} {_pct(p['accuracy_covered']):>8s} {_pct(p['coverage']):>8s}" if p
                else f"{'none':>8s}")
        lines.append(f"{a:13s} {r['current_min_confidence']:5.2f} {now}   {prop}")
        if r["basis"] != "raw" and (r["lowest_threshold_tried"] or 0) > 0:
            lines.append(f"  ({a}: no {a}_raw column; thresholds below {r['lowest_threshold_tried']} cannot be judged)")
    for a, why in cal["skipped_attributes"].items():
        lines.append(f"{a:13s} skipped: {why}")
    return "\n".join(lines)
