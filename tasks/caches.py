from __future__ import annotations

from prefect import task

from catalog_intel.config import Config
from catalog_intel.copywriting.copywriter import copy_store
from catalog_intel.inference.embedding import embedding_store
from catalog_intel.pipeline.shard import pixel_color_store

from .common import TASK_DEFAULTS


@task(name="compact-caches", **TASK_DEFAULTS)
def compact_caches(config: Config, model_id: str) -> int:
    """Merge the many small parts written during the run (one per batch, so a
    killed run loses little) into one file per store, keeping lookups fast."""
    cache = config.paths.cache_path
    stores = [embedding_store(cache, model_id), copy_store(cache), pixel_color_store(config)]
    return sum(store.compact(purge_after_s=config.paths.purge_after_s) for store in stores)
