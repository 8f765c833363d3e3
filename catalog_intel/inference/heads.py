"""Attribute heads: small classifiers trained on the user's own labelled products.

A head is a multinomial logistic regression on the frozen CLIP image embedding (colour
also gets the garment's Lab clusters from pixel_color.color_features), with its
probabilities calibrated by one temperature fitted on cross-validated predictions, so a
min_confidence threshold means what it says. The label values are the head's classes:
a shop's own taxonomy, or an attribute zero-shot does not know at all.

A head is two files, `<attribute>.json` (classes, CLIP model id, training-set hash,
scores) and `<attribute>.npz` (weights; read with allow_pickle=False): loading one runs
no code. A run refuses a head trained on another CLIP model, whose vectors differ."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from catalog_intel.config import UNKNOWN, AttributeConfig, Config

HEAD_FORMAT = "catalog-intel-head/1"
FEATURES_CLIP, FEATURES_CLIP_PIXELS = "clip", "clip+pixels"
MIN_CLASS_ROWS = 5  # a label value with fewer examples cannot be cross-validated: left out, and said so
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strength, by cross-validated log-loss
FOLDS = 5


class HeadError(ValueError):
    """A head file is missing, malformed or does not fit this run; the message says what to do."""


@dataclass(frozen=True)
class Head:
    attribute: str
    classes: tuple[str, ...]
    features: str
    model_id: str
    coef: np.ndarray  # (classes, dims) on standardised features
    intercept: np.ndarray  # (classes,)
    mean: np.ndarray  # (dims,)
    scale: np.ndarray  # (dims,)
    temperature: float
    meta: dict = field(default_factory=dict)
    path: str = ""

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef.T + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x) / self.temperature)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- files


def save_head(head: Head, folder: str | os.PathLike) -> Path:
    from catalog_intel.io.storage import atomic_write_bytes, atomic_write_text
    import io

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, coef=head.coef, intercept=head.intercept, mean=head.mean, scale=head.scale)
    atomic_write_bytes(folder / f"{head.attribute}.npz", buf.getvalue())
    doc = {"format": HEAD_FORMAT, "attribute": head.attribute, "classes": list(head.classes),
           "features": head.features, "clip_model_id": head.model_id, "temperature": head.temperature,
           "weights": f"{head.attribute}.npz", **head.meta}
    path = folder / f"{head.attribute}.json"
    atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return path


def load_head(path: str | os.PathLike) -> Head:
    p = Path(path)
    stat = p.stat() if p.is_file() else None
    if stat is None:
        raise HeadError(f"head file not found: {p} (train one with `catalog-intel train-heads`)")
    return _load_head(str(p.resolve()), stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load_head(path: str, _mtime_ns: int) -> Head:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        if doc.get("format") != HEAD_FORMAT:
            raise HeadError(f"{p} is not a catalog-intel head (format {doc.get('format')!r}, expected {HEAD_FORMAT})")
        with np.load(p.parent / doc["weights"], allow_pickle=False) as w:
            arrays = {k: w[k] for k in ("coef", "intercept", "mean", "scale")}
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, HeadError):
            raise
        raise HeadError(f"cannot read head {p}: {exc}; retrain it with `catalog-intel train-heads`") from None
    meta = {k: v for k, v in doc.items() if k not in ("format", "attribute", "classes", "features", "clip_model_id",
                                                      "temperature", "weights")}
    return Head(doc["attribute"], tuple(doc["classes"]), doc["features"], doc["clip_model_id"], arrays["coef"],
                arrays["intercept"], arrays["mean"], arrays["scale"], float(doc["temperature"]), meta, str(p))


def head_files_in(folder: str | os.PathLike) -> dict[str, Path]:
    """attribute -> head JSON file, for every head in a `train-heads` output folder."""
    p = Path(folder)
    if not p.is_dir():
        raise HeadError(f"heads folder not found: {p} (make it with `catalog-intel train-heads --out {p}`)")
    found = {}
    for f in sorted(p.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("format") == HEAD_FORMAT:
            found[doc["attribute"]] = f
    if not found:
        raise HeadError(f"no heads in {p}: expected <attribute>.json files written by `catalog-intel train-heads`")
    return found


def configured_heads(attributes: dict[str, AttributeConfig], model_id: str) -> dict[str, Head]:
    """The heads the config names, checked against the run's CLIP model."""
    heads = {}
    for name, spec in attributes.items():
        if not spec.head:
            continue
        head = load_head(spec.head)
        if head.attribute != name:
            raise HeadError(f"attributes.{name}.head = {spec.head} is a head for '{head.attribute}', not '{name}'")
        if head.model_id != model_id:
            raise HeadError(
                f"head {spec.head} was trained on CLIP model {head.model_id}, but this run uses {model_id}: "
                "its embeddings are not comparable. Retrain it with `catalog-intel train-heads` and this run's "
                "--clip-model/--clip-checkpoint, or leave it out (--heads / attributes.<name>.head).")
        heads[name] = head
    return heads


