from __future__ import annotations

from prefect import task

from catalog_intel.config import Config
from catalog_intel.copywriter import copy_store
from catalog_intel.embedding import embedding_store

from .common import TASK_DEFAULTS


@task(name="compact-caches", **TASK_DEFAULTS)
def compact_caches(config: Config, model_id: str) -> int:
    """Merge the many small parts written during the run (one per batch, so a
    killed run loses little) into one file per store, keeping lookups fast."""
    cache = config.paths.cache_path
    return embedding_store(cache, model_id).compact() + copy_store(cache).compact()
