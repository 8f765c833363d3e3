"""Duplicates and product groups (pure polars + scipy).

- Exact duplicates: files with the same content hash. The first image id (sorted) is the
  original; the others get `duplicate_of`.
- Product groups: near-duplicates and several shots of one product. Two contents are linked
  when one is among the other's nearest neighbours with cosine similarity at or above
  `search.group_threshold`; groups are the connected components of those links, so
  identical files always share a group. `group_id` is the smallest image id in the group,
  which keeps it stable across runs and independent of row order."""

from __future__ import annotations

import numpy as np
import polars as pl

GROUP_SCHEMA = {"group_id": pl.Utf8, "group_size": pl.UInt32, "duplicate_of": pl.Utf8}


def group_products(catalog: pl.DataFrame, near: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """catalog[image, sha256] and neighbour links near[sha256, neighbour, score] ->
    [group_id, group_size, duplicate_of], one row per catalog row, same order."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if catalog.is_empty():
        return pl.DataFrame(schema=GROUP_SCHEMA)
    nodes = catalog.select(pl.col("sha256").unique().sort()).with_row_index("_node")
    links = (
        near.filter((pl.col("score") >= threshold) & (pl.col("sha256") != pl.col("neighbour")))
        .join(nodes, on="sha256")
        .join(nodes.rename({"sha256": "neighbour", "_node": "_other"}), on="neighbour")
    )
    n = nodes.height
    graph = coo_matrix((np.ones(links.height, dtype=np.int8), (links["_node"].to_numpy(), links["_other"].to_numpy())),
                       shape=(n, n))
    _, labels = connected_components(graph, directed=True, connection="weak")
    nodes = nodes.with_columns(pl.Series("_component", labels, dtype=pl.Int64))
    rows = catalog.select("image", "sha256").with_row_index("_row").join(nodes, on="sha256", how="left")
    return (
        rows.with_columns(
            pl.col("image").min().over("_component").alias("group_id"),
            pl.len().over("_component").cast(pl.UInt32).alias("group_size"),
            pl.col("image").min().over("sha256").alias("_original"),
        )
        .with_columns(pl.when(pl.col("_original") != pl.col("image")).then(pl.col("_original"))
                      .otherwise(None).alias("duplicate_of"))
        .sort("_row")
        .select(list(GROUP_SCHEMA))
    )


def group_summary(groups: pl.DataFrame) -> dict[str, int]:
    """Counts for the run summary: groups of 2+ images, images in them, exact duplicates."""
    if groups.is_empty():
        return {"groups": 0, "grouped_images": 0, "exact_duplicates": 0}
    multi = groups.filter(pl.col("group_size") > 1)
    return {"groups": multi["group_id"].n_unique(), "grouped_images": multi.height,
            "exact_duplicates": int(groups["duplicate_of"].is_not_null().sum())}
