"""Thin Prefect tasks around the pure pipeline steps in catalog_intel.

Each task works on one shard of images (never one image), takes and returns small
serialisable things (settings, paths, modest polars frames) and keeps heavy data in the
content-addressed stores, so the same tasks run on Dask workers. Caching is done by our
own stores (keyed by image sha256 and model id), which survive across runs; Prefect's
result persistence would only duplicate large frames on disk."""

from __future__ import annotations

import time
from collections import Counter

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from catalog_intel.copywriting.copy_sets import copy_style_counts
from catalog_intel.copywriting.copywriter import copy_store, describe, make_client
from catalog_intel.copywriting.grounding.gate import copy_check
from catalog_intel.copywriting.languages import describe_languages, extra_languages
from catalog_intel.exports import write_exports
from catalog_intel.exports.tables import write_outputs
from catalog_intel.inference.clip_model import load_clip
from catalog_intel.inference.embedding import embedding_store
from catalog_intel.inference.zeroshot import load_or_build_label_index
from catalog_intel.io.filesystem import configure, read_parquet
from catalog_intel.io.hash_cache import FileHashCache
from catalog_intel.io.ingest import build_inventory
from catalog_intel.io.layout import CacheLayout
from catalog_intel.orchestration.rate_limit import llm_api_key, throttle_for
from catalog_intel.pipeline.shard import ShardResult, ShardSpec, enrich, pixel_color_store
from catalog_intel.progress import progress_bar
from catalog_intel.quality.history import record_run
from catalog_intel.quality.validation import validate
from catalog_intel.report.render import write_report
from catalog_intel.search import update as search_update
from catalog_intel.settings import Config, LLMConfig

TASK_DEFAULTS = dict(cache_policy=NO_CACHE, persist_result=False)


def on_worker(config: Config) -> None:
    """What a task that may run in a Dask worker process sets up there from the settings it was
    handed: the storage options (kept in the process, never in an environment a child inherits)."""
    configure(config.paths.storage_options)


_clients: dict[tuple, object] = {}


def llm_client(llm: LLMConfig):
    """The LLM client of this worker process for an endpoint, built once (its key read once)."""
    key = (llm.base_url, llm.api_key_env, llm.api_key_secret_block, llm.timeout_s)
    if key not in _clients:
        _clients[key] = make_client(llm, llm_api_key(llm))
    return _clients[key]


@task(name="ingest", **TASK_DEFAULTS)
def ingest_images(source: str, config: Config) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Folder or manifest (path or URL) -> (inventory with sha256 per image, rejects, skipped dot files)."""
    cache = FileHashCache(CacheLayout(config.paths.cache_dir).file_hashes) if config.run.hash_cache else None
    with progress_bar(None, "hash images") as bar:
        inventory, rejects, skipped = build_inventory(source, config.run.image_extensions, progress=bar,
                                                      hash_cache=cache)
    get_run_logger().info("ingest: %d files = %d images + %d rejects + %d skipped (dot files); %d sha256 from the "
                          "hash cache", inventory.height + rejects.height + len(skipped), inventory.height,
                          rejects.height, len(skipped), cache.hits if cache is not None else 0)
    return inventory, rejects, skipped


@task(name="prepare-label-texts", **TASK_DEFAULTS)
def prepare_label_index(config: Config, model_id: str) -> pl.DataFrame:
    """The vocabulary prompts encoded once per (model, vocabulary): a small frame that travels to the workers."""
    path = load_or_build_label_index(
        config.paths.cache_path, model_id, config, lambda: load_clip(config.clip, config.paths.cache_path)
    )
    return read_parquet(path)


@task(name="enrich-shard", **TASK_DEFAULTS)
def enrich_shard(spec: ShardSpec, config: Config, model_id: str, labels: pl.DataFrame) -> ShardResult:
    """embed -> pixel colour -> classify for one shard, wherever the task runner puts it."""
    on_worker(config)
    return enrich(spec, config, model_id, labels, get_run_logger())


@task(name="describe-batch", **TASK_DEFAULTS)
def describe_batch(sets: pl.DataFrame, config: Config, batch_no: int) -> tuple[pl.DataFrame, dict]:
    """Copy for a batch of distinct attribute sets; cached copy costs no call. Every request,
    on any worker, passes the run's global rate limit."""
    on_worker(config)
    throttle = throttle_for(config.llm)
    client = llm_client(config.llm)
    started = time.monotonic()
    with progress_bar(sets.height, f"describe batch {batch_no}") as bar:
        copy, stats = describe(sets, config.llm, config.validation, config.paths.cache_path, throttle=throttle,
                               progress=bar, client=client, check=copy_check(config))
        more, more_stats = describe_languages(sets, config, describe, progress=bar, throttle=throttle, client=client)
    if extra_languages(config):
        copy = copy.join(more, on="sha256", how="left")
    every = [stats, *more_stats]
    counts = {f"llm_{k}": sum(getattr(s, k) for s in every)
              for k in ("calls", "retries", "failed", "cached", "schema_fallbacks", "completion_tokens")}
    # what copy costs per product described (cached copy costs nothing), and its stock phrases
    counts.update(llm_described=sum(s.first_answers for s in every), llm_seconds=time.monotonic() - started,
                  **copy_style_counts(copy))
    # why answers were retried or repaired: the first answers' problems, by kind
    get_run_logger().info("copy batch %d: %s; first answers %d, %d without a problem; problems %s; retries %s",
                          batch_no, counts, sum(s.first_answers for s in every), sum(s.first_clean for s in every),
                          dict(sum((s.problem_kinds for s in every), Counter()).most_common()),
                          dict(sum((s.retry_reasons for s in every), Counter())))
    return copy, counts


