"""`catalog-intel train-heads`: fit attribute heads (inference/heads.py applies them) on the
user's own labelled products: a multinomial logistic regression per attribute on the frozen
CLIP embedding (colour also on the garment's Lab clusters), C chosen by cross-validated
log-loss, probabilities calibrated by one temperature, scored on a held-out share."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from catalog_intel.errors import HeadError
from catalog_intel.inference.heads import (FEATURES_CLIP, FEATURES_CLIP_PIXELS, Head, _aligned, color_feature_frame,
                                           save_head, softmax)
from catalog_intel.io.layout import CacheLayout
from catalog_intel.progress import progress_bar
from catalog_intel.schemas import UNKNOWN
from catalog_intel.settings import Config

MIN_CLASS_ROWS = 5  # a label value with fewer examples cannot be cross-validated: left out, and said so


C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strength, by cross-validated log-loss


FOLDS = 5


def read_training_labels(labels_path: str | os.PathLike, images_root: str | os.PathLike | None = None,
                         only: list[str] | None = None) -> tuple[pl.DataFrame, dict[str, str]]:
    """labels.csv -> (frame[file, path, <attribute>...] in our spelling, attribute -> label column).

    Every column but `file`, `product_id` and `source_*` is an attribute; `category` is
    garment_type (evaluate.LABEL_COLUMNS), and values go through evaluate.LABEL_VALUE_MAP.
    A blank (or hedged) cell is unknown and not trained on."""
    from catalog_intel.quality.evaluate import LABEL_COLUMNS, map_label_values

    p = Path(labels_path)
    if not p.is_file():
        raise HeadError(f"labels file not found: {p} (a CSV with a 'file' column and one column per attribute)")
    frame = pl.read_csv(p, infer_schema_length=0)
    if "file" not in frame.columns:
        raise HeadError(f"{p}: no 'file' column (columns: {', '.join(frame.columns)})")
    by_column = {col: attr for attr, col in LABEL_COLUMNS.items()}
    columns = {by_column.get(c, c): c for c in frame.columns
               if c not in ("file", "product_id") and not c.startswith("source_")}
    if only:
        unknown = [a for a in only if a not in columns and a not in columns.values()]
        if unknown:
            raise HeadError(f"{p}: no label column for {unknown} (attributes here: {', '.join(columns)})")
        columns = {a: c for a, c in columns.items() if a in only or c in only}
    if not columns:
        raise HeadError(f"{p}: no attribute columns besides 'file'")
    root = Path(images_root) if images_root else p.parent
    out = frame.select(
        "file", pl.format("{}/{}", pl.lit(str(root)), pl.col("file")).alias("path"),
        *[map_label_values(frame[col], attr, None)["label"].replace(UNKNOWN, None).alias(attr)  # reserved
          for attr, col in columns.items()],
        *([pl.col("product_id")] if "product_id" in frame.columns else []),
    )
    return out, columns


def training_set_hash(shas: list[str], labels: list[str], features: str) -> str:
    digest = hashlib.sha256(features.encode())
    for sha, label in sorted(zip(shas, labels)):
        digest.update(f"\n{sha}\t{label}".encode())
    return digest.hexdigest()


def _folds(y: np.ndarray, groups: np.ndarray | None, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    n = int(min(FOLDS, np.unique(y, return_counts=True)[1].min()))
    if groups is not None:
        return list(StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed).split(y, y, groups))
    return list(StratifiedKFold(n_splits=n, shuffle=True, random_state=seed).split(y, y))


def _fit_linear(x: np.ndarray, y: np.ndarray, c: float, classes: list[str]):
    """(coef, intercept, mean, scale) of a standardised multinomial logistic regression, in
    softmax form for every class count (a binary model becomes logits (-z/2, z/2))."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    # One BLAS thread: these problems are small, and a threaded BLAS on a busy machine was
    # measured 40x slower (34 s against 0.8 s for one colour fit on hm-tops).
    with threadpool_limits(1):
        model = LogisticRegression(C=c, max_iter=3000).fit((x - mean) / scale, y)
    if list(model.classes_) != classes:
        raise AssertionError("classes out of order")
    coef, intercept = model.coef_, model.intercept_
    if len(classes) == 2:
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef.astype(np.float32), intercept.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32)


def _nll(logits: np.ndarray, y_idx: np.ndarray, t: float = 1.0) -> float:
    p = softmax(logits / t)
    return float(-np.log(np.clip(p[np.arange(len(y_idx)), y_idx], 1e-12, None)).mean())


