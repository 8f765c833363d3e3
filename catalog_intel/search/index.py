"""Similar-product and text search over the cached CLIP embeddings (FAISS).

The index covers one output folder's catalog and lives next to it in OUT/search/:

    index.json            manifest, written last: model id, kind, generation, sizes
    index-<gen>.faiss     the FAISS index (vectors are L2-normalised: inner product = cosine)
    ids-<gen>.parquet     FAISS id (row position) -> sha256, active flag

Entries are content hashes, not file names: identical files share one vector, and the
catalog (image <-> sha256) maps results back to images. The index is exact
(IndexFlatIP) up to `search.exact_max` images and approximate (HNSW) above. A re-run
adds only the new hashes; hashes that left the catalog are marked inactive and
filtered out of every search, and the index is rebuilt (from its own stored vectors,
so the embedding cache is not needed) only when the kind must change, the model
changed, or more than `search.max_retired_share` of it is inactive."""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import polars as pl

from catalog_intel.errors import SearchError
from catalog_intel.io.filesystem import (atomic_write_text, atomic_write_with, isfile, list_dir, read_bytes,
                                         read_parquet, remove_files, write_parquet)
from catalog_intel.io.layout import OutputLayout
from catalog_intel.settings import SearchConfig

MANIFEST = "index.json"
EXACT, APPROXIMATE = "exact", "hnsw"


@dataclass
class SearchIndex:
    index: object  # faiss.Index, untyped so this module imports without faiss
    shas: list[str]  # FAISS id (position) -> sha256
    active: np.ndarray  # bool per FAISS id: False once the image left the catalog
    model_id: str
    kind: str
    _pos: dict[str, int] | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def size(self) -> int:
        """Active entries (distinct contents in the catalog)."""
        return int(self.active.sum())

    def ids_by_sha(self) -> dict[str, int]:
        """Every entry's FAISS id, active or not."""
        if self._pos is None:
            self._pos = {s: i for i, s in enumerate(self.shas)}
        return self._pos

    def position(self, sha: str) -> int | None:
        """FAISS id of an active entry, else None."""
        pos = self.ids_by_sha().get(sha)
        return pos if pos is not None and self.active[pos] else None

    def vectors(self, positions: Iterable[int]) -> np.ndarray:
        """Stored (normalised) vectors of the given FAISS ids."""
        ids = np.asarray(list(positions), dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_batch(ids)


@dataclass
class IndexUpdate:
    kind: str
    size: int
    added: int = 0
    retired: int = 0
    reactivated: int = 0
    rebuilt: bool = False
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def index_kind(n: int, cfg: SearchConfig) -> str:
    return EXACT if n <= cfg.exact_max else APPROXIMATE


def new_faiss_index(kind: str, dim: int, cfg: SearchConfig):
    import faiss

    if kind == EXACT:
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = cfg.hnsw_ef_construction
    index.hnsw.efSearch = cfg.hnsw_ef_search
    return index


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)


