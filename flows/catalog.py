"""The catalog enrichment flow: images -> attributes -> copy -> checks -> CSV + Parquet -> review report.

    ingest -> embed (per shard) -> classify (per shard) -> describe (per shard,
    overlapping the next shard's embedding) -> assemble -> validate -> search index
    -> similar products + groups -> export -> review report
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run

from catalog_intel.assemble import (abstention_counts, assemble, copy_failures, empty_copy, merge_rejects, shards,
                                    split_decoded)
from catalog_intel.clip_model import model_id as clip_model_id
from catalog_intel.clip_model import resolve_weights
from catalog_intel.config import Config, resolve_config
from catalog_intel.heads import configured_heads
from catalog_intel.llm_service import llm_endpoint
from catalog_intel.report import review_rows
from catalog_intel.runlock import RunLock
from catalog_intel.search import write_run_config
from catalog_intel.summary import RunFailed, RunSummary
from tasks.caches import compact_caches
from tasks.color import pixel_color_shard
from tasks.classify import classify_shard, prepare_label_index
from tasks.describe import describe_shard, ensure_rate_limit
from tasks.embed import embed_shard
from tasks.export import export_catalog
from tasks.ingest import ingest_images
from tasks.report import write_review_report
from tasks.search import relate_products, update_search_index
from tasks.validate import validate_catalog




@flow(name="catalog", log_prints=True)
def catalog_flow(
    source: str,
    out_dir: str,
    config_path: str | None = None,
    clip_model: str | None = None,
    clip_pretrained: str | None = None,
    clip_checkpoint: str | None = None,
    llm_base_url: str | None = None,
    llm_model: str | None = None,
    no_llm: bool = False,
    cache_dir: str | None = None,
    shard_size: int | None = None,
    color_policy: str | None = None,
    heads: str | None = None,
) -> dict:
    """Enrich the images in `source` (folder or CSV/Parquet manifest) into `out_dir`."""
    started = time.monotonic()
    log = get_run_logger()
    config = resolve_config(config_path, clip_model, clip_pretrained, clip_checkpoint, llm_base_url, llm_model,
                            no_llm, cache_dir, shard_size, color_policy, heads)
    out = Path(out_dir)
    with RunLock(out), ExitStack() as services:
        # Fail fast, before any work, if the weights are not here.
        resolve_weights(config.clip, config.paths.cache_path)
        model_id = clip_model_id(config.clip, config.paths.cache_path)
        configured_heads(config.attributes, model_id)  # a head for another CLIP model stops the run here
        with_copy = config.llm.enabled
        if with_copy:
            config = services.enter_context(llm_endpoint(config))  # embedded server when no base_url
            ensure_rate_limit(config.llm)

        inventory, rejected_at_ingest = ingest_images(source, config)
        summary = RunSummary(inputs=inventory.height + rejected_at_ingest.height)
        label_index = prepare_label_index(config, model_id)

        statuses, attribute_parts, copy_futures = [], [], []
        batches = shards(inventory.select("sha256", "path"), config.run.shard_size)
        log.info("%d images in %d shards of up to %d", inventory.height, len(batches), config.run.shard_size)
        for shard_no, shard in enumerate(batches, 1):
            status = embed_shard(shard, config, model_id, shard_no)
            statuses.append(status)
            ok = status.filter(pl.col("status") != "rejected")["sha256"].to_list()
            if not ok:
                continue
            pixels = pixel_color_shard(shard.filter(pl.col("sha256").is_in(ok)), config) \
                if config.color.policy != "clip" else None
            attributes = classify_shard(ok, config, model_id, label_index, pixels, shard)
            attribute_parts.append(attributes)
            if with_copy:  # runs while the next shard embeds
                copy_futures.append(describe_shard.submit(attributes, config, shard_no))

        # Content shared by images in different shards is embedded once, classified per shard: keep one row per sha.
        embed_status = pl.concat(statuses).unique(subset="sha256", keep="first", maintain_order=True) if statuses else None
        summary.count_embeddings(embed_status)
        decoded, rejected_at_decode = split_decoded(inventory, embed_status)
        attributes = pl.concat(attribute_parts).unique(subset="sha256", keep="first", maintain_order=True) \
            if attribute_parts else None
        if with_copy and copy_futures:
            results = [f.result() for f in copy_futures]
            copy = pl.concat([c for c, _ in results])
            for _, counts in results:
                summary.count_llm(counts)
        else:
            copy = empty_copy(decoded["sha256"])

        meta = {
            "clip_model_id": model_id,
            "llm_model": config.llm.model if with_copy else None,
            "prompt_version": config.llm.prompt_version if with_copy else None,
            "run_id": str(flow_run.id or ""),
            "processed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        table = assemble(decoded, attributes, copy, meta) if attributes is not None else None
        if table is None or table.is_empty():
            rejects = merge_rejects(rejected_at_ingest, rejected_at_decode)
            paths = export_catalog(_empty_table(), rejects, out_dir)
            summary.finish(rejects=rejects.height, outputs=paths, seconds=time.monotonic() - started)
            _publish(summary, _empty_table(), rejects, config, with_copy, out_dir)
            raise RunFailed(f"no usable images: all {summary.inputs} inputs were rejected (see {out / 'rejects.csv'})")

        # Rows whose copy failed are already rejected with the LLM's error; the checks see the rest.
        failed_copy = copy_failures(table)
        checked = table.filter(~pl.col("image").is_in(failed_copy["image"].implode()))
        validation, rejected_by_checks = validate_catalog(checked, config, with_copy, out_dir)
        rejects = merge_rejects(rejected_at_ingest, rejected_at_decode, failed_copy, rejected_by_checks)
        final = table.filter(~pl.col("image").is_in(rejects["image"].implode())).drop("copy_error")

        # Visual search: index the catalog's embeddings, then similar products and groups per row.
        search = update_search_index(final.select("image", "sha256"), config, model_id, out_dir)
        related, group_counts = relate_products(final.select("image", "sha256"), config, out_dir)
        final = final.join(related, on="image", how="left")
        paths = export_catalog(final, rejects, out_dir)
        paths["run_config"] = str(write_run_config(out, config.clip.model_dump(by_alias=True), model_id,
                                                   config.paths.cache_path))
        compact_caches(config, model_id)

        summary.finish(rows=final.height, rejects=rejects.height, abstentions=abstention_counts(final),
                       validation=validation, search={**search, **group_counts}, outputs=paths,
                       seconds=time.monotonic() - started)
        _publish(summary, table.join(related, on="image", how="left"), rejects, config, with_copy, out_dir)
        summary.raise_if_too_many_rejects(config.run.max_reject_share)
        return summary.as_dict()


def _publish(summary: RunSummary, table: pl.DataFrame, rejects: pl.DataFrame, config: Config, with_copy: bool,
             out_dir: str) -> None:
    """The review report, the accounting line, and the run's Prefect artifacts (summary + link to the report)."""
    review = review_rows(table, rejects, config, with_copy)
    report = Path(write_review_report(review, rejects, summary.as_dict(), config, out_dir)).resolve()
    summary.outputs["report"] = str(report)
    print(summary.one_line())
    print(f"review report: {report.as_uri()}")
    create_markdown_artifact(key="catalog-run-summary", markdown=summary.markdown(), description="catalog-intel run summary")
    create_link_artifact(key="catalog-review-report", link=report.as_uri(), link_text=f"review report ({report})",
                         description="catalog-intel review report: gallery, data quality, rejects (static HTML)")


def _empty_table() -> pl.DataFrame:
    from catalog_intel.export import CSV_COLUMNS

    return pl.DataFrame(schema={c: pl.Utf8 for c in CSV_COLUMNS})