def _temperature(logits: np.ndarray, y_idx: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(lambda lt: _nll(logits, y_idx, float(np.exp(lt))), bounds=(-3, 3), method="bounded")
    return float(np.exp(found.x))


def expected_calibration_error(probs: np.ndarray, y_idx: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by rows."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == y_idx
    edges = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(right[edges == b].mean() - conf[edges == b].mean()) * (edges == b).sum()
                     for b in range(bins) if (edges == b).any()) / max(len(conf), 1))


def _figures(y: list[str], pred: list[str], majority: str) -> dict:
    from catalog_intel.quality.evaluate import score

    got, base = score(y, pred), score(y, [majority] * len(y))
    return {"rows": len(y), "accuracy": got["accuracy"], "macro_f1": got["macro_f1"],
            "majority_class": majority, "majority_accuracy": base["accuracy"], "majority_macro_f1": base["macro_f1"]}


def fit_head(name: str, x: np.ndarray, y: list[str], model_id: str, features: str, seed: int = 0,
             groups: np.ndarray | None = None) -> tuple[Head | None, dict]:
    """Train one head: C by cross-validated log-loss, a temperature fitted on the
    out-of-fold logits, then the final fit on all rows. Returns (head or None, report)."""
    values, counts = np.unique(np.asarray(y, dtype=object), return_counts=True)
    dropped = {str(v): int(c) for v, c in zip(values, counts) if c < MIN_CLASS_ROWS}
    keep = np.array([v not in dropped for v in y], dtype=bool)
    x, y_arr = x[keep], np.asarray(y, dtype=object)[keep]
    groups = groups[keep] if groups is not None else None
    classes = sorted(set(y_arr.tolist()))
    report: dict = {"attribute": name, "features": features, "rows": int(len(y_arr)), "classes": classes,
                    "dropped_classes": dropped}
    if len(classes) < 2:
        report["skipped"] = f"needs two values with at least {MIN_CLASS_ROWS} labelled rows each"
        return None, report
    y_idx = np.array([classes.index(v) for v in y_arr])
    folds = _folds(y_idx, groups, seed)
    best = None
    for c in C_GRID:
        oof = np.zeros((len(y_idx), len(classes)), dtype=np.float64)
        for train, test in folds:
            coef, intercept, mean, scale = _fit_linear(x[train], y_arr[train], c, classes)
            oof[test] = ((x[test] - mean) / scale) @ coef.T + intercept
        loss = _nll(oof, y_idx)
        if best is not None and loss >= best[0]:
            break  # past the minimum (the loss is U-shaped in C); larger C only fits slower
        best = (loss, c, oof)
    _, c, oof = best
    temperature = _temperature(oof, y_idx)
    majority = classes[int(np.bincount(y_idx).argmax())]
    pred = [classes[i] for i in oof.argmax(axis=1)]
    report["cv"] = {"folds": len(folds), "C": c, **_figures(y_arr.tolist(), pred, majority),
                    "ece_uncalibrated": expected_calibration_error(softmax(oof), y_idx),
                    "ece_calibrated": expected_calibration_error(softmax(oof / temperature), y_idx)}
    coef, intercept, mean, scale = _fit_linear(x, y_arr, c, classes)
    head = Head(name, tuple(classes), features, model_id, coef, intercept, mean, scale, temperature)
    return head, report


def score_holdout(head: Head, x: np.ndarray, y: list[str], majority: str, threshold: float) -> dict:
    """Figures on rows the head did not train on (labels outside its classes count as wrong)."""
    probs = head.predict_proba(x)
    pred = [head.classes[i] for i in probs.argmax(axis=1)]
    covered = probs.max(axis=1) >= threshold
    right = np.array([p == t for p, t in zip(pred, y)])
    y_idx = np.array([head.classes.index(v) if v in head.classes else -1 for v in y])
    known = y_idx >= 0
    return {**_figures(y, pred, majority), "min_confidence": threshold, "coverage": float(covered.mean()),
            "accuracy_covered": float(right[covered].mean()) if covered.any() else None,
            "ece": expected_calibration_error(probs[known], y_idx[known]) if known.any() else None}


