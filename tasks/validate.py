from __future__ import annotations

import polars as pl
from prefect import task

from catalog_intel.config import Config
from catalog_intel.quality.validation import validate

from .common import TASK_DEFAULTS


@task(name="validate", **TASK_DEFAULTS)
def validate_catalog(table: pl.DataFrame, config: Config, with_copy: bool, out_dir: str) -> tuple[dict, pl.DataFrame]:
    """Great Expectations over the final table -> (summary, row rejects)."""
    return validate(table, config, with_copy, out_dir)
