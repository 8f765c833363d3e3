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
from datetime import datetime, timezone

import polars as pl
from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run

from catalog_intel.copywriting.copy_sets import distinct_sets, expand_copy, keyed, sum_counts
from catalog_intel.copywriting.llm_service import llm_endpoint, uses_embedded
from catalog_intel.errors import RunFailed
from catalog_intel.exports.tables import withdraw_commit, write_commit
from catalog_intel.inference.clip_model import model_id as clip_model_id, resolve_weights
from catalog_intel.inference.heads import configured_heads
from catalog_intel.io.filesystem import configure, location, uri
from catalog_intel.io.runlock import RunLock, sweep_cache
from catalog_intel.layout import OutputLayout
from catalog_intel.orchestration.phases import current_phase_times
from catalog_intel.orchestration.rate_limit import ensure_rate_limit
from catalog_intel.orchestration.runners import (check_runner, copy_runner, describe_runner, gpu_annotation,
                                                 shard_runner)
from catalog_intel.orchestration.tasks import (compact_caches, describe_batch, enrich_shard, export_catalog,
                                               export_shop_files, ingest_images, prepare_label_index,
                                               record_quality_history, relate_products, update_search_index,
                                               validate_catalog, write_review_report)
from catalog_intel.pipeline.assemble import abstention_counts, assemble, copy_failures, empty_copy, merge_rejects
from catalog_intel.pipeline.facts import completeness, unmapped_facts
from catalog_intel.pipeline.review_edits import RunFacts
from catalog_intel.pipeline.shard import reduce_shards, shard_specs
from catalog_intel.pipeline.summary import RunSummary
from catalog_intel.report.render import review_rows
from catalog_intel.schemas import CSV_COLUMNS
from catalog_intel.search.index import write_run_config
from catalog_intel.settings import Config, resolve_settings, with_override_parameters


@flow(name="catalog", log_prints=True)
@with_override_parameters
def catalog_flow(source: str, out_dir: str, config_path: str | None = None, **overrides) -> dict:
    """Enrich the images in `source` (folder or CSV/Parquet manifest) into `out_dir`."""
    started = time.monotonic()
    config = resolve_settings(config_path, **overrides)  # absolute paths: workers read no environment
    configure(config.paths.storage_options)
    with RunLock(location(out_dir)), ExitStack() as services:
        sweep_cache(config.paths.cache_path)  # temp files of a killed run that shared the cache
        model_id = _check_model(config)  # before any work
        withdraw_commit(out_dir)  # from here until write_commit, OUT is not a complete output set
        embedded = uses_embedded(config)
        config = _start_llm(config, services)
        inventory, rejected_at_ingest, skipped = ingest_images(source, config)
        facts = RunFacts.load(inventory, config, out_dir)  # supplier facts, reviewer edits (--facts)
        labels = prepare_label_index(config, model_id)
        with shard_runner(config) as runner:
            enriched = reduce_shards(facts.inventory, _enrich(runner, facts.inventory, config, model_id, labels))
            attributes = facts.attributes(enriched.attributes, config)  # facts win; reviewed values locked
            with copy_runner(config, runner, embedded) as llm_runner:
                copy, llm_counts = _describe(facts.needing_copy(attributes), enriched.decoded, config, llm_runner)
        summary = RunSummary(inputs=inventory.height + rejected_at_ingest.height + len(skipped), skipped=len(skipped),
                             **llm_counts,
                             task_runner=describe_runner(config), workers=enriched.shards_by_worker)
        summary.count_embeddings(enriched.status)
        summary.count_cpu(enriched.cpu, enriched.images_decoded)
        summary.shards_span = (enriched.first_started, enriched.last_ended)
        table = assemble(enriched.decoded, attributes, copy, _meta(config, model_id)) \
            if attributes is not None else _empty_table()
        table, rejected_by_reviewer = facts.review(table)
        failed_copy = copy_failures(table)  # already rejected with the LLM's error; the checks see the rest
        unchecked = pl.concat([failed_copy.select("image"), rejected_by_reviewer.select("image")])
        validation, rejected_by_checks = _validate(table.filter(~pl.col("image").is_in(unchecked["image"].implode())),
                                                   config, out_dir)
        rejects = merge_rejects(rejected_at_ingest, enriched.rejected, rejected_by_reviewer, failed_copy,
                                rejected_by_checks)
        final = table.filter(~pl.col("image").is_in(rejects["image"].implode())).drop("copy_error", strict=False)
        search, related = _relate(final, config, model_id, out_dir)
        published = final.join(related, on="image", how="left")
        paths = export_catalog(published, rejects, out_dir)
        if config.exports.formats and final.height:  # shop files: Shopify, Merchant Center, JSON Lines, pages
            shop_paths, summary.export_warnings = export_shop_files(published, config, out_dir)
            paths.update(shop_paths)
        if final.height:
            paths["run_config"] = str(write_run_config(location(out_dir), config.clip.model_dump(by_alias=True), model_id,
                                                       config.paths.cache_path))
            compact_caches(config, model_id)
        summary.finish(rows=final.height, rejects=rejects.height, abstentions=abstention_counts(final),
                       validation=validation, search=search, outputs=paths, seconds=time.monotonic() - started,
                       completeness=completeness(facts.inventory, final, config),
                       facts_unmapped=unmapped_facts(facts.inventory, config),
                       phases=current_phase_times())
        _publish(summary, table.join(related, on="image", how="left"), rejects, config, out_dir)
        summary.raise_if_too_many_rejects(config.run.max_reject_share)
        return summary.as_dict()


