"""Search, similar products and groups over hand-built embeddings whose answers are known.

Vectors (8-d, unit length) are written into a real embedding store; the index is built
from it through the same code the flow uses. Cosines: top1.top2 0.995, top2.top3 0.934,
top1.top3 0.894, tee1.tee2 0.981, everything else 0."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from catalog_intel.errors import SearchError
from catalog_intel.inference.embedding import embedding_store, embeddings_frame
from catalog_intel.search.groups import group_products, group_summary
from catalog_intel.search.index import (APPROXIMATE, EXACT, aligned_vectors, load_index, ranked_images, save_index, similar_columns, update_index)
from catalog_intel.search.neighbours import load_neighbours, neighbours, save_neighbours, update_neighbours
from catalog_intel.settings import load_config

MODEL = "hand-built@test"


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def unit(*pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(8, dtype=np.float32)
    for i, x in pairs:
        v[i] = x
    return v / np.linalg.norm(v)


VECTORS = {
    "top1": unit((0, 1.0)),
    "top2": unit((0, 1.0), (1, 0.1)),
    "top3": unit((0, 1.0), (1, 0.5)),
    "tee1": unit((2, 1.0)),
    "tee2": unit((2, 1.0), (3, 0.2)),
    "hoodie": unit((4, 1.0)),
}
# Image ids -> content; "z-copy-of-top1.jpg" is a byte-identical copy of top1.
CATALOG = pl.DataFrame({
    "image": ["top1.jpg", "top2.jpg", "top3.jpg", "tee1.jpg", "tee2.jpg", "hoodie.jpg", "z-copy-of-top1.jpg"],
    "sha256": [sha(n) for n in ("top1", "top2", "top3", "tee1", "tee2", "hoodie", "top1")],
})


def search_config(**overrides):
    return load_config(None, {f"search.{k}": v for k, v in overrides.items()}).search


@pytest.fixture()
def store(tmp_path):
    store = embedding_store(tmp_path / "cache", MODEL)
    store.append(embeddings_frame([sha(n) for n in VECTORS], np.stack(list(VECTORS.values())), MODEL))
    return store


def fetcher(store, asked=None):
    def fetch(shas):
        if asked is not None:
            asked.extend(shas)
        return aligned_vectors(store.lookup(shas), shas, where=str(store.folder))
    return fetch


def build(store, catalog=CATALOG, **cfg):
    index, update = update_index(None, catalog["sha256"].to_list(), fetcher(store), MODEL, search_config(**cfg))
    return index, update


@pytest.mark.parametrize("exact_max", [100, 2])  # exact FlatIP, and HNSW (approximate) above exact_max
def test_similar_columns_rank_by_cosine_and_never_list_the_row_itself(store, exact_max):
    index, update = build(store, exact_max=exact_max)
    assert update.kind == (EXACT if exact_max == 100 else APPROXIMATE)
    assert index.size == 6 and update.added == 6  # six distinct contents for seven images
    near = neighbours(index, CATALOG["sha256"].unique(maintain_order=True).to_list(), 6)
    similar = pl.concat([CATALOG, similar_columns(CATALOG, near, k=3)], how="horizontal")
    rows = {r["image"]: r for r in similar.iter_rows(named=True)}

    assert rows["top1.jpg"]["similar_images"] == ["z-copy-of-top1.jpg", "top2.jpg", "top3.jpg"]
    np.testing.assert_allclose(rows["top1.jpg"]["similar_scores"], [1.0, 0.995037, 0.894427], atol=1e-5)
    assert rows["z-copy-of-top1.jpg"]["similar_images"] == ["top1.jpg", "top2.jpg", "top3.jpg"]
    assert rows["top3.jpg"]["similar_images"][:3] == ["top2.jpg", "top1.jpg", "z-copy-of-top1.jpg"]
    np.testing.assert_allclose(rows["top3.jpg"]["similar_scores"][:1], [0.934488], atol=1e-5)
    assert rows["tee1.jpg"]["similar_images"][0] == "tee2.jpg"
    np.testing.assert_allclose(rows["tee1.jpg"]["similar_scores"][0], 0.980581, atol=1e-5)
    # hoodie is orthogonal to everything: its neighbours score 0 and come in image-id order
    assert rows["hoodie.jpg"]["similar_scores"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert all(r["image"] not in r["similar_images"] and len(r["similar_images"]) == 3 for r in rows.values())
    assert similar.schema["similar_scores"] == pl.List(pl.Float32)


def test_ranked_images_puts_the_query_itself_first(store):
    index, _ = build(store)
    vector = index.vectors([index.position(sha("top1"))])[0]
    for query_image in ("top1.jpg", "z-copy-of-top1.jpg"):
        ranked = ranked_images(index, CATALOG, vector, k=4, query_image=query_image)
        assert ranked["image"][0] == query_image
        assert ranked["image"].to_list()[1:] == [i for i in ["top1.jpg", "z-copy-of-top1.jpg", "top2.jpg", "top3.jpg"]
                                                 if i != query_image][:3]
    fresh = unit((2, 1.0), (3, -0.1))  # a new photo, not in the catalog: nearest are the tees
    ranked = ranked_images(index, CATALOG, fresh, k=2)
    assert ranked["image"].to_list() == ["tee1.jpg", "tee2.jpg"]
    assert ranked["score"][0] == pytest.approx(1 / np.sqrt(1.01), abs=1e-5)


def test_groups_link_near_duplicates_and_identical_files(store):
    index, _ = build(store)
    near = neighbours(index, CATALOG["sha256"].unique().to_list(), 6)
    groups = pl.concat([CATALOG, group_products(CATALOG, near, threshold=0.92)], how="horizontal")
    by_image = {r["image"]: r for r in groups.iter_rows(named=True)}
    # top1-top2 (0.995) and top2-top3 (0.934) link; top1-top3 (0.894) alone would not: components are transitive.
    for image in ("top1.jpg", "top2.jpg", "top3.jpg", "z-copy-of-top1.jpg"):
        assert by_image[image]["group_id"] == "top1.jpg" and by_image[image]["group_size"] == 4
    assert by_image["tee1.jpg"]["group_id"] == by_image["tee2.jpg"]["group_id"] == "tee1.jpg"
    assert by_image["hoodie.jpg"]["group_id"] == "hoodie.jpg" and by_image["hoodie.jpg"]["group_size"] == 1
    assert by_image["z-copy-of-top1.jpg"]["duplicate_of"] == "top1.jpg"
    assert by_image["top1.jpg"]["duplicate_of"] is None
    assert group_summary(groups) == {"groups": 2, "grouped_images": 6, "exact_duplicates": 1}

    strict = pl.concat([CATALOG, group_products(CATALOG, near, threshold=0.99)], how="horizontal")
    ids = dict(zip(strict["image"], strict["group_id"]))
    assert ids["top2.jpg"] == "top1.jpg" and ids["top3.jpg"] == "top3.jpg" and ids["tee2.jpg"] == "tee2.jpg"
    assert ids["z-copy-of-top1.jpg"] == "top1.jpg"  # identical files group at any threshold

    # Deterministic: the group id does not depend on row order.
    shuffled = CATALOG.reverse()
    again = dict(zip(shuffled["image"], group_products(shuffled, near, 0.92)["group_id"]))
    assert again == dict(zip(groups["image"], groups["group_id"]))


def test_incremental_update_adds_only_new_images_and_keeps_old_ids(store, tmp_path):
    out = tmp_path / "out"
    first_catalog = CATALOG.filter(pl.col("image").is_in(["top1.jpg", "top2.jpg", "tee1.jpg"]))
    index, update = build(store, first_catalog)
    save_index(index, out)
    old_ids = {s: index.position(s) for s in first_catalog["sha256"]}

    asked: list[str] = []
    loaded = load_index(out)
    assert loaded.shas == index.shas and loaded.kind == EXACT and loaded.model_id == MODEL
    grown, update = update_index(loaded, CATALOG["sha256"].to_list(), fetcher(store, asked), MODEL, search_config())
    assert update.added == 3 and not update.rebuilt and update.size == 6
    assert sorted(asked) == sorted({sha("top3"), sha("tee2"), sha("hoodie")})  # old vectors are not re-read
    assert {s: grown.position(s) for s in old_ids} == old_ids
    assert grown.index.ntotal == 6
    save_index(grown, out)
    files = sorted(p.name for p in (out / "search").iterdir())
    assert len(files) == 3 and files[-1] == "index.json"  # one generation of index + ids, then the manifest

    # An image leaves the catalog: its entry is retired (never returned), ids stay put.
    without_hoodie = CATALOG.filter(pl.col("image") != "hoodie.jpg")
    shrunk, update = update_index(load_index(out), without_hoodie["sha256"].to_list(), fetcher(store),
                                  MODEL, search_config())
    assert update.retired == 1 and not update.rebuilt and shrunk.size == 5 and shrunk.index.ntotal == 6
    ranked = ranked_images(shrunk, without_hoodie, unit((4, 1.0)), k=10)
    assert "hoodie.jpg" not in ranked["image"].to_list() and ranked.height == 6
    # ...and when too much of the index is retired, it is compacted from its own vectors.
    asked.clear()
    small, update = update_index(shrunk, [sha("top1")], fetcher(store, asked), MODEL, search_config())
    assert update.rebuilt and small.index.ntotal == 1 and asked == []


def test_index_switches_to_approximate_above_exact_max_and_on_model_change(store):
    index, _ = build(store, CATALOG.head(2), exact_max=3)
    assert index.kind == EXACT
    grown, update = update_index(index, CATALOG["sha256"].to_list(), fetcher(store), MODEL, search_config(exact_max=3))
    assert update.rebuilt and grown.kind == APPROXIMATE and grown.size == 6 and "exact -> hnsw" in update.reason
    other, update = update_index(grown, CATALOG["sha256"].to_list(), fetcher(store), "another-model",
                                 search_config(exact_max=3))
    assert update.rebuilt and update.added == 6 and "model changed" in update.reason


def test_missing_embeddings_and_damaged_index_name_the_problem(store, tmp_path):
    with pytest.raises(SearchError, match=r"1 of 1 images have no embedding in .*embeddings.*first sha256: " + sha("nope")):
        build(store, pl.DataFrame({"image": ["x.jpg"], "sha256": [sha("nope")]}))
    index, _ = build(store)
    save_index(index, tmp_path)
    manifest = tmp_path / "search" / "index.json"
    (tmp_path / "search" / __import__("json").loads(manifest.read_text())["index_file"]).write_bytes(b"garbage")
    with pytest.raises(SearchError, match=r"cannot be read .* delete .*search and it is rebuilt by the next run"):
        load_index(tmp_path)


@pytest.mark.parametrize("exact_max", [10_000, 50])  # exact FlatIP; HNSW above exact_max
def test_neighbours_kept_between_runs_match_a_fresh_query(tmp_path, exact_max):
    """A nightly run asks only for new contents and for those that lost a neighbour; an
    old content gains a new one where it beats its n-th. Exact index: the same table as
    asking for everything; HNSW: nearly (it is approximate itself)."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(12, 16))
    vectors = centres[rng.integers(0, 12, 330)] + 0.35 * rng.normal(size=(330, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    shas = [sha(f"v{i}") for i in range(330)]
    by_sha = dict(zip(shas, vectors))

    def fetch(wanted):
        return np.stack([by_sha[s] for s in wanted])

    cfg, n = search_config(exact_max=exact_max), 6
    first = shas[:300]
    index, _ = update_index(None, first, fetch, MODEL, cfg)
    previous = neighbours(index, first, n)
    save_neighbours(tmp_path, previous, index, n)

    tonight = shas[10:330]  # ten left the catalog, thirty are new
    index, update = update_index(index, tonight, fetch, MODEL, cfg)
    assert update.added == 30 and update.retired == 10 and not update.rebuilt
    kept = load_neighbours(tmp_path, index, n)
    assert kept.height == previous.height
    assert load_neighbours(tmp_path, index, n + 1) is None  # made for another n: start afresh

    near, asked = update_neighbours(index, tonight, n, kept)
    fresh = neighbours(index, tonight, n)
    lost = previous.filter(pl.col("sha256").is_in(tonight) & pl.col("neighbour").is_in(first[:10]))["sha256"].n_unique()
    assert 0 < lost < 290
    assert asked["queried"] == 30 + lost and asked["reused"] == 290 - lost and asked["updated"] > 0
    assert near.group_by("sha256").len()["len"].max() == n and near["sha256"].n_unique() == 320

    def lists(table):
        return {s: set(g["neighbour"]) for (s,), g in table.group_by("sha256")}

    got, want = lists(near), lists(fresh)
    overlap = sum(len(got[s] & want[s]) for s in want) / sum(len(v) for v in want.values())
    if exact_max > 330:
        assert got == want  # exact: identical to asking for everything
        scores = near.join(fresh, on=["sha256", "neighbour"])
        np.testing.assert_allclose(scores["score"], scores["score_right"], atol=1e-5)
    else:
        assert overlap >= 0.97, overlap
