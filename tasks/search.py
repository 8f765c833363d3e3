from __future__ import annotations

import polars as pl
from prefect import get_run_logger, task

from catalog_intel.config import Config
from catalog_intel.inference.embedding import embedding_store
from catalog_intel.search.groups import group_products, group_summary
from catalog_intel.search.index import (SearchError, aligned_vectors, index_dir, load_index, save_index,
                                         similar_columns, update_index)
from catalog_intel.search.neighbours import load_neighbours, save_neighbours, update_neighbours

from .common import TASK_DEFAULTS, progress_bar


@task(name="update-search-index", **TASK_DEFAULTS)
def update_search_index(catalog: pl.DataFrame, config: Config, model_id: str, out_dir: str) -> dict:
    """Bring OUT/search in line with catalog[image, sha256]: only new contents are added,
    their vectors read from the embedding cache. Returns the update's counts."""
    log = get_run_logger()
    out = out_dir
    store = embedding_store(config.paths.cache_path, model_id)
    try:
        existing = load_index(out)
    except SearchError as exc:
        log.warning("%s -- rebuilding it now", exc)
        existing = None

    def fetch(shas: list[str]):
        return aligned_vectors(store.lookup(shas), shas, where=str(store.folder))

    index, update = update_index(existing, catalog["sha256"].to_list(), fetch, model_id, config.search)
    if existing is None or update.added or update.retired or update.reactivated or update.rebuilt:
        save_index(index, out)
    log.info("search index (%s, %d images) in %s: %d added, %d retired%s", update.kind, update.size, index_dir(out),
             update.added, update.retired, f", rebuilt: {update.reason}" if update.rebuilt else "")
    return update.as_dict()


@task(name="relate-products", **TASK_DEFAULTS)
def relate_products(catalog: pl.DataFrame, config: Config, out_dir: str) -> tuple[pl.DataFrame, dict]:
    """Top-k similar images and product groups for catalog[image, sha256] ->
    ([image, similar_images, similar_scores, group_id, group_size, duplicate_of], group counts)."""
    index = load_index(out_dir, config.search.hnsw_ef_search)
    if index is None:
        raise SearchError(f"no search index in {index_dir(out_dir)}: the update-search-index task must run first")
    shas = catalog["sha256"].unique(maintain_order=True).to_list()
    n = max(config.search.top_k + 1, config.search.group_neighbors)
    previous = load_neighbours(out_dir, index, n)  # the last run's: only what can have changed is asked
    with progress_bar(len(shas), "similar products") as bar:
        near, asked = update_neighbours(index, shas, n, previous, progress=bar)
    if previous is None or asked["queried"] or asked["updated"] or near.height != previous.height:
        save_neighbours(out_dir, near, index, n)  # unchanged (nothing new, nothing left): the kept table stands
    groups = group_products(catalog, near, config.search.group_threshold)
    related = pl.concat([catalog.select("image"), similar_columns(catalog, near, config.search.top_k), groups],
                        how="horizontal")
    counts = group_summary(groups)
    get_run_logger().info("similar products: top %d per image; %d product groups, %d exact duplicates; neighbours "
                          "asked for %d contents, kept for %d (%d of them gained a new one)", config.search.top_k,
                          counts["groups"], counts["exact_duplicates"], asked["queried"], asked["reused"],
                          asked["updated"])
    return related, counts
