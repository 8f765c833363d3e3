from __future__ import annotations

import polars as pl
from prefect import task

from catalog_intel.config import Config
from catalog_intel.quality.history import record_run
from catalog_intel.report.render import write_report

from .common import TASK_DEFAULTS, progress_bar


@task(name="review-report", **TASK_DEFAULTS)
def write_review_report(review: pl.DataFrame, rejects: pl.DataFrame, run: dict, config: Config, out_dir: str,
                        trend: dict | None = None, alerts: list[str] | None = None) -> str:
    """OUT/report/index.html with thumbnails (only new ones are made on a re-run) and product pages."""
    with progress_bar(None, "report thumbnails") as bar:
        return str(write_report(review, rejects, run, config, out_dir, progress=bar, trend=trend, alerts=alerts))


@task(name="quality-history", **TASK_DEFAULTS)
def record_quality_history(run: dict, review: pl.DataFrame, rejects: pl.DataFrame, config: Config,
                           out_dir: str) -> tuple[dict | None, list[str]]:
    """Append this run to OUT/history/; returns (trend table, sudden-change alerts)."""
    r = config.report
    return record_run(out_dir, run, review, rejects, r.trend_runs, r.history_keep, r.alert_min_rejects,
                      r.alert_abstention_jump)
