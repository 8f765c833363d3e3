import os

import numpy as np
import polars as pl

from catalog_intel.inference.embedding import embedding_store, embeddings_frame
from catalog_intel.io import filesystem, hash_cache, parquet_store
from catalog_intel.io.parquet_store import ParquetStore
from catalog_intel.io.filesystem import atomic_write_text, walk_files


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


def test_walk_files_lists_every_file_and_skips_dot_files(tmp_path):
    for rel in ["b.JPG", "a/c.png", "a/d.txt", ".hidden/e.jpg", "a/.DS_Store", "f.webp"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    found, skipped = walk_files(str(tmp_path))
    assert [os.path.relpath(p, tmp_path) for p, _ in found] == ["a/c.png", "a/d.txt", "b.JPG", "f.webp"]
    assert sorted(os.path.relpath(p, tmp_path) for p in skipped) == [".hidden/e.jpg", "a/.DS_Store"]


def test_compact_merges_parts_and_keeps_every_key_once(tmp_path):
    store = ParquetStore(tmp_path / "s", key="k")
    for i in range(5):
        store.append(pl.DataFrame({"k": [f"a{i}", "dup"], "v": [i, i]}))
    assert store.compact(max_parts=8) == 0  # few parts: left alone
    assert store.compact(max_parts=2) == 5
    assert len(store._parts()) == 1  # readers see the merged part only
    assert len(list((tmp_path / "s").glob("part-*.parquet"))) == 6  # the old ones stay until purged
    merged = store.lookup([f"a{i}" for i in range(5)] + ["dup"])
    assert merged.height == 6 and store.count() == 6
    assert store.purge(older_than_s=3600) == 0  # superseded just now: a concurrent reader may hold them
    assert store.purge(older_than_s=0) == 5
    assert len(list((tmp_path / "s").glob("part-*.parquet"))) == 1 and store.count() == 6
    assert not list((tmp_path / "s" / "_compacted").glob("*.json"))
    assert merged.filter(pl.col("k") == "dup")["v"].to_list() == [merged.filter(pl.col("k") == "dup")["v"][0]]


def test_compact_keeps_parts_bounded_and_rows_written_together_together(tmp_path):
    import time

    store = ParquetStore(tmp_path / "s", key="k")
    for batch in range(10):
        store.append(pl.DataFrame({"k": [f"b{batch}-{i}" for i in range(100)], "v": [batch] * 100}))
        time.sleep(0.002)  # distinct write times: compaction follows write order
    assert store.compact(max_parts=4, part_rows=250) == 9  # three groups of three parts; the tenth stays
    parts = store._parts()
    sizes = sorted(pl.read_parquet(p).height for p in parts)
    assert sizes == [100, 300, 300, 300] and store.count() == 1000
    holding = [p for p in parts if pl.read_parquet(p).filter(pl.col("k") == "b4-7").height]
    assert len(holding) == 1 and set(pl.read_parquet(holding[0])["v"]) == {3, 4, 5}  # neighbours in write order


def test_lookup_reads_only_parts_holding_the_keys_and_existing_reads_keys(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path / "s", key="k")
    for start in range(0, 40, 10):  # four parts, as four shards would write them
        store.append(pl.DataFrame({"k": [f"{i:03d}" for i in range(start, start + 10)], "v": list(range(start, start + 10))}))
    read = []
    real_read = parquet_store._read_parts

    def spying_read(parts, columns=None, with_part=False):
        read.append((list(parts), columns))
        return real_read(parts, columns, with_part)

    monkeypatch.setattr(parquet_store, "_read_parts", spying_read)
    found = store.lookup(["012", "015", "nope"]).sort("k")
    assert found["v"].to_list() == [12, 15]
    assert read[0] == (store._parts(), ["k"])  # first the key column of every part
    assert len(read[-1][0]) == 1 and read[-1][1] is None  # then the rows from the one part that holds them
    assert store.lookup(["nope"]).height == 0
    assert store.existing(["001", "039", "nope"]) == {"001", "039"}


def test_hash_cache_rehashes_changed_files_only(tmp_path, monkeypatch):
    from catalog_intel.io import ingest

    monkeypatch.setattr(filesystem, "RACY_WINDOW_S", 0.0)  # files written just now may be cached
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (folder / name).write_bytes(name.encode() * 100)
    reads = []
    real_sha = ingest.sha256_file
    monkeypatch.setattr(ingest, "sha256_file", lambda p: reads.append(os.path.basename(p)) or real_sha(p))

    cache = hash_cache.FileHashCache(tmp_path / "cache" / "file_hashes")
    first, _, _ = ingest.build_inventory(str(folder), [".jpg"], hash_cache=cache)
    assert sorted(reads) == ["a.jpg", "b.jpg", "c.jpg"] and cache.hits == 0

    reads.clear()
    cache = hash_cache.FileHashCache(tmp_path / "cache" / "file_hashes")
    again, _, _ = ingest.build_inventory(str(folder), [".jpg"], hash_cache=cache)
    assert reads == [] and cache.hits == 3
    assert again["sha256"].to_list() == first["sha256"].to_list()

    (folder / "b.jpg").write_bytes(b"new content of b")  # new size and mtime
    reads.clear()
    cache = hash_cache.FileHashCache(tmp_path / "cache" / "file_hashes")
    changed, _, _ = ingest.build_inventory(str(folder), [".jpg"], hash_cache=cache)
    assert reads == ["b.jpg"] and cache.hits == 2
    by_image = dict(zip(changed["image"], changed["sha256"]))
    assert by_image["b.jpg"] == filesystem.sha256_file(str(folder / "b.jpg")) != dict(zip(first["image"], first["sha256"]))["b.jpg"]


def test_recently_modified_files_are_hashed_not_cached(tmp_path):

    path = tmp_path / "fresh.jpg"
    path.write_bytes(b"x" * 10)
    assert filesystem.stat_key(str(path)) is None  # may still change within the same timestamp tick
    assert filesystem.stat_key(str(path), racy_window_s=0) is not None
    assert filesystem.stat_key(str(tmp_path / "missing.jpg"), racy_window_s=0) is None


def test_hash_cache_compacts_many_parts(tmp_path, monkeypatch):

    monkeypatch.setattr(hash_cache.FileHashCache, "COMPACT_PARTS", 3)
    cache = hash_cache.FileHashCache(tmp_path / "h")
    for i in range(5):
        cache.put({f"key-{i}": f"sha-{i}", "key-0": "sha-0"})
    assert len(hash_cache.FileHashCache(tmp_path / "h").store._parts()) <= 3
    assert hash_cache.FileHashCache(tmp_path / "h").get([f"key-{i}" for i in range(5)]) == {f"key-{i}": f"sha-{i}" for i in range(5)}