def published_values(spec: AttributeConfig) -> tuple[str, ...]:
    """The values an attribute can take in the catalog: the head's classes where it has one."""
    return load_head(spec.head).classes if spec.head else spec.values


def published_attributes(config: Config) -> dict[str, AttributeConfig]:
    """config.attributes with each head's classes as the attribute's values (checks, evaluate)."""
    return {name: spec.model_copy(update={"values": published_values(spec)}) if spec.head else spec
            for name, spec in config.attributes.items()}


# --------------------------------------------------------------------------- applying


def apply_heads(attributes: pl.DataFrame, embeddings: pl.DataFrame, heads: dict[str, Head],
                thresholds: dict[str, float], color_features: pl.DataFrame | None = None) -> pl.DataFrame:
    """Replace each headed attribute's zero-shot value by the head's (pure).

    attributes[sha256, A, A_raw, A_confidence, A_margin, ...] -> the same with, per head,
    A (value, or "unknown" under thresholds[A]), A_raw, A_confidence (calibrated
    probability), A_margin and A_source = "head". Rows whose A_source is already "facts"
    keep their value: facts > head > zero-shot. embeddings[sha256, embedding];
    color_features[sha256, features] is needed by heads trained with pixel features."""
    if not heads:
        return attributes
    order = attributes.select("sha256").with_row_index("_row")
    x_clip = _aligned(order, embeddings, "embedding")
    x_pix = None
    out = attributes
    for name, head in heads.items():
        x = x_clip
        if head.features == FEATURES_CLIP_PIXELS:
            if color_features is None:
                raise HeadError(f"head {head.path or name} needs the garment's pixel colour features")
            x_pix = _aligned(order, color_features, "features") if x_pix is None else x_pix
            x = np.hstack([x_clip, x_pix])
        if x.shape[1] != head.mean.shape[0]:
            raise HeadError(f"head {head.path or name} expects {head.mean.shape[0]} features, this run has "
                            f"{x.shape[1]}: retrain it with this run's CLIP model")
        probs = head.predict_proba(x)
        top2 = np.sort(probs, axis=1)[:, ::-1][:, :2] if probs.shape[1] > 1 else np.hstack([probs, 0 * probs])
        raw = np.asarray(head.classes, dtype=object)[probs.argmax(axis=1)].tolist()
        fresh = pl.DataFrame({
            "_raw": pl.Series(raw, dtype=pl.Utf8), "_confidence": top2[:, 0].astype(np.float64),
            "_margin": (top2[:, 0] - top2[:, 1]).astype(np.float64),
        })
        source = out[f"{name}_source"] if f"{name}_source" in out.columns else pl.Series([None] * out.height,
                                                                                         dtype=pl.Utf8)
        keep = (source == "facts").fill_null(False)
        value = pl.when(pl.col("_confidence") >= thresholds.get(name, 0.0)).then(pl.col("_raw")).otherwise(
            pl.lit(UNKNOWN))
        merged = out.with_columns(fresh).with_columns(_keep=keep)
        new = {
            name: pl.when("_keep").then(_col_or_null(out, name)).otherwise(value),
            f"{name}_raw": pl.when("_keep").then(_col_or_null(out, f"{name}_raw")).otherwise(pl.col("_raw")),
            f"{name}_confidence": pl.when("_keep").then(_col_or_null(out, f"{name}_confidence", pl.Float64))
            .otherwise(pl.col("_confidence")),
            f"{name}_margin": pl.when("_keep").then(_col_or_null(out, f"{name}_margin", pl.Float64))
            .otherwise(pl.col("_margin")),
            f"{name}_source": pl.when("_keep").then(pl.lit("facts")).otherwise(pl.lit("head")),
        }
        out = merged.with_columns(**new).drop("_raw", "_confidence", "_margin", "_keep")
    return out


def _col_or_null(frame: pl.DataFrame, column: str, dtype=pl.Utf8) -> pl.Expr:
    return pl.col(column) if column in frame.columns else pl.lit(None, dtype=dtype)


