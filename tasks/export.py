from __future__ import annotations

import polars as pl
from prefect import get_run_logger, task

from catalog_intel.config import Config
from catalog_intel.exports.tables import write_outputs

from .common import TASK_DEFAULTS


@task(name="export", **TASK_DEFAULTS)
def export_catalog(table: pl.DataFrame, rejects: pl.DataFrame, out_dir: str) -> dict[str, str]:
    """catalog.csv, catalog.parquet and rejects.csv, each written atomically."""
    return write_outputs(table, rejects, out_dir)


@task(name="shop-exports", **TASK_DEFAULTS)
def export_shop_files(table: pl.DataFrame, config: Config, out_dir: str) -> tuple[dict[str, str], list[str]]:
    """OUT/exports/: the shop files named by exports.formats -> (paths, warnings: each missing shop value once)."""
    from catalog_intel.exports import write_exports

    paths, warnings = write_exports(table, out_dir, config)
    for warning in warnings:
        get_run_logger().warning(warning)
    return paths, warnings
