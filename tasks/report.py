from __future__ import annotations

import polars as pl
from prefect import task

from catalog_intel.config import Config
from catalog_intel.report import write_report

from .common import TASK_DEFAULTS, progress_bar


@task(name="review-report", **TASK_DEFAULTS)
def write_review_report(review: pl.DataFrame, rejects: pl.DataFrame, run: dict, config: Config, out_dir: str) -> str:
    """OUT/report/index.html with thumbnails (only new ones are made on a re-run)."""
    with progress_bar(None, "report thumbnails") as bar:
        return str(write_report(review, rejects, run, config, out_dir, progress=bar))
