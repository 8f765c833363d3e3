from __future__ import annotations

import polars as pl
from prefect import task

from catalog_intel.config import Config
from catalog_intel.ingest import build_inventory, scan_folder

from .common import TASK_DEFAULTS, progress_bar


@task(name="ingest", **TASK_DEFAULTS)
def ingest_images(source: str, config: Config) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Folder or manifest -> (inventory with sha256 per image, rejects)."""
    import os

    total = scan_folder(source, config.run.image_extensions).height if os.path.isdir(source) else None
    with progress_bar(total, "hash images") as bar:
        return build_inventory(source, config.run.image_extensions, progress=bar)