def build_index(shas: list[str], vectors: np.ndarray, model_id: str, cfg: SearchConfig,
                kind: str | None = None) -> SearchIndex:
    """A fresh index over `vectors` (rows aligned with `shas`, L2-normalised)."""
    vectors = _as_matrix(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(shas):
        raise ValueError(f"{len(shas)} hashes but vectors of shape {vectors.shape}")
    index = new_faiss_index(kind or index_kind(len(shas), cfg), vectors.shape[1], cfg)
    if len(shas):
        index.add(vectors)
    return SearchIndex(index, list(shas), np.ones(len(shas), dtype=bool), model_id, kind or index_kind(len(shas), cfg))


def aligned_vectors(embeddings: pl.DataFrame | None, shas: list[str], where: str = "the embedding cache") -> np.ndarray:
    """embeddings[sha256, embedding] -> matrix with rows in the order of `shas`; names what is missing."""
    found = {} if embeddings is None else dict(zip(embeddings["sha256"].to_list(), range(embeddings.height)))
    missing = [s for s in shas if s not in found]
    if missing:
        raise SearchError(
            f"{len(missing)} of {len(shas)} images have no embedding in {where} (first sha256: {missing[0]}); "
            "the cache was probably deleted during the run: run the pipeline again to re-embed them"
        )
    if not shas:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = embeddings["embedding"].to_numpy()
    return _as_matrix(matrix[[found[s] for s in shas]])


def update_index(
    existing: SearchIndex | None,
    shas: Iterable[str],
    fetch: Callable[[list[str]], np.ndarray],
    model_id: str,
    cfg: SearchConfig,
) -> tuple[SearchIndex, IndexUpdate]:
    """Bring the index in line with the catalog's content hashes `shas`.

    `fetch(shas)` returns their vectors (rows aligned); it is only asked for hashes the
    index does not hold. Old entries keep their ids; new ones are appended."""
    wanted = list(dict.fromkeys(shas))
    kind = index_kind(len(wanted), cfg)
    reason = ""
    if existing is None:
        reason = "no index yet"
    elif existing.model_id != model_id:
        reason = f"model changed ({existing.model_id} -> {model_id})"
    elif existing.kind != kind:
        reason = f"{len(wanted)} images: {existing.kind} -> {kind} index (search.exact_max={cfg.exact_max})"
    if reason:
        reuse = existing if existing is not None and existing.model_id == model_id else None
        return _rebuild(reuse, wanted, fetch, model_id, cfg, kind, reason)

    wanted_set = set(wanted)
    known = existing.ids_by_sha()
    new = [s for s in wanted if s not in known]
    active = np.array([s in wanted_set for s in existing.shas], dtype=bool)
    retired = int((existing.active & ~active).sum())
    reactivated = int((~existing.active & active).sum())
    inactive, total = int((~active).sum()), len(existing.shas) + len(new)
    if inactive and inactive / total > cfg.max_retired_share:
        return _rebuild(existing, wanted, fetch, model_id, cfg, kind,
                        f"{inactive} of {total} entries left the catalog (search.max_retired_share={cfg.max_retired_share})")
    if new:
        vectors = _as_matrix(fetch(new))
        if vectors.shape != (len(new), existing.dim):
            raise SearchError(f"new embeddings have shape {vectors.shape}, the index holds dimension {existing.dim}")
        existing.index.add(vectors)
    updated = SearchIndex(existing.index, existing.shas + new, np.concatenate([active, np.ones(len(new), dtype=bool)]),
                          model_id, existing.kind)
    return updated, IndexUpdate(kind=updated.kind, size=updated.size, added=len(new), retired=retired,
                                reactivated=reactivated)


def _rebuild(reuse: SearchIndex | None, wanted: list[str], fetch, model_id: str, cfg: SearchConfig, kind: str,
             reason: str) -> tuple[SearchIndex, IndexUpdate]:
    """A fresh index; vectors the old index holds are taken from it, the rest fetched."""
    have = {} if reuse is None else reuse.ids_by_sha()
    old = [s for s in wanted if s in have]
    new = [s for s in wanted if s not in have]
    parts = []
    if old:
        parts.append(reuse.vectors(have[s] for s in old))
    if new:
        parts.append(_as_matrix(fetch(new)))
    vectors = np.concatenate(parts) if parts else np.zeros((0, reuse.dim if reuse else 1), dtype=np.float32)
    index = build_index(old + new, vectors, model_id, cfg, kind)
    return index, IndexUpdate(kind=kind, size=index.size, added=len(new), rebuilt=True, reason=reason)


# --- persistence ---------------------------------------------------------------------------

def index_dir(out_dir: Path | str):
    return OutputLayout(out_dir).search


def save_index(idx: SearchIndex, out_dir: Path) -> Path:
    """Write a new generation of the index files, then the manifest that points at them
    (atomic: a reader sees the old or the new index, never a mix), then drop old files."""
    import faiss

    folder = index_dir(out_dir)
    gen = uuid.uuid4().hex[:12]
    index_file, ids_file = f"index-{gen}.faiss", f"ids-{gen}.parquet"
    atomic_write_with(folder / index_file, lambda tmp: faiss.write_index(idx.index, tmp))
    write_parquet(pl.DataFrame({"sha256": idx.shas, "active": idx.active},
                               schema={"sha256": pl.Utf8, "active": pl.Boolean}), folder / ids_file)
    manifest = {"model_id": idx.model_id, "kind": idx.kind, "dim": idx.dim, "ntotal": len(idx.shas),
                "active": idx.size, "index_file": index_file, "ids_file": ids_file}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2))
    remove_files(p for p in list_dir(folder) if os.path.basename(p).startswith(("index-", "ids-"))
                 and os.path.basename(p) not in (index_file, ids_file))
    return folder / MANIFEST