def _aligned(order: pl.DataFrame, frame: pl.DataFrame, column: str) -> np.ndarray:
    joined = order.join(frame.select("sha256", column).unique("sha256"), on="sha256", how="left").sort("_row")
    missing = joined.filter(pl.col(column).is_null())
    if missing.height:
        raise HeadError(f"no {column} for {missing.height} images (e.g. sha256 {missing['sha256'][0]})")
    return joined[column].to_numpy().astype(np.float32, copy=False)


def heads_for_shard(attributes: pl.DataFrame, embeddings: pl.DataFrame, config: Config, model_id: str,
                    items: pl.DataFrame | None = None) -> pl.DataFrame:
    """The pipeline's hook: apply the configured heads (no-op without any). `items[sha256, path]`
    supplies the images for the pixel colour features a colour head needs (cached by content)."""
    heads = configured_heads(config.attributes, model_id)
    if not heads:
        return attributes
    needs_pixels = any(h.features == FEATURES_CLIP_PIXELS for h in heads.values())
    if needs_pixels and items is None:
        raise HeadError("a colour head with pixel features needs the shard's image paths")
    pixels = color_feature_frame(items, config) if needs_pixels else None
    thresholds = {n: config.attributes[n].min_confidence for n in heads}
    return apply_heads(attributes, embeddings, heads, thresholds, pixels)


# --------------------------------------------------------------------------- features


def color_feature_store(config: Config):
    from catalog_intel.inference.pixel_color import COLOR_FEATURES_VERSION
    from catalog_intel.io.storage import ParquetStore

    return ParquetStore(config.paths.cache_path / "color_features" / COLOR_FEATURES_VERSION, key="sha256")


def color_feature_frame(items: pl.DataFrame, config: Config, progress=None) -> pl.DataFrame:
    """items[sha256, path] -> [sha256, features]: the garment's Lab clusters, cached by content.
    An image that cannot be decoded gets zeros (its embedding is rejected earlier anyway)."""
    from catalog_intel.io.images import ImageRejected, load_rgb
    from catalog_intel.inference.pixel_color import COLOR_FEATURES_DIM, color_features

    store = color_feature_store(config)
    unique = items.select("sha256", "path").unique("sha256", keep="first", maintain_order=True)
    have = store.lookup(unique["sha256"])
    todo = unique if have is None else unique.filter(~pl.col("sha256").is_in(have["sha256"].implode()))
    vectors = []
    for _, path in todo.iter_rows():
        try:
            vectors.append(color_features(load_rgb(path, config.run.max_image_pixels, min_side=256)))
        except ImageRejected:
            vectors.append(np.zeros(COLOR_FEATURES_DIM, dtype=np.float32))
        if progress is not None:
            progress.update(1)
    schema = {"sha256": pl.Utf8, "features": pl.Array(pl.Float32, COLOR_FEATURES_DIM)}
    fresh = pl.DataFrame({"sha256": todo["sha256"],
                          "features": pl.Series(np.asarray(vectors, dtype=np.float32).reshape(-1, COLOR_FEATURES_DIM),
                                                dtype=schema["features"])})
    if fresh.height:
        store.append(fresh)
    return pl.concat([fresh] + ([] if have is None else [have.select(schema.keys())]))


# --------------------------------------------------------------------------- training


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
    from catalog_intel.io.storage import FileHashCache

    hashes, reasons = hash_paths(frame["path"].to_list(), FileHashCache(config.paths.cache_path / "file_hashes"))
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
    from catalog_intel.io.storage import atomic_write_text, write_csv

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
    from tqdm.auto import tqdm

    frame, columns = read_training_labels(labels_path, images_root, only)
    if group_column and group_column not in frame.columns:
        raw = pl.read_csv(labels_path, infer_schema_length=0)
        if group_column not in raw.columns:
            raise HeadError(f"{labels_path}: no group column '{group_column}'")
        frame = frame.with_columns(raw[group_column])
    frame = _hashed(frame, config, log)
    with tqdm(total=frame["sha256"].n_unique(), desc="embeddings", unit="img", leave=False) as bar:
        embeddings, rejected = ensure_embeddings(frame, config, model_id, bar)
    if rejected:
        log(f"skipped {len(rejected)} images that do not decode, e.g. {next(iter(rejected.values()))}")
    frame = frame.filter(~pl.col("sha256").is_in(list(rejected)))
    return frame, columns, _aligned(frame.select("sha256").with_row_index("_row"), embeddings, "embedding")


def _colour_rows(frame: pl.DataFrame, config: Config) -> np.ndarray:
    from tqdm.auto import tqdm

    with tqdm(total=frame.height, desc="colour features", unit="img", leave=False) as bar:
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