@task(name="validate", **TASK_DEFAULTS)
def validate_catalog(table: pl.DataFrame, config: Config, with_copy: bool, out_dir: str) -> tuple[dict, pl.DataFrame]:
    """Great Expectations over the final table -> (summary, row rejects)."""
    return validate(table, config, with_copy, out_dir)


@task(name="update-search-index", **TASK_DEFAULTS)
def update_search_index(catalog: pl.DataFrame, config: Config, model_id: str, out_dir: str) -> dict:
    """OUT/search in line with catalog[image, sha256]: only new contents are added."""
    store = embedding_store(config.paths.cache_path, model_id)
    return search_update.update_search_index(catalog, store, model_id, config.search, out_dir, get_run_logger())


@task(name="relate-products", **TASK_DEFAULTS)
def relate_products(catalog: pl.DataFrame, config: Config, out_dir: str) -> tuple[pl.DataFrame, dict]:
    """Top-k similar images and product groups per row."""
    with progress_bar(catalog["sha256"].n_unique(), "similar products") as bar:
        return search_update.relate_products(catalog, config.search, out_dir, get_run_logger(), progress=bar)


@task(name="export", **TASK_DEFAULTS)
def export_catalog(table: pl.DataFrame, rejects: pl.DataFrame, out_dir: str) -> dict[str, str]:
    """catalog.csv, catalog.parquet and rejects.csv, each written atomically."""
    return write_outputs(table, rejects, out_dir)


@task(name="shop-exports", **TASK_DEFAULTS)
def export_shop_files(table: pl.DataFrame, config: Config, out_dir: str) -> tuple[dict[str, str], list[str]]:
    """OUT/exports/: the shop files named by exports.formats -> (paths, warnings: each missing shop value once)."""
    paths, warnings = write_exports(table, out_dir, config)
    for warning in warnings:
        get_run_logger().warning(warning)
    return paths, warnings


@task(name="quality-history", **TASK_DEFAULTS)
def record_quality_history(run: dict, review: pl.DataFrame, rejects: pl.DataFrame, config: Config,
                           out_dir: str) -> tuple[dict | None, list[str]]:
    """Append this run to OUT/history/; returns (trend table, sudden-change alerts)."""
    r = config.report
    return record_run(out_dir, run, review, rejects, r.trend_runs, r.history_keep, r.alert_min_rejects,
                      r.alert_abstention_jump)


@task(name="review-report", **TASK_DEFAULTS)
def write_review_report(review: pl.DataFrame, rejects: pl.DataFrame, run: dict, config: Config, out_dir: str,
                        trend: dict | None = None, alerts: list[str] | None = None) -> str:
    """OUT/report/index.html with thumbnails (only new ones are made on a re-run) and product pages."""
    with progress_bar(None, "report thumbnails") as bar:
        return str(write_report(review, rejects, run, config, out_dir, progress=bar, trend=trend, alerts=alerts))


@task(name="compact-caches", **TASK_DEFAULTS)
def compact_caches(config: Config, model_id: str) -> int:
    """Merge the many small parts written during the run (one per batch, so a
    killed run loses little) into one file per store, keeping lookups fast."""
    cache = config.paths.cache_path
    stores = [embedding_store(cache, model_id), copy_store(cache), pixel_color_store(config)]
    return sum(store.compact(purge_after_s=config.paths.purge_after_s) for store in stores)