def load_index(out_dir: Path, ef_search: int | None = None) -> SearchIndex | None:
    """The index saved in OUT/search, or None if there is none. SearchError if it is damaged.
    `ef_search` (search.hnsw_ef_search) sets the HNSW query beam for this session."""
    import faiss

    folder = index_dir(out_dir)
    manifest_path = folder / MANIFEST
    if not isfile(manifest_path):
        return None
    try:
        manifest = json.loads(read_bytes(manifest_path))
        index = faiss.deserialize_index(np.frombuffer(read_bytes(folder / manifest["index_file"]), dtype=np.uint8))
        ids = read_parquet(folder / manifest["ids_file"])
    except Exception as exc:
        raise SearchError(f"search index in {folder} cannot be read ({exc}); delete {folder} and it is "
                          "rebuilt by the next run") from None
    if index.ntotal != ids.height or ids.height != manifest["ntotal"]:
        raise SearchError(f"search index in {folder} is inconsistent ({index.ntotal} vectors, {ids.height} ids); "
                          f"delete {folder} and it is rebuilt by the next run")
    if manifest["kind"] == APPROXIMATE and ef_search:
        index.hnsw.efSearch = ef_search
    return SearchIndex(index, ids["sha256"].to_list(), ids["active"].to_numpy().astype(bool),
                       manifest["model_id"], manifest["kind"])


# --- queries -------------------------------------------------------------------------------

def search_vectors(idx: SearchIndex, queries: np.ndarray, k: int, ef_search: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(scores[m, k], ids[m, k]) of the k nearest active entries, best first; id -1 pads."""
    import faiss

    queries = _as_matrix(queries)
    if queries.ndim == 1:
        queries = queries[None, :]
    k = max(1, min(k, len(idx.shas)))
    selector = None
    if not idx.active.all():
        selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.flatnonzero(~idx.active).astype(np.int64)))
    if idx.kind == APPROXIMATE:
        params = faiss.SearchParametersHNSW(efSearch=max(ef_search or idx.index.hnsw.efSearch, k))
        if selector is not None:
            params.sel = selector
    else:
        params = faiss.SearchParameters(sel=selector) if selector is not None else None
    scores, ids = idx.index.search(queries, k, params=params)
    return np.clip(scores, -1.0, 1.0), ids


@contextmanager
def single_threaded():
    """FAISS on one thread: for one query at a time, OpenMP's start-up and barrier cost far
    more than the search itself (measured: 32 ms vs 1.4 ms per exact query at 10k on 2 CPUs)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def catalog_images(catalog: pl.DataFrame) -> pl.DataFrame:
    """catalog[image, sha256] -> [sha256, image] pairs (identical files share a sha256)."""
    return catalog.select("sha256", "image").unique(maintain_order=True)


def ranked_images(idx: SearchIndex, catalog: pl.DataFrame, query: np.ndarray, k: int,
                  query_image: str | None = None) -> pl.DataFrame:
    """The k catalog images nearest to one query vector: [image, score], best first.
    Ties are broken by image id, except that `query_image` (the query itself) comes first."""
    if not idx.size:
        return pl.DataFrame(schema={"image": pl.Utf8, "score": pl.Float32})
    with single_threaded():
        scores, ids = search_vectors(idx, query, k)  # top-k images lie in the top-k contents
    hits = pl.DataFrame({"sha256": [idx.shas[i] for i in ids[0] if i >= 0],
                         "score": scores[0][ids[0] >= 0]}, schema={"sha256": pl.Utf8, "score": pl.Float32})
    return (hits.join(catalog_images(catalog), on="sha256")
            .with_columns((pl.col("image") != (query_image or "")).alias("_not_query"))
            .sort(["score", "_not_query", "image"], descending=[True, False, False])
            .head(k).select("image", "score"))


def similar_columns(catalog: pl.DataFrame, near: pl.DataFrame, k: int) -> pl.DataFrame:
    """Per catalog row (same order), its k most similar other images:
    [similar_images list[str], similar_scores list[f32]], best first, ties by image id.
    Identical files are similar with score 1; a row never lists itself."""
    rows = catalog.select("image", "sha256").with_row_index("_row")
    candidates = (
        rows.join(near, on="sha256")
        .join(catalog_images(catalog).rename({"sha256": "neighbour", "image": "candidate"}), on="neighbour")
        .filter(pl.col("candidate") != pl.col("image"))
        .sort(["_row", "score", "candidate"], descending=[False, True, False])
        .group_by("_row", maintain_order=True)
        .agg(pl.col("candidate").head(k).alias("similar_images"), pl.col("score").head(k).alias("similar_scores"))
    )
    out = rows.join(candidates, on="_row", how="left").sort("_row")
    return out.select(
        pl.col("similar_images").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))).cast(pl.List(pl.Utf8)),
        pl.col("similar_scores").fill_null(pl.lit([], dtype=pl.List(pl.Float32))).cast(pl.List(pl.Float32)),
    )


# --- query embeddings (the model the run recorded) -----------------------------------------

