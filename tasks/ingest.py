from __future__ import annotations

import polars as pl
from prefect import get_run_logger, task

from catalog_intel.config import Config
from catalog_intel.ingest import build_inventory, scan_folder
from catalog_intel.storage import FileHashCache

from .common import TASK_DEFAULTS, progress_bar


@task(name="ingest", **TASK_DEFAULTS)
def ingest_images(source: str, config: Config) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Folder or manifest -> (inventory with sha256 per image, rejects)."""
    import os

    total = scan_folder(source, config.run.image_extensions).height if os.path.isdir(source) else None
    cache = FileHashCache(config.paths.cache_path / "file_hashes") if config.run.hash_cache else None
    with progress_bar(total, "hash images") as bar:
        inventory, rejects = build_inventory(source, config.run.image_extensions, progress=bar, hash_cache=cache)
    if cache is not None:
        get_run_logger().info("ingest: %d files, %d sha256 from the hash cache", inventory.height + rejects.height,
                              cache.hits)
    return inventory, rejects
