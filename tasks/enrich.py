from __future__ import annotations

import polars as pl
from prefect import get_run_logger, task

from catalog_intel.inference.clip_model import load_clip
from catalog_intel.config import Config
from catalog_intel.pipeline.shard import ShardResult, ShardSpec, enrich
from catalog_intel.io.storage import read_parquet
from catalog_intel.inference.zeroshot import load_or_build_label_index

from .common import TASK_DEFAULTS


@task(name="prepare-label-texts", **TASK_DEFAULTS)
def prepare_label_index(config: Config, model_id: str) -> pl.DataFrame:
    """The vocabulary prompts encoded once per (model, vocabulary): a small frame that travels to the workers."""
    path = load_or_build_label_index(
        config.paths.cache_path, model_id, config, lambda: load_clip(config.clip, config.paths.cache_path)
    )
    return read_parquet(path)


@task(name="enrich-shard", **TASK_DEFAULTS)
def enrich_shard(spec: ShardSpec, config: Config, model_id: str, labels: pl.DataFrame) -> ShardResult:
    """embed -> pixel colour -> classify for one shard, wherever the task runner puts it."""
    return enrich(spec, config, model_id, labels, get_run_logger())
