import os

import numpy as np
import polars as pl

from catalog_intel.embedding import embedding_store, embeddings_frame
from catalog_intel.storage import ParquetStore, atomic_write_text, list_images


def test_parquet_store_appends_parts_and_looks_up_by_key(tmp_path):
    store = ParquetStore(tmp_path / "s", key="k")
    assert store.lookup(["a"]) is None
    store.append(pl.DataFrame({"k": ["a", "b"], "v": [1, 2]}))
    store.append(pl.DataFrame({"k": ["b", "c"], "v": [20, 3]}))  # a second writer computed b again
    found = store.lookup(["b", "c", "zzz"]).sort("k")
    assert found["k"].to_list() == ["b", "c"]
    assert found.filter(pl.col("k") == "b").height == 1
    assert store.count() == 3
    assert len(list((tmp_path / "s").glob("part-*.parquet"))) == 2


def test_embedding_round_trip_is_exact(tmp_path):
    vectors = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    store = embedding_store(tmp_path, "ViT-B-32@laion2b_s34b_b79k")
    store.append(embeddings_frame(list("abcde"), vectors, "ViT-B-32@laion2b_s34b_b79k"))
    back = store.lookup(["c", "a"]).sort("sha256")
    np.testing.assert_array_equal(back["embedding"].to_numpy(), vectors[[0, 2]])


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "x.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["x.txt"]


def test_list_images_is_recursive_sorted_and_filtered(tmp_path):
    for rel in ["b.JPG", "a/c.png", "a/d.txt", ".hidden/e.jpg", "f.webp"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    found = [os.path.relpath(p, tmp_path) for p in list_images(str(tmp_path), [".jpg", ".png", ".webp"])]
    assert found == ["a/c.png", "b.JPG", "f.webp"]


def test_compact_merges_parts_and_keeps_every_key_once(tmp_path):
    store = ParquetStore(tmp_path / "s", key="k")
    for i in range(5):
        store.append(pl.DataFrame({"k": [f"a{i}", "dup"], "v": [i, i]}))
    assert store.compact(max_parts=8) == 0  # few parts: left alone
    assert store.compact(max_parts=2) == 5
    assert len(list((tmp_path / "s").glob("part-*.parquet"))) == 1
    merged = store.lookup([f"a{i}" for i in range(5)] + ["dup"])
    assert merged.height == 6 and store.count() == 6
    assert merged.filter(pl.col("k") == "dup")["v"].to_list() == [merged.filter(pl.col("k") == "dup")["v"][0]]