def _check_model(config: Config) -> str:
    """Fail fast, before any work, if the weights are not here or the runner choice cannot work."""
    resolve_weights(config.clip, config.paths.cache_path)
    note = check_runner(config, uses_embedded(config))
    if note:
        get_run_logger().warning(note)
    model_id = clip_model_id(config.clip, config.paths.cache_path)
    configured_heads(config.attributes, model_id)  # a head trained for another CLIP model stops the run here
    return model_id


def _enrich(runner, inventory: pl.DataFrame, config: Config, model_id: str, labels: pl.DataFrame) -> list:
    """One enrich-shard task per shard; on a cluster with GPU workers only those take them."""
    with gpu_annotation(runner):
        futures = runner.map(enrich_shard, {"spec": shard_specs(inventory, config.run.shard_size),
                                            "config": unmapped(config), "model_id": unmapped(model_id),
                                            "labels": unmapped(labels)})
    return futures.result()


def _start_llm(config: Config, services: ExitStack) -> Config:
    if not config.llm.enabled:
        return config
    config = services.enter_context(llm_endpoint(config))  # embedded server when no base_url
    ensure_rate_limit(config.llm)
    return config


def _describe(attributes: pl.DataFrame | None, decoded: pl.DataFrame, config: Config, runner) -> tuple[pl.DataFrame, dict]:
    """Copy for each distinct attribute set of the run, one task per batch of sets."""
    if not config.llm.enabled or attributes is None:
        return empty_copy(decoded["sha256"]), {}
    keys = keyed(attributes, config.llm)
    batches = distinct_sets(attributes, keys, config.llm.describe_batch)
    results = runner.map(describe_batch, {"sets": batches, "config": unmapped(config),
                                          "batch_no": list(range(1, len(batches) + 1))}).result()
    return expand_copy(keys, [c for c, _ in results]), sum_counts([n for _, n in results])


def _validate(table: pl.DataFrame, config: Config, out_dir: str) -> tuple[dict, pl.DataFrame]:
    if table.is_empty():
        return {}, pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8})
    return validate_catalog(table, config, config.llm.enabled, out_dir)


def _relate(final: pl.DataFrame, config: Config, model_id: str, out_dir: str) -> tuple[dict, pl.DataFrame]:
    """Visual search: index the catalog's embeddings, then similar products and groups per row."""
    if final.is_empty():
        return {}, pl.DataFrame(schema={"image": pl.Utf8})
    search = update_search_index(final.select("image", "sha256"), config, model_id, out_dir)
    related, group_counts = relate_products(final.select("image", "sha256"), config, out_dir)
    return {**search, **group_counts}, related


def _meta(config: Config, model_id: str) -> dict:
    with_copy = config.llm.enabled
    return {
        "clip_model_id": model_id,
        "llm_model": config.llm.model if with_copy else None,
        "prompt_version": config.llm.prompt_version if with_copy else None,
        "run_id": _run_id(),
        "processed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _run_id() -> str:
    return str(flow_run.id or "")


def _publish(summary: RunSummary, table: pl.DataFrame, rejects: pl.DataFrame, config: Config, out_dir: str) -> None:
    """The review report, the accounting line, and the run's Prefect artifacts (summary + link to the report).
    The same for a failed run (no usable images), which then raises."""
    review = review_rows(table, rejects, config, config.llm.enabled)
    trend, summary.alerts = record_quality_history(summary.as_dict(), review, rejects, config, out_dir)
    report = write_review_report(review, rejects, summary.as_dict(), config, out_dir, trend, summary.alerts)
    summary.outputs["report"] = str(report)
    summary.time_fixed()
    print(summary.one_line())
    print(f"review report: {uri(report)}")
    create_markdown_artifact(key="catalog-run-summary", markdown=summary.markdown(), description="catalog-intel run summary")
    create_link_artifact(key="catalog-review-report", link=uri(report), link_text=f"review report ({report})",
                         description="catalog-intel review report: gallery, data quality, rejects (static HTML)")
    write_commit(out_dir, _run_id(), summary.rows, summary.rejects, summary.outputs)
    if not summary.rows:
        raise RunFailed(f"no usable images: all {summary.inputs} inputs were rejected "
                        f"(see {OutputLayout(out_dir).rejects_csv})")


def _empty_table() -> pl.DataFrame:
    return pl.DataFrame(schema={c: pl.Utf8 for c in (*CSV_COLUMNS, "sha256", "copy_error")})
