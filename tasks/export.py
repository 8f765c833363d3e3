from __future__ import annotations

import polars as pl
from prefect import task

from catalog_intel.export import write_outputs

from .common import TASK_DEFAULTS


@task(name="export", **TASK_DEFAULTS)
def export_catalog(table: pl.DataFrame, rejects: pl.DataFrame, out_dir: str) -> dict[str, str]:
    """catalog.csv, catalog.parquet and rejects.csv, each written atomically."""
    return write_outputs(table, rejects, out_dir)
