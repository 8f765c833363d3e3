"""Keep OUT/search in line with the catalog, and the similar products and groups of each row."""

from __future__ import annotations

import logging

import polars as pl

from catalog_intel.errors import SearchError
from catalog_intel.io.parquet_store import ParquetStore
from catalog_intel.search.groups import group_products, group_summary
from catalog_intel.search.index import (aligned_vectors, index_dir, load_index, save_index, similar_columns, update_index)
from catalog_intel.search.neighbours import load_neighbours, save_neighbours, update_neighbours
from catalog_intel.settings import SearchConfig


def update_search_index(catalog: pl.DataFrame, store: ParquetStore, model_id: str, search: SearchConfig,
                        out_dir: str, log: logging.Logger) -> dict:
    """Bring OUT/search in line with catalog[image, sha256]: only new contents are added,
    their vectors read from the embedding store. Returns the update's counts."""
    try:
        existing = load_index(out_dir)
    except SearchError as exc:
        log.warning("%s -- rebuilding it now", exc)
        existing = None

    def fetch(shas: list[str]):
        return aligned_vectors(store.lookup(shas), shas, where=str(store.folder))

    index, update = update_index(existing, catalog["sha256"].to_list(), fetch, model_id, search)
    if existing is None or update.added or update.retired or update.reactivated or update.rebuilt:
        save_index(index, out_dir)
    log.info("search index (%s, %d images) in %s: %d added, %d retired%s", update.kind, update.size,
             index_dir(out_dir), update.added, update.retired, f", rebuilt: {update.reason}" if update.rebuilt else "")
    return update.as_dict()


def relate_products(catalog: pl.DataFrame, search: SearchConfig, out_dir: str, log: logging.Logger,
                    progress=None) -> tuple[pl.DataFrame, dict]:
    """Top-k similar images and product groups for catalog[image, sha256] ->
    ([image, similar_images, similar_scores, group_id, group_size, duplicate_of], group counts)."""
    index = load_index(out_dir, search.hnsw_ef_search)
    if index is None:
        raise SearchError(f"no search index in {index_dir(out_dir)}: the search index must be updated first")
    shas = catalog["sha256"].unique(maintain_order=True).to_list()
    n = max(search.top_k + 1, search.group_neighbors)
    previous = load_neighbours(out_dir, index, n)  # the last run's: only what can have changed is asked
    near, asked = update_neighbours(index, shas, n, previous, progress=progress)
    if previous is None or asked["queried"] or asked["updated"] or near.height != previous.height:
        save_neighbours(out_dir, near, index, n)  # unchanged (nothing new, nothing left): the kept table stands
    groups = group_products(catalog, near, search.group_threshold)
    related = pl.concat([catalog.select("image"), similar_columns(catalog, near, search.top_k), groups],
                        how="horizontal")
    counts = group_summary(groups)
    log.info("similar products: top %d per image; %d product groups, %d exact duplicates; neighbours asked for %d "
             "contents, kept for %d (%d of them gained a new one)", search.top_k, counts["groups"],
             counts["exact_duplicates"], asked["queried"], asked["reused"], asked["updated"])
    return related, counts
