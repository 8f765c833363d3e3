"""Nearest neighbours of every catalog content, kept between runs.

A nightly run over a large catalog adds few images; asking the index again for the
neighbours of every old one made similar products the largest phase that grew with the
catalog. The previous run's table is kept in OUT/search, and a run asks only for what
can have changed:
- new contents: their n nearest, from the index;
- old contents that lost a neighbour (it left the catalog): asked again;
- old contents that a new one may enter: the new one replaces their n-th neighbour when
  it scores higher. On the exact index that is decided for every old content (one matrix
  product against the new vectors), so the table equals a fresh one; on the HNSW index,
  approximate anyway, from the new contents' own wider neighbour lists.
The table is valid for one (model, index kind, n); anything else starts afresh."""

from __future__ import annotations

import json
import logging
import os
import uuid

import numpy as np
import polars as pl

from catalog_intel.errors import SearchError
from catalog_intel.io.filesystem import (atomic_write_text, isfile, list_dir, read_bytes, read_parquet, remove_files,
                                         write_parquet)
from catalog_intel.search.index import EXACT, SearchIndex, index_dir, search_vectors

NEAR_MANIFEST = "neighbours.json"
NEAR_SCHEMA = {"sha256": pl.Utf8, "neighbour": pl.Utf8, "score": pl.Float32}
_BATCH = 4096
_REVERSE_WIDTH = 2  # the HNSW reverse check looks this many times n deep from each new content


def neighbours(idx: SearchIndex, shas: list[str], n: int, progress=None) -> pl.DataFrame:
    """The n nearest active entries of each hash in `shas` (all in the index):
    [sha256, neighbour, score], the hash itself included."""
    scores, ids = _query(idx, shas, n, progress)
    return _frame(idx, shas, scores, ids)


def update_neighbours(idx: SearchIndex, shas: list[str], n: int, previous: pl.DataFrame | None,
                      progress=None) -> tuple[pl.DataFrame, dict]:
    """neighbours(idx, shas, n), reusing `previous` (an earlier result for this index's model,
    kind and n) where nothing can have changed. Returns the table and what was asked:
    {"queried": new + re-asked contents, "reused": old contents kept, "updated": old
    contents a new one entered}."""
    wanted = list(dict.fromkeys(shas))
    known = set() if previous is None else set(previous["sha256"].unique().to_list())
    if len(known) < len(wanted) / 2:  # mostly new: asking for everything costs less
        return neighbours(idx, wanted, n, progress), {"queried": len(wanted), "reused": 0, "updated": 0}
    kept = previous
    if not known.issubset(wanted):  # some left the catalog (a nightly run mostly only adds)
        in_catalog = pl.Series(wanted, dtype=pl.Utf8).implode()
        kept = previous.filter(pl.col("sha256").is_in(in_catalog))
        lost = kept.filter(~pl.col("neighbour").is_in(in_catalog))["sha256"].unique()  # a neighbour left
        kept = kept.filter(~pl.col("sha256").is_in(lost.implode()))
    have = set(kept["sha256"].unique().to_list()) if kept is not previous else known
    if progress is not None:
        progress.update(len(have))  # kept, not asked: the bar counts every content
    new = [s for s in wanted if s not in known]
    ask = [s for s in wanted if s not in have]
    wide = n * _REVERSE_WIDTH if idx.kind != EXACT else n
    scores, ids = _query(idx, ask, wide, progress)
    asked = _frame(idx, ask, scores[:, :n], ids[:, :n])
    entering = _entering(idx, kept, new, ask, scores, ids, n)
    updated = _top_n(pl.concat([kept, entering]), n) if entering.height else kept
    table = pl.concat([updated, asked])
    return table, {"queried": len(ask), "reused": len(have), "updated": entering["sha256"].n_unique()}


