from __future__ import annotations

import polars as pl
from prefect import get_run_logger, task

from catalog_intel.config import Config
from catalog_intel.io.ingest import build_inventory
from catalog_intel.io.storage import FileHashCache

from .common import TASK_DEFAULTS, progress_bar


@task(name="ingest", **TASK_DEFAULTS)
def ingest_images(source: str, config: Config) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Folder or manifest (path or URL) -> (inventory with sha256 per image, rejects, skipped dot files)."""
    cache = FileHashCache(config.paths.cache_path / "file_hashes") if config.run.hash_cache else None
    with progress_bar(None, "hash images") as bar:
        inventory, rejects, skipped = build_inventory(source, config.run.image_extensions, progress=bar,
                                                      hash_cache=cache)
    get_run_logger().info("ingest: %d files = %d images + %d rejects + %d skipped (dot files); %d sha256 from the "
                          "hash cache", inventory.height + rejects.height + len(skipped), inventory.height,
                          rejects.height, len(skipped), cache.hits if cache is not None else 0)
    return inventory, rejects, skipped