def ensure_embeddings(items: pl.DataFrame, config: Config, model_id: str, progress=None) -> tuple[pl.DataFrame, dict]:
    """items[sha256, path] -> (embeddings[sha256, embedding], {sha256: reject reason}). What the
    pipeline's embedding store lacks is embedded once (same model, same store)."""
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.inference.embedding import compute_embeddings, embedding_store, embeddings_frame

    store = embedding_store(config.paths.cache_path, model_id)
    unique = items.select("sha256", "path").unique("sha256", keep="first", maintain_order=True)
    cached = store.existing(unique["sha256"])
    todo = unique.filter(~pl.col("sha256").is_in(list(cached)))
    if progress is not None:
        progress.update(len(cached))
    rejected = {}
    if todo.height:
        clip = load_clip(config.clip, config.paths.cache_path)
        shas = todo["sha256"].to_list()
        _, reasons = compute_embeddings(
            todo["path"].to_list(), clip, config.clip.batch_size, config.clip.decode_workers,
            config.run.max_image_pixels, progress=progress, prefetch_batches=config.clip.prefetch_batches,
            torch_threads=config.clip.torch_threads, precision=config.clip.precision, gpu_decode=config.clip.gpu_decode,
            on_batch=lambda rows, vectors: store.append(embeddings_frame([shas[i] for i in rows], vectors, model_id)),
        )
        rejected = {sha: r for sha, r in zip(shas, reasons) if r}
    found = store.lookup(unique["sha256"])
    return found.select("sha256", "embedding"), rejected


def _hashed(frame: pl.DataFrame, config: Config, log) -> pl.DataFrame:
    from catalog_intel.io.ingest import hash_paths
    from catalog_intel.io.hash_cache import FileHashCache

    hashes, reasons = hash_paths(frame["path"].to_list(), FileHashCache(CacheLayout(config.paths.cache_dir).file_hashes))
    frame = frame.with_columns(pl.Series("sha256", hashes, dtype=pl.Utf8), pl.Series("_reason", reasons, dtype=pl.Utf8))
    bad = frame.filter(pl.col("_reason").is_not_null())
    if bad.height:
        log(f"skipped {bad.height} labelled files that cannot be read, e.g. {bad['file'][0]}: {bad['_reason'][0]}")
    return frame.filter(pl.col("_reason").is_null()).drop("_reason")


def split_holdout(frame: pl.DataFrame, share: float, seed: int, group_column: str | None) -> pl.Series:
    """True for rows held out: a seeded random `share` of the rows (of the groups, when given,
    so the variants of one product land on one side)."""
    keys = frame[group_column].fill_null(frame["file"]) if group_column else frame["file"]
    unique = keys.unique(maintain_order=True).to_list()
    rng = np.random.default_rng(seed)
    chosen = set(rng.permutation(len(unique))[: int(round(share * len(unique)))].tolist())
    held = {k for i, k in enumerate(unique) if i in chosen}
    return keys.is_in(list(held))


