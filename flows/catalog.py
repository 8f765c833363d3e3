"""The catalog enrichment flow: images -> attributes -> copy -> checks -> CSV + Parquet.

    ingest -> embed (per shard) -> classify (per shard) -> describe (per shard,
    overlapping the next shard's embedding) -> assemble -> validate -> export
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from catalog_intel.assemble import (abstention_counts, assemble, copy_failures, empty_copy, merge_rejects, shards,
                                    split_decoded)
from catalog_intel.clip_model import model_id as clip_model_id
from catalog_intel.clip_model import resolve_weights
from catalog_intel.config import resolve_config
from catalog_intel.runlock import RunLock
from catalog_intel.summary import RunFailed, RunSummary
from tasks.classify import classify_shard, prepare_label_index
from tasks.describe import describe_shard, ensure_rate_limit
from tasks.embed import embed_shard
from tasks.export import export_catalog
from tasks.ingest import ingest_images
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
) -> dict:
    """Enrich the images in `source` (folder or CSV/Parquet manifest) into `out_dir`."""
    started = time.monotonic()
    log = get_run_logger()
    config = resolve_config(config_path, clip_model, clip_pretrained, clip_checkpoint, llm_base_url, llm_model,
                            no_llm, cache_dir, shard_size)
    out = Path(out_dir)
    with RunLock(out):
        # Fail fast, before any work, if the weights are not here.
        resolve_weights(config.clip, config.paths.cache_path)
        model_id = clip_model_id(config.clip, config.paths.cache_path)
        with_copy = config.llm.enabled
        if with_copy:
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
            attributes = classify_shard(ok, config, model_id, label_index)
            attribute_parts.append(attributes)
            if with_copy:  # runs while the next shard embeds
                copy_futures.append(describe_shard.submit(attributes, config, shard_no))

        embed_status = pl.concat(statuses) if statuses else None
        summary.count_embeddings(embed_status)
        decoded, rejected_at_decode = split_decoded(inventory, embed_status)
        attributes = pl.concat(attribute_parts) if attribute_parts else None
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
            export_catalog(_empty_table(), rejects, out_dir)
            raise RunFailed(f"no usable images: all {summary.inputs} inputs were rejected (see {out / 'rejects.csv'})")

        validation, rejected_by_checks = validate_catalog(table, config, with_copy, out_dir)
        rejects = merge_rejects(rejected_at_ingest, rejected_at_decode, copy_failures(table), rejected_by_checks)
        final = table.filter(~pl.col("image").is_in(rejects["image"].implode())).drop("copy_error")
        paths = export_catalog(final, rejects, out_dir)

        summary.finish(rows=final.height, rejects=rejects.height, abstentions=abstention_counts(final),
                       validation=validation, outputs=paths, seconds=time.monotonic() - started)
        print(summary.one_line())
        create_markdown_artifact(key="catalog-run-summary", markdown=summary.markdown(), description="catalog-intel run summary")
        summary.raise_if_too_many_rejects(config.run.max_reject_share)
        return summary.as_dict()


def _empty_table() -> pl.DataFrame:
    from catalog_intel.export import CSV_COLUMNS

    return pl.DataFrame(schema={c: pl.Utf8 for c in CSV_COLUMNS})