def write_run_config(out_dir: Path, clip: dict, model_id: str, cache_dir: Path) -> Path:
    """OUT/run_config.json: what `similar` / `search` need to embed a new query exactly
    like the run did (the CLIP config, with absolute paths, and the cache folder)."""
    clip = dict(clip)
    for key in ("checkpoint", "model_config"):
        if clip.get(key):
            clip[key] = os.path.abspath(os.path.expanduser(clip[key]))
    path = OutputLayout(out_dir).run_config
    atomic_write_text(path, json.dumps({"clip_model_id": model_id, "clip": clip,
                                        "paths": {"cache_dir": str(cache_dir)}}, indent=2))
    return path


def read_run_config(out_dir: Path) -> dict:
    """The recorded run config as dotted config keys (for load_config's `base`)."""
    path = OutputLayout(out_dir).run_config
    if not isfile(path):
        return {}
    try:
        record = json.loads(read_bytes(str(path)))
        return {**{f"clip.{k}": v for k, v in record["clip"].items()}, "paths.cache_dir": record["paths"]["cache_dir"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise SearchError(f"{path} is not a valid run record ({exc}); re-run the pipeline into {out_dir} "
                          "or pass --config / --clip-checkpoint") from None


# --- the `similar` and `search` commands ---------------------------------------------------

def open_catalog(out_dir: Path, ef_search: int | None = None) -> tuple[SearchIndex, pl.DataFrame]:
    """The search index and catalog[image, sha256, path] of an output folder."""
    layout = OutputLayout(out_dir)
    out, catalog_path = layout.out, layout.catalog_parquet
    index = load_index(out, ef_search)
    if index is None or not isfile(catalog_path):
        missing = index_dir(out) / MANIFEST if index is None else catalog_path
        raise SearchError(f"{missing} not found: run `catalog-intel run SOURCE --out {out}` first to build the catalog "
                          "and its search index")
    catalog = read_parquet(catalog_path, columns=["image", "sha256", "path"])
    return index, catalog


def _checked(clip, index: SearchIndex, out_dir: Path):
    if clip.model_id != index.model_id:
        raise SearchError(
            f"the index in {index_dir(out_dir)} was built with CLIP {index.model_id}, but the configured model "
            f"is {clip.model_id}: its vectors are not comparable. Use the run's model (recorded in "
            f"{OutputLayout(out_dir).run_config}) or pass its weights with --clip-checkpoint"
        )
    return clip


def similar_to(out_dir: Path, query: str, k: int, load_model: Callable[[], object], max_pixels: int,
               ef_search: int | None = None) -> pl.DataFrame:
    """The k catalog images most similar to `query`: an image file (its stored embedding
    when its content is in the catalog, else embedded now with `load_model()`), an image
    id of the catalog, or a sha256 in it. [image, score], best first, the query itself first."""
    from catalog_intel.inference.embedding import compute_embeddings
    from catalog_intel.io.filesystem import sha256_file

    index, catalog = open_catalog(out_dir, ef_search)
    query_image, digest = None, None
    if isfile(query):
        digest = sha256_file(query)
        same = catalog.filter(pl.col("sha256") == digest)
        if same.height:
            exact = same.filter(pl.col("path") == os.path.abspath(query))
            query_image = (exact if exact.height else same.sort("image"))["image"][0]
    elif (row := catalog.filter(pl.col("image") == query)).height:
        query_image, digest = query, row["sha256"][0]
    elif (row := catalog.filter(pl.col("sha256") == query.lower())).height:
        query_image, digest = row.sort("image")["image"][0], query.lower()
    else:
        raise SearchError(f"'{query}' is not an image file, nor an image id or sha256 in {OutputLayout(out_dir).catalog_parquet}")

    position = index.position(digest) if digest else None
    if position is not None:
        vector = index.vectors([position])[0]
    elif query_image is not None and not isfile(query):
        raise SearchError(f"'{query}' is in catalog.parquet but not in the search index of {out_dir}: "
                          "re-run the pipeline into that folder to update the index")
    else:
        clip = _checked(load_model(), index, out_dir)
        vectors, reasons = compute_embeddings([query], clip, batch_size=1, decode_workers=0, max_pixels=max_pixels)
        if reasons[0]:
            raise SearchError(f"{query}: {reasons[0]}")
        vector = vectors[0]
    return ranked_images(index, catalog, vector, k, query_image)


def text_search(out_dir: Path, text: str, k: int, load_model: Callable[[], object],
                ef_search: int | None = None) -> pl.DataFrame:
    """The k catalog images nearest to a text query, encoded by the run's CLIP text tower."""
    if not text.strip():
        raise SearchError("the text query is empty")
    index, catalog = open_catalog(out_dir, ef_search)
    from catalog_intel.inference.clip_model import encode_texts

    clip = _checked(load_model(), index, out_dir)
    return ranked_images(index, catalog, encode_texts(clip, [text])[0], k)
