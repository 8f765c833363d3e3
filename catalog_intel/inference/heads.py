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
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from catalog_intel.errors import HeadError
from catalog_intel.io.layout import CacheLayout
from catalog_intel.schemas import HEAD_FORMAT, UNKNOWN
from catalog_intel.settings import AttributeConfig, Config

FEATURES_CLIP, FEATURES_CLIP_PIXELS = "clip", "clip+pixels"


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
    from catalog_intel.io.filesystem import atomic_write_bytes, atomic_write_text
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
    from catalog_intel.io.parquet_store import ParquetStore

    return ParquetStore(CacheLayout(config.paths.cache_dir).color_features(COLOR_FEATURES_VERSION), key="sha256")


def color_feature_frame(items: pl.DataFrame, config: Config, progress=None) -> pl.DataFrame:
    """items[sha256, path] -> [sha256, features]: the garment's Lab clusters, cached by content.
    An image that cannot be decoded gets zeros (its embedding is rejected earlier anyway)."""
    from catalog_intel.errors import ImageRejected
    from catalog_intel.io.images import load_rgb
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
