"""The catalog enrichment flow: images -> attributes -> copy -> checks -> CSV + Parquet -> review report.

    ingest -> catalog facts and review edits -> map(enrich shard: embed, pixel colour,
    classify) -> reduce -> facts over the models -> describe (distinct attribute sets,
    batched and mapped) -> review edits -> validate
    -> search index, similar products, groups -> export (+ shop files) -> publish

The shard tasks run on the chosen task runner (runner.task_runner: local, or a
Dask cluster through prefect-dask); the parameters beyond source/out_dir/config_path
are the run overrides declared in catalog_intel/settings.py.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import polars as pl
from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run

from catalog_intel.copywriting.copy_sets import distinct_sets, expand_copy, keyed, sum_counts
from catalog_intel.copywriting.llm_service import llm_endpoint, uses_embedded
from catalog_intel.errors import RunFailed
from catalog_intel.exports.tables import withdraw_commit, write_commit
from catalog_intel.io.filesystem import configure, location, uri
from catalog_intel.io.layout import OutputLayout
from catalog_intel.io.runlock import RunLock, sweep_cache
from catalog_intel.orchestration.phases import current_phase_times
from catalog_intel.orchestration.preflight import preflight
from catalog_intel.orchestration.rate_limit import ensure_rate_limit
from catalog_intel.orchestration.runners import copy_runner, describe_runner, gpu_annotation, shard_runner
from catalog_intel.orchestration.tasks import (compact_caches, describe_batch, enrich_shard, export_catalog,
                                               export_shop_files, ingest_images, prepare_label_index,
                                               record_quality_history, relate_products, update_search_index,
                                               validate_catalog, write_review_report)
from catalog_intel.pipeline.assemble import (accepted, assemble_catalog, copy_failures, empty_copy, merge_rejects,
                                             not_rejected, run_meta)
from catalog_intel.pipeline.review_edits import RunFacts
from catalog_intel.pipeline.shard import Enriched, reduce_shards, shard_specs
from catalog_intel.pipeline.summary import RunSummary, summarise
from catalog_intel.report.render import review_rows
from catalog_intel.schemas import REJECTS_SCHEMA
from catalog_intel.search.index import write_run_config
from catalog_intel.settings import Config, resolve_settings, with_override_parameters


@flow(name="catalog", log_prints=True)
@with_override_parameters
def catalog_flow(source: str, out_dir: str, config_path: str | None = None, **overrides) -> dict:
    """Enrich the images in `source` (folder or CSV/Parquet manifest) into `out_dir`."""
    started = time.monotonic()
    settings = resolve_settings(config_path, **overrides)  # absolute paths: workers read no environment
    configure(settings.paths.storage_options)
    with RunLock(location(out_dir)), ExitStack() as services:
        sweep_cache(settings.paths.cache_path)  # temp files of a killed run that shared the cache
        model_id = preflight(settings, out_dir, warn=get_run_logger().warning)  # before any work
        withdraw_commit(out_dir)  # from here until write_commit, OUT is not a complete output set
        embedded = uses_embedded(settings)
        settings = start_llm(settings, services)
        inventory, rejected_at_ingest, skipped = ingest_images(source, settings)
        facts = RunFacts.load(inventory, settings, out_dir)  # supplier facts, reviewer edits (--facts)
        labels = prepare_label_index(settings, model_id)
        with shard_runner(settings) as runner:
            enriched = enrich(runner, facts.inventory, settings, model_id, labels)
            attributes = facts.attributes(enriched.attributes, settings)  # facts win; reviewed values locked
            with copy_runner(settings, runner, embedded) as llm_runner:
                copy, llm_counts = describe(facts.needing_copy(attributes), enriched.decoded, settings, llm_runner)
        meta = run_meta(settings, model_id, run_id())
        table, rejected_by_reviewer = facts.review(assemble_catalog(enriched.decoded, attributes, copy, meta))
        validation, rejects = check(table, settings, out_dir, rejected_at_ingest, enriched.rejected,
                                    rejected_by_reviewer)
        final = accepted(table, rejects)
        search, related = relate(final, settings, model_id, out_dir)
        outputs, export_warnings = export(final.join(related, on="image", how="left"), rejects, settings, model_id,
                                          out_dir)
        summary = summarise(inventory, rejected_at_ingest, skipped, facts.inventory, enriched, llm_counts, final,
                            rejects, validation, search, outputs, export_warnings, settings,
                            task_runner=describe_runner(settings), seconds=time.monotonic() - started,
                            phases=current_phase_times())
        publish(summary, table.join(related, on="image", how="left"), rejects, settings, out_dir)
        summary.raise_if_too_many_rejects(settings.run.max_reject_share)
        return summary.as_dict()


def run_id() -> str:
    return str(flow_run.id or "")


def start_llm(settings: Config, services: ExitStack) -> Config:
    """The LLM endpoint for the run (an embedded server when there is no base_url) and its rate limit."""
    if not settings.llm.enabled:
        return settings
    settings = services.enter_context(llm_endpoint(settings))
    ensure_rate_limit(settings.llm)
    return settings


def enrich(runner, inventory: pl.DataFrame, settings: Config, model_id: str, labels: pl.DataFrame) -> Enriched:
    """One enrich-shard task per shard, reduced to one row per content; on a cluster with GPU workers
    only those take them."""
    with gpu_annotation(runner):
        futures = runner.map(enrich_shard, {"spec": shard_specs(inventory, settings.run.shard_size),
                                            "config": unmapped(settings), "model_id": unmapped(model_id),
                                            "labels": unmapped(labels)})
    return reduce_shards(inventory, futures.result())


def describe(attributes: pl.DataFrame | None, decoded: pl.DataFrame, settings: Config,
             runner) -> tuple[pl.DataFrame, dict]:
    """Copy for each distinct attribute set of the run, one task per batch of sets."""
    if not settings.llm.enabled or attributes is None:
        return empty_copy(decoded["sha256"]), {}
    keys = keyed(attributes, settings.llm)
    batches = distinct_sets(attributes, keys, settings.llm.describe_batch)
    results = runner.map(describe_batch, {"sets": batches, "config": unmapped(settings),
                                          "batch_no": list(range(1, len(batches) + 1))}).result()
    return expand_copy(keys, [c for c, _ in results]), sum_counts([n for _, n in results])


def check(table: pl.DataFrame, settings: Config, out_dir: str, *earlier: pl.DataFrame) -> tuple[dict, pl.DataFrame]:
    """The data-quality checks over the rows not rejected already (failed copy, the reviewer's),
    and every reject of the run, reasons joined."""
    failed_copy = copy_failures(table)  # already rejected with the LLM's error
    to_check = not_rejected(table, failed_copy, *earlier)
    validation, rejected_by_checks = ({}, pl.DataFrame(schema=REJECTS_SCHEMA)) if to_check.is_empty() else \
        validate_catalog(to_check, settings, settings.llm.enabled, out_dir)
    return validation, merge_rejects(*earlier, failed_copy, rejected_by_checks)


def relate(final: pl.DataFrame, settings: Config, model_id: str, out_dir: str) -> tuple[dict, pl.DataFrame]:
    """Visual search: index the catalog's embeddings, then similar products and groups per row."""
    if final.is_empty():
        return {}, pl.DataFrame(schema={"image": pl.Utf8})
    search = update_search_index(final.select("image", "sha256"), settings, model_id, out_dir)
    related, group_counts = relate_products(final.select("image", "sha256"), settings, out_dir)
    return {**search, **group_counts}, related


def export(published: pl.DataFrame, rejects: pl.DataFrame, settings: Config, model_id: str,
           out_dir: str) -> tuple[dict[str, str], list[str]]:
    """The tables; with rows, the shop files (exports.formats), the run's CLIP settings for
    `similar`/`search`, and the caches compacted -> (paths written, shop-file warnings)."""
    paths = export_catalog(published, rejects, out_dir)
    if not published.height:
        return paths, []
    warnings: list[str] = []
    if settings.exports.formats:  # Shopify, Merchant Center, JSON Lines, product pages
        shop_paths, warnings = export_shop_files(published, settings, out_dir)
        paths.update(shop_paths)
    paths["run_config"] = str(write_run_config(out_dir, settings.clip.model_dump(by_alias=True), model_id,
                                               settings.paths.cache_path))
    compact_caches(settings, model_id)
    return paths, warnings


def publish(summary: RunSummary, table: pl.DataFrame, rejects: pl.DataFrame, settings: Config, out_dir: str) -> None:
    """The review report, the accounting line, the run's Prefect artifacts (summary + link to the
    report) and the commit file. The same for a failed run (no usable images), which then raises."""
    review = review_rows(table, rejects, settings, settings.llm.enabled)
    trend, summary.alerts = record_quality_history(summary.as_dict(), review, rejects, settings, out_dir)
    report = write_review_report(review, rejects, summary.as_dict(), settings, out_dir, trend, summary.alerts)
    summary.outputs["report"] = str(report)
    summary.time_fixed()
    print(summary.one_line())
    print(f"review report: {uri(report)}")
    create_markdown_artifact(key="catalog-run-summary", markdown=summary.markdown(), description="catalog-intel run summary")
    create_link_artifact(key="catalog-review-report", link=uri(report), link_text=f"review report ({report})",
                         description="catalog-intel review report: gallery, data quality, rejects (static HTML)")
    write_commit(out_dir, run_id(), summary.rows, summary.rejects, summary.outputs)
    if not summary.rows:
        raise RunFailed(f"no usable images: all {summary.inputs} inputs were rejected "
                        f"(see {OutputLayout(out_dir).rejects_csv})")