def train_heads(labels_path: str, out_dir: str, config: Config, model_id: str, images_root: str | None = None,
                only: list[str] | None = None, holdout: float = 0.0, seed: int = 0,
                group_column: str | None = None, pixel_color: bool = True, log=print) -> dict:
    """Train one head per labelled attribute into `out_dir`; returns the report (also in
    OUT/train_report.json). With `holdout`, that share of rows is kept out of training,
    scored, and written to OUT/holdout.csv (a labels file for `catalog-intel evaluate`)."""
    from catalog_intel.io.filesystem import atomic_write_text, write_csv

    if not 0 <= holdout < 1:
        raise HeadError(f"--holdout must be in [0, 1), got {holdout}")
    frame, columns, x_clip = _training_rows(labels_path, images_root, only, group_column, config, model_id, log)
    held = split_holdout(frame, holdout, seed, group_column).to_numpy() if holdout else np.zeros(frame.height, bool)
    groups = frame[group_column].fill_null(frame["file"]).to_numpy() if group_column else None
    out = Path(out_dir)
    report = {"labels": str(labels_path), "clip_model_id": model_id, "holdout": holdout, "seed": seed,
              "group_column": group_column, "rows": frame.height, "train_rows": int((~held).sum()),
              "holdout_rows": int(held.sum()), "attributes": {}}
    x_pix = None
    for name, column in columns.items():
        features = FEATURES_CLIP_PIXELS if pixel_color and name == "color" else FEATURES_CLIP
        if features == FEATURES_CLIP_PIXELS and x_pix is None:
            x_pix = _colour_rows(frame, config)
        x = np.hstack([x_clip, x_pix]) if features == FEATURES_CLIP_PIXELS else x_clip
        log(f"training {name}: {int((frame[name].is_not_null().to_numpy() & ~held).sum())} labelled rows")
        report["attributes"][name] = _train_attribute(name, column, frame, x, held, groups, features, config,
                                                      model_id, str(labels_path), seed, out)
    if holdout:
        raw = pl.read_csv(labels_path, infer_schema_length=0)
        write_csv(raw.filter(pl.col("file").is_in(frame.filter(pl.Series(held))["file"].implode())), out / "holdout.csv")
        report["holdout_labels"] = str(out / "holdout.csv")
    atomic_write_text(out / "train_report.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def _training_rows(labels_path, images_root, only, group_column, config: Config, model_id: str, log):
    """(labelled rows that decode, attribute -> label column, their CLIP embeddings)."""

    frame, columns = read_training_labels(labels_path, images_root, only)
    if group_column and group_column not in frame.columns:
        raw = pl.read_csv(labels_path, infer_schema_length=0)
        if group_column not in raw.columns:
            raise HeadError(f"{labels_path}: no group column '{group_column}'")
        frame = frame.with_columns(raw[group_column])
    frame = _hashed(frame, config, log)
    with progress_bar(frame["sha256"].n_unique(), "embeddings") as bar:
        embeddings, rejected = ensure_embeddings(frame, config, model_id, bar)
    if rejected:
        log(f"skipped {len(rejected)} images that do not decode, e.g. {next(iter(rejected.values()))}")
    frame = frame.filter(~pl.col("sha256").is_in(list(rejected)))
    return frame, columns, _aligned(frame.select("sha256").with_row_index("_row"), embeddings, "embedding")


def _colour_rows(frame: pl.DataFrame, config: Config) -> np.ndarray:

    with progress_bar(frame.height, "colour features") as bar:
        return _aligned(frame.select("sha256").with_row_index("_row"), color_feature_frame(frame, config, bar),
                        "features")


def _train_attribute(name: str, column: str, frame: pl.DataFrame, x: np.ndarray, held: np.ndarray,
                     groups: np.ndarray | None, features: str, config: Config, model_id: str, labels: str,
                     seed: int, out: Path) -> dict:
    """Fit, score on the held-out rows, save; returns the attribute's report entry."""
    labelled = frame[name].is_not_null().to_numpy()
    train, test = labelled & ~held, labelled & held
    y = frame[name].to_numpy()
    head, entry = fit_head(name, x[train], y[train].tolist(), model_id, features, seed,
                           groups[train] if groups is not None else None)
    if head is None:
        return entry
    shas = frame["sha256"].to_numpy()[train].tolist()
    head = replace(head, meta={
        "label_column": column, "training_set_sha256": training_set_hash(shas, y[train].tolist(), features),
        "labels": labels, "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "C": entry["cv"]["C"], "scores": {"cv": entry["cv"]}})
    if test.any():
        threshold = config.attributes[name].min_confidence if name in config.attributes else 0.0
        entry["holdout"] = score_holdout(head, x[test], y[test].tolist(), entry["cv"]["majority_class"], threshold)
        head.meta["scores"]["holdout"] = entry["holdout"]
    entry["file"] = str(save_head(head, out))
    return entry


def format_train_report(report: dict) -> str:
    """One line per attribute: rows, classes, cross-validated and holdout figures beside the majority class."""
    lines = [f"heads for {report['clip_model_id']} from {report['labels']}: {report['train_rows']} training rows"
             + (f", {report['holdout_rows']} held out" if report["holdout_rows"] else ""),
             f"{'attribute':14} {'rows':>5} {'classes':>7}  {'cv acc':>6} {'cv F1':>6} {'major.':>6}"
             f"  {'hold acc':>8} {'hold F1':>7} {'major.':>6} {'major.F1':>8}  {'ECE raw->cal':>12}"]

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    for name, e in report["attributes"].items():
        if "skipped" in e:
            lines.append(f"{name:14} {e['rows']:>5} {len(e['classes']):>7}  skipped: {e['skipped']}")
            continue
        cv, ho = e["cv"], e.get("holdout", {})
        lines.append(f"{name:14} {e['rows']:>5} {len(e['classes']):>7}  {pct(cv['accuracy']):>6} {pct(cv['macro_f1']):>6} "
                     f"{pct(cv['majority_accuracy']):>6}  {pct(ho.get('accuracy')):>8} {pct(ho.get('macro_f1')):>7} "
                     f"{pct(ho.get('majority_accuracy')):>6} {pct(ho.get('majority_macro_f1')):>8}  "
                     f"{pct(cv['ece_uncalibrated']):>5}->{pct(cv['ece_calibrated']):<5}")
        if e["dropped_classes"]:
            lines.append(f"{'':14} left out (under {MIN_CLASS_ROWS} rows): "
                         + ", ".join(f"{k} ({v})" for k, v in e["dropped_classes"].items()))
    lines.append("accuracy and macro-F1 in %; cv = cross-validated on the training rows; major. = always the "
                 "most common training value")
    return "\n".join(lines)
