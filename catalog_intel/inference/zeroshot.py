"""Zero-shot attribute classification against the controlled vocabulary.

Label texts are encoded once per (model, vocabulary) with prompt ensembling
and cached; classification is one matrix product per attribute over a whole
batch of embeddings, softmax with CLIP's logit scale, then value / confidence /
margin columns, abstaining ("unknown") under each attribute's threshold."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import polars as pl

from catalog_intel.inference.clip_model import LoadedClip, encode_texts, load_clip, model_id
from catalog_intel.io.filesystem import isfile, write_parquet
from catalog_intel.io.layout import CacheLayout
from catalog_intel.schemas import ATTRIBUTE_ORDER, UNKNOWN
from catalog_intel.settings import AttributeConfig, Config


def label_prompts(attributes: dict[str, AttributeConfig]) -> list[tuple[str, str, list[str]]]:
    """(attribute, value, prompts) for every vocabulary value, templates filled in."""
    return [
        (name, value, [t.format(spec.phrase(value)) for t in spec.templates])
        for name, spec in attributes.items()
        for value in spec.values
    ]


def encode_label_texts(clip: LoadedClip, attributes: dict[str, AttributeConfig]) -> pl.DataFrame:
    """Prompt-ensembled text embedding per (attribute, value): the mean of the
    normalised prompt embeddings, renormalised (Radford et al. 2021, sec. 3.1.4)."""
    rows = label_prompts(attributes)
    text = encode_texts(clip, [p for _, _, prompts in rows for p in prompts])
    vectors, start = [], 0
    for _, _, prompts in rows:
        mean = text[start : start + len(prompts)].mean(axis=0)
        vectors.append(mean / np.linalg.norm(mean))
        start += len(prompts)
    logit_scale = float(clip.model.logit_scale.exp().item())
    matrix = np.stack(vectors).astype(np.float32)
    return pl.DataFrame(
        {
            "attribute": [r[0] for r in rows],
            "value": [r[1] for r in rows],
            "embedding": pl.Series(matrix, dtype=pl.Array(pl.Float32, matrix.shape[1])),
            "logit_scale": [logit_scale] * len(rows),
        }
    )


def label_index_path(cache_root: Path, model_id: str, config: Config) -> Path:
    return CacheLayout(cache_root).label_texts(model_id, config.vocabulary_digest())


_label_index_lock = threading.Lock()


def load_or_build_label_index(cache_root: Path, model_id: str, config: Config, clip_loader) -> Path:
    """Path of the cached label-text embeddings; `clip_loader()` is only called on a miss."""
    path = label_index_path(cache_root, model_id, config)
    with _label_index_lock:  # a preload and the run's task may ask at once: one encodes, the other reads
        if not isfile(path):
            write_parquet(encode_label_texts(clip_loader(), config.attributes), path)
    return path


def preload(config: Config) -> threading.Thread:
    """Load CLIP and encode the label vocabulary in a background thread, for a run whose
    shards execute in this process: torch, the weights and the label texts are ready while
    Prefect's server starts, and the run's own `load_clip` and label-text task find them
    (they wait for this thread rather than doing the work twice). A failure here is left
    to those, which raise it with their usual message."""

    def load() -> None:
        try:
            cache_root = config.paths.cache_path
            load_or_build_label_index(cache_root, model_id(config.clip, cache_root), config,
                                      lambda: load_clip(config.clip, cache_root))
            load_clip(config.clip, cache_root)  # cached label texts need no model, the images do
        except Exception:  # noqa: BLE001 - the run's own load_clip raises it again
            logging.getLogger(__name__).debug("CLIP preload failed", exc_info=True)

    thread = threading.Thread(target=load, name="clip-preload", daemon=True)
    thread.start()
    return thread


def classify(
    embeddings: pl.DataFrame,
    label_index: pl.DataFrame,
    attributes: dict[str, AttributeConfig],
) -> pl.DataFrame:
    """embeddings[sha256, embedding] -> sha256 plus, per attribute A:
    A (value or "unknown"), A_confidence (softmax probability of the top value),
    A_margin (top minus runner-up probability), A_raw (top value before abstention)."""
    images = embeddings["embedding"].to_numpy().astype(np.float32, copy=False)
    columns: dict[str, pl.Series | list] = {"sha256": embeddings["sha256"]}
    scale = float(label_index["logit_scale"][0]) if label_index.height else 100.0
    names = [a for a in ATTRIBUTE_ORDER if a in attributes] + [a for a in attributes if a not in ATTRIBUTE_ORDER]
    names = [a for a in names if attributes[a].values]  # an attribute only a trained head knows has none
    for name in names:
        spec = attributes[name]
        labels = label_index.filter(pl.col("attribute") == name)
        # Order rows like the vocabulary so argmax indexes spec.values.
        labels = labels.join(pl.DataFrame({"value": list(spec.values), "_order": range(len(spec.values))}), on="value").sort("_order")
        if labels.height != len(spec.values):
            raise ValueError(f"label index lacks values for attribute '{name}': rebuild the label-text cache")
        text = labels["embedding"].to_numpy().astype(np.float32, copy=False)
        logits = scale * images @ text.T
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1)
        top = probs[np.arange(len(probs)), order[:, 0]] if len(probs) else np.zeros(0)
        second = probs[np.arange(len(probs)), order[:, 1]] if len(probs) else np.zeros(0)
        raw = np.asarray(spec.values, dtype=object)[order[:, 0]] if len(probs) else np.zeros(0, dtype=object)
        columns[f"{name}_raw"] = pl.Series(raw.tolist(), dtype=pl.Utf8)
        columns[f"{name}_confidence"] = pl.Series(top.astype(np.float64))
        columns[f"{name}_margin"] = pl.Series((top - second).astype(np.float64))
    frame = pl.DataFrame(columns)
    return frame.with_columns(
        [
            pl.when(pl.col(f"{n}_confidence") >= attributes[n].min_confidence)
            .then(pl.col(f"{n}_raw"))
            .otherwise(pl.lit(UNKNOWN))
            .alias(n)
            for n in names
        ]
    )
