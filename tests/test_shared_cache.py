"""Runs sharing one cache, local or on S3: compaction never takes a part away from
a reader that listed it, and two real runs started at once both give correct rows."""

from __future__ import annotations

import io
import os
import subprocess
import threading
from pathlib import Path

import polars as pl
import pytest

from catalog_intel.io import filesystem
from catalog_intel.io.parquet_store import ParquetStore
from catalog_intel.io.synthetic import jpeg_with_comment
from conftest import cli, run_catalog



def test_lookups_stay_complete_while_another_process_compacts_and_purges(tmp_path):
    """The worst case: a compactor that purges at once (purge_after_s=0) racing a reader.
    A reader that finds a listed part gone lists again; it never misses a row."""
    store = ParquetStore(tmp_path / "s", key="k")
    written = []
    for i in range(40):
        store.append(pl.DataFrame({"k": [f"k{i}-{j}" for j in range(5)], "v": [i] * 5}))
        written += [f"k{i}-{j}" for j in range(5)]
    stop = threading.Event()
    compactions = []

    def compactor():
        other = ParquetStore(tmp_path / "s", key="k")
        while not stop.is_set():
            other.append(pl.DataFrame({"k": [f"x{len(compactions)}"], "v": [0]}))
            compactions.append(other.compact(max_parts=2, part_rows=20, purge_after_s=0))

    thread = threading.Thread(target=compactor)
    thread.start()
    try:
        for _ in range(30):
            found = store.lookup(written)
            assert found.height == len(written) and set(found["k"]) == set(written)
            assert store.existing(written) == set(written)
    finally:
        stop.set()
        thread.join()
    assert sum(compactions) > 0  # the race really happened


def test_compaction_leaves_parts_a_reader_listed_until_the_grace_period(tmp_path):
    store = ParquetStore(tmp_path / "s", key="k")
    for i in range(6):
        store.append(pl.DataFrame({"k": [f"k{i}"], "v": [i]}))
    listed = store._parts()  # a concurrent run listed these and is about to read them
    assert store.compact(max_parts=2) == 6
    assert all(os.path.exists(p) for p in listed)  # still readable by that run
    assert pl.concat([pl.read_parquet(p) for p in listed]).height == 6
    assert store.purge(older_than_s=3600) == 0 and all(os.path.exists(p) for p in listed)
    assert store.lookup([f"k{i}" for i in range(6)]).height == 6


def _variants(seed_images: Path, count: int) -> dict[str, bytes]:
    seeds = [p.read_bytes() for p in sorted(seed_images.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg")]
    return {f"p{i:03d}.jpg": jpeg_with_comment(seeds[i % len(seeds)], f"variant {i}".encode()) for i in range(count)}


def _put(files: dict[str, bytes], folder: str) -> None:
    for name, data in files.items():
        filesystem.atomic_write_bytes(filesystem.join(folder, name), data)


def _run(env: dict, source: str, out: str, cache: str, config: Path) -> subprocess.Popen:
    return cli("run", source, "--out", out, "--cache-dir", cache, "--config", config, "--no-llm", "--shard-size", "8",
               env=env)


def _table(out: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(filesystem.read_bytes(filesystem.join(out, "catalog.parquet"))))


ATTRIBUTES = ["color", "neckline", "sleeve", "pattern", "fabric", "fit", "garment_type"]


@pytest.fixture(params=["local", "s3"])
def shared_root(request, tmp_path):
    if request.param == "local":
        yield str(tmp_path / "store")
        return
    yield request.getfixturevalue("s3").bucket("shared-cache")


@pytest.mark.slow
def test_two_runs_started_at_once_on_one_cache_both_give_correct_rows(shared_root, seed_images, config_file, cli_env):
    # Many small parts (batch 4, shard 8) so that both runs compact the stores they share,
    # and superseded parts are purged at once: the hardest case for a concurrent reader.
    config_file.write_text(config_file.read_text().replace("batch_size = 16", "batch_size = 4")
                           + "[paths]\npurge_after_s = 0\n")
    files = _variants(seed_images, 48)
    names = sorted(files)
    a_src, b_src = filesystem.join(shared_root, "a"), filesystem.join(shared_root, "b")
    _put({n: files[n] for n in names[:32]}, a_src)  # overlapping inputs: 16 images in both
    _put({n: files[n] for n in names[16:]}, b_src)
    cache = filesystem.join(shared_root, "cache")

    runs = [_run(cli_env, a_src, filesystem.join(shared_root, "out-a"), cache, config_file),
            _run(cli_env, b_src, filesystem.join(shared_root, "out-b"), cache, config_file)]
    logs = [p.communicate(timeout=900)[0] for p in runs]
    for proc, log in zip(runs, logs):
        assert proc.returncode == 0, log[-3000:]
    # the rows `a` would have alone: a run in this process, on a cache of its own
    run_catalog(a_src, filesystem.join(shared_root, "out-ref-a"), config_file, filesystem.join(shared_root, "cache-ref"),
                no_llm=True, shard_size=8)

    a, b = _table(filesystem.join(shared_root, "out-a")), _table(filesystem.join(shared_root, "out-b"))
    ref = _table(filesystem.join(shared_root, "out-ref-a"))
    assert sorted(a["image"]) == names[:32] and sorted(b["image"]) == names[16:]
    columns = ["image", "sha256", *ATTRIBUTES]
    assert a.sort("image").select(columns).equals(ref.sort("image").select(columns))  # as if it ran alone
    both = a.join(b, on="image", suffix="_b").sort("image")
    assert both.height == 16
    assert all(both[c].to_list() == both[f"{c}_b"].to_list() for c in ["sha256", *ATTRIBUTES])


def test_cache_compact_command_merges_then_deletes_only_old_superseded_parts(tmp_path, capsys):
    from catalog_intel.cli import main

    store = ParquetStore(tmp_path / "cache" / "embeddings" / "m", key="sha256")
    for i in range(20):
        store.append(pl.DataFrame({"sha256": [f"s{i}"]}))
    assert main(["cache", "compact", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert capsys.readouterr().out.strip() == "embeddings/m: 20 parts merged, 0 superseded parts deleted, 1 live parts"
    assert len(list((tmp_path / "cache" / "embeddings" / "m").glob("part-*"))) == 21  # grace period: kept
    assert main(["cache", "compact", "--cache-dir", str(tmp_path / "cache"), "--purge-after", "0"]) == 0
    assert "20 superseded parts deleted, 1 live parts" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "embeddings" / "m").glob("part-*"))) == 1
    assert store.count() == 20
