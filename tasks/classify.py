from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import task

from catalog_intel.clip_model import load_clip
from catalog_intel.config import Config
from catalog_intel.embedding import embedding_store
from catalog_intel.color_fusion import fuse_color
from catalog_intel.heads import heads_for_shard
from catalog_intel.zeroshot import classify, load_or_build_label_index

from .common import TASK_DEFAULTS


@task(name="prepare-label-texts", **TASK_DEFAULTS)
def prepare_label_index(config: Config, model_id: str) -> str:
    """Encode the vocabulary prompts once per (model, vocabulary); returns the cache path."""
    path = load_or_build_label_index(
        config.paths.cache_path, model_id, config, lambda: load_clip(config.clip, config.paths.cache_path)
    )
    return str(path)


@task(name="classify-shard", **TASK_DEFAULTS)
def classify_shard(shas: list[str], config: Config, model_id: str, label_index_path: str,
                   pixel_colors: pl.DataFrame | None = None, items: pl.DataFrame | None = None) -> pl.DataFrame:
    """Zero-shot attributes for the shard's embedded images (one matmul per attribute),
    colour fused with the pixel colour by config.color.policy."""
    embeddings = embedding_store(config.paths.cache_path, model_id).lookup(shas)
    if embeddings is None or embeddings.is_empty():
        raise RuntimeError(f"no embeddings in the store for {len(shas)} images of this shard")
    attributes = classify(embeddings.select("sha256", "embedding"), pl.read_parquet(Path(label_index_path)),
                          config.attributes)
    # Trained heads (if configured) replace zero-shot for their attributes; items[sha256, path] feed a colour head.
    return heads_for_shard(fuse_color(attributes, pixel_colors, config), embeddings, config, model_id, items)