def _entering(idx: SearchIndex, kept: pl.DataFrame, new: list[str], ask: list[str], scores: np.ndarray,
              ids: np.ndarray, n: int) -> pl.DataFrame:
    """(old content, new content, score) pairs where the new one beats the old one's n-th neighbour."""
    if not new or kept.is_empty():
        return pl.DataFrame(schema=NEAR_SCHEMA)
    # each kept list is its content's top n, so its lowest score is the bar (none while it has fewer)
    bars = kept.group_by("sha256", maintain_order=True).agg(
        pl.when(pl.len() >= n).then(pl.col("score").min()).otherwise(-2.0).alias("bar"))
    if idx.kind == EXACT:  # every old content against every new one: exact
        pos = idx.ids_by_sha()
        old = np.asarray(bars["sha256"].to_list(), dtype=object)
        old_vectors, bar = idx.vectors(pos[s] for s in old), bars["bar"].to_numpy()[:, None]
        parts = []
        for start in range(0, len(new), _BATCH // 4):  # blocks of new contents bound the memory
            block = new[start:start + _BATCH // 4]
            sims = old_vectors @ idx.vectors(pos[s] for s in block).T
            rows, cols = np.nonzero(sims > bar)
            parts.append(pl.DataFrame({"sha256": old[rows], "neighbour": np.asarray(block, dtype=object)[cols],
                                       "score": np.clip(sims[rows, cols], -1.0, 1.0).astype(np.float32)},
                                      schema=NEAR_SCHEMA))
        return pl.concat(parts)
    # HNSW: from the new contents' own (wider) lists, scores being symmetric; approximate like the index
    order = {s: i for i, s in enumerate(ask)}
    rows = [order[s] for s in new]
    found, found_scores = ids[rows], scores[rows]
    keep = found >= 0
    candidates = pl.DataFrame({"sha256": np.asarray(idx.shas, dtype=object)[found[keep]],
                               "neighbour": np.repeat(np.asarray(new, dtype=object), found.shape[1])[keep.ravel()],
                               "score": found_scores[keep].astype(np.float32)}, schema=NEAR_SCHEMA)
    return candidates.join(bars, on="sha256").filter(pl.col("score") > pl.col("bar")).drop("bar")  # old ones only


def _top_n(table: pl.DataFrame, n: int) -> pl.DataFrame:
    return (table.unique(subset=["sha256", "neighbour"], keep="first")
            .sort(["sha256", "score", "neighbour"], descending=[False, True, False])
            .group_by("sha256", maintain_order=True).head(n))


def _query(idx: SearchIndex, shas: list[str], n: int, progress=None) -> tuple[np.ndarray, np.ndarray]:
    positions = [idx.position(s) for s in shas]
    if any(p is None for p in positions):
        missing = shas[positions.index(None)]
        raise SearchError(f"sha256 {missing} is not in the search index; run the pipeline again to update it")
    k = max(1, min(n, len(idx.shas)))
    scores, ids = np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
    parts = []
    for start in range(0, len(shas), _BATCH):
        chunk = positions[start:start + _BATCH]
        parts.append(search_vectors(idx, idx.vectors(chunk), k))
        if progress is not None:
            progress.update(len(chunk))
    if parts:
        scores, ids = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return scores, ids


def _frame(idx: SearchIndex, shas: list[str], scores: np.ndarray, ids: np.ndarray) -> pl.DataFrame:
    keep = ids >= 0
    return pl.DataFrame({
        "sha256": np.repeat(np.asarray(shas, dtype=object), ids.shape[1])[keep.ravel()],
        "neighbour": np.asarray(idx.shas, dtype=object)[ids[keep]],
        "score": scores[keep].astype(np.float32),
    }, schema=NEAR_SCHEMA)


# --- kept between runs, in OUT/search ------------------------------------------------------

def load_neighbours(out_dir, idx: SearchIndex, n: int) -> pl.DataFrame | None:
    """The previous run's table if it was made for this index's model and kind and this n."""
    folder = index_dir(out_dir)
    if not isfile(folder / NEAR_MANIFEST):
        return None
    try:
        meta = json.loads(read_bytes(folder / NEAR_MANIFEST))
        if (meta["model_id"], meta["kind"], meta["n"]) != (idx.model_id, idx.kind, n):
            return None
        return read_parquet(folder / meta["file"]).cast(NEAR_SCHEMA)
    except Exception:  # noqa: BLE001  # a damaged table only costs a full query
        logging.getLogger(__name__).debug("kept neighbours in %s unreadable, querying all", folder, exc_info=True)
        return None


def save_neighbours(out_dir, table: pl.DataFrame, idx: SearchIndex, n: int) -> None:
    """A new table file, then the small manifest that points at it (a reader sees one or the other)."""
    folder = index_dir(out_dir)
    name = f"neighbours-{uuid.uuid4().hex[:12]}.parquet"
    write_parquet(table, folder / name)
    atomic_write_text(folder / NEAR_MANIFEST, json.dumps({"model_id": idx.model_id, "kind": idx.kind, "n": n,
                                                          "rows": table.height, "file": name}))
    remove_files(p for p in list_dir(folder) if os.path.basename(p).startswith("neighbours-")
                 and os.path.basename(p) != name)
