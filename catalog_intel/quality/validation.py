"""Validation of the final table with Great Expectations: a JSON result, an
offline Data Docs site, and the row-level failures that become rejects."""

from __future__ import annotations

import json
import logging
import contextlib
import shutil
import tempfile
from pathlib import Path

import polars as pl

from catalog_intel.io.filesystem import atomic_write_text, is_local, local_mirror, publish_tree
from catalog_intel.io.layout import OutputLayout
from catalog_intel.quality.history import prune_validations
from catalog_intel.settings import Config

RESULT_FILE = "validation_result.json"
VALIDATIONS = "validations"  # the Data Docs' folder of validation pages (as in OUT/history/)


def with_derived_columns(table: pl.DataFrame) -> pl.DataFrame:
    """Columns GX can check where it has no expectation of its own (list lengths, word counts)."""
    if "title" not in table.columns:
        return table
    return table.with_columns(
        pl.col("title").str.split(" ").list.eval(pl.element().filter(pl.element() != "")).list.len()
        .cast(pl.Int64).alias("title_word_count"),
        pl.col("bullet_points").list.len().cast(pl.Int64).alias("bullet_count"),
        pl.col("seo_tags").list.len().cast(pl.Int64).alias("seo_tag_count"),
    )


def _gx_frame(table: pl.DataFrame):
    # GX 1.x takes pandas, not polars; list columns are checked through their counts.
    scalars = [c for c, t in table.schema.items() if not isinstance(t, (pl.List, pl.Array))]
    return table.select(scalars).to_pandas()


def _context_config(validations: Path):
    """An in-memory GX context whose validation results live on disk in `validations`, across runs."""
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults

    defaults = InMemoryStoreBackendDefaults()
    defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(validations)}
    return DataContextConfig(store_backend_defaults=defaults)


def _reuse_pages(validations: Path, docs_dir: Path, staging: Path) -> bool:
    """Copy the earlier runs' Data Docs pages into the new site when every stored result has one
    (then only this run's page and the index are rendered); False: render them all again."""
    stored = [p.relative_to(validations).with_suffix(".html") for p in validations.glob("*/*/*/*.json")]
    pages = [docs_dir / VALIDATIONS / rel for rel in stored]
    if not stored or not all(p.is_file() for p in pages) or not (docs_dir / "static").is_dir():
        return False
    shutil.copytree(docs_dir / "static", staging / "static")
    for rel, page in zip(stored, pages):
        (staging / VALIDATIONS / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, staging / VALIDATIONS / rel)
    return True


def docs_context(site_dir: Path, project_config=None):
    """An ephemeral GX context, without progress bars, whose Data Docs site "catalog" is written to `site_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral", project_config=project_config)
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.add_data_docs_site(site_name="catalog", site_config={
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
    })
    return context


def validate(table: pl.DataFrame, config: Config, with_copy: bool, out_dir: Path) -> tuple[dict, pl.DataFrame]:
    """Run the suite over `table` (row order = index). Writes the result JSON and
    Data Docs under out_dir; returns (summary, rejects[image, reason])."""
    import great_expectations as gx

    from catalog_intel.quality.expectations import build_suite

    from catalog_intel.quality.datadocs import make_site_offline

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    layout = OutputLayout(out_dir)  # absolute when local: GX needs absolute store paths
    out_dir = layout.out
    table = with_derived_columns(table)
    frame = _gx_frame(table)
    docs_dir = layout.data_docs
    staging = Path(tempfile.mkdtemp(prefix=".data_docs."))  # absolute, local: GX writes files itself
    stack = contextlib.ExitStack()
    try:
        validations = stack.enter_context(local_mirror(layout.validations))  # GX writes to disk
        prune_validations(validations, config.report.history_keep - 1)  # room for this run's
        incremental = is_local(out_dir) and _reuse_pages(validations, Path(docs_dir), staging)
        context = docs_context(staging, _context_config(validations))
        batch = context.data_sources.add_pandas("catalog").add_dataframe_asset("rows").add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(build_suite(config, with_copy))
        definition = context.validation_definitions.add(gx.ValidationDefinition(data=batch, suite=suite, name="catalog"))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name="catalog", validation_definitions=[definition], result_format="COMPLETE",
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["catalog"])],
        ))
        result = next(iter(checkpoint.run(batch_parameters={"dataframe": frame}).run_results.values()))
        if not incremental:  # the action rendered this run's page; render the earlier runs' too
            context.build_data_docs(site_names=["catalog"])
        make_site_offline(staging)
        staging.chmod(0o755)  # mkdtemp creates 0700
        publish_tree(str(staging), docs_dir)
    finally:
        stack.close()
        shutil.rmtree(staging, ignore_errors=True)

    atomic_write_text(out_dir / RESULT_FILE, json.dumps(result.to_json_dict(), indent=2, default=str))
    reasons: dict[int, list[str]] = {}
    failed = []
    for item in result.results:
        if item.success:
            continue
        reason = (item.expectation_config.meta or {}).get("reason") or item.expectation_config.type
        failed.append(reason)
        for idx in item.result.get("unexpected_index_list") or []:
            reasons.setdefault(int(idx), []).append(reason)
    images = table["image"].to_list()
    rejects = pl.DataFrame(
        {"image": [images[i] for i in sorted(reasons)], "reason": ["; ".join(dict.fromkeys(reasons[i])) for i in sorted(reasons)]},
        schema={"image": pl.Utf8, "reason": pl.Utf8},
    )
    stats = result.statistics
    summary = {
        "success": bool(result.success),
        "evaluated_expectations": int(stats["evaluated_expectations"]),
        "successful_expectations": int(stats["successful_expectations"]),
        "failed_expectations": failed,
        "rows_failing": rejects.height,
        "result_file": str(out_dir / RESULT_FILE),
        "data_docs": str(docs_dir / "index.html"),
    }
    return summary, rejects
