"""Object storage end to end, against a real S3-compatible server (moto, server mode,
on 127.0.0.1): images in a bucket -> run -> outputs in the bucket; a re-run computes
nothing; a run killed with SIGKILL and re-run gives the rows of a clean run."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from catalog_intel.io import filesystem
from catalog_intel.io.parquet_store import ParquetStore
from catalog_intel.io.synthetic import jpeg_with_comment
from conftest import cli, run_catalog
from s3_server import ENV

VOLATILE = ("run_id", "processed_at")


def _upload(files: dict[str, bytes], url: str) -> None:
    for name, data in files.items():
        filesystem.atomic_write_bytes(f"{url}/{name}", data)


def _parquet(url: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(filesystem.read_bytes(url)))


@pytest.mark.slow
def test_images_in_a_bucket_give_outputs_in_the_bucket_and_a_rerun_computes_nothing(
        prefect_server, s3, seed_images, config_file, tmp_path, monkeypatch, capfd, caplog):
    from catalog_intel.io import ingest

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # nothing may appear here (the old code made a folder named "s3:")
    bucket = s3.bucket("catalog-one")
    photos = {p.name: p.read_bytes() for p in sorted(seed_images.iterdir())[:12]}
    _upload({**photos, "notes.txt": b"not a photo", ".DS_Store": b"\0"}, f"{bucket}/drop")
    run = dict(source=f"{bucket}/drop", out=f"{bucket}/out", config=config_file, cache=f"{bucket}/cache", no_llm=True)

    first = run_catalog(**run)
    assert (first["inputs"], first["rows"], first["rejects"], first["skipped"]) == (14, 12, 1, 1)
    assert first["embeddings_computed"] == 12
    table = _parquet(f"{bucket}/out/catalog.parquet")
    assert sorted(table["image"]) == sorted(photos)
    assert table["path"].str.starts_with(f"{bucket}/drop/").all()
    csv = pl.read_csv(io.BytesIO(filesystem.read_bytes(f"{bucket}/out/catalog.csv")))
    assert sorted(csv["image"]) == sorted(photos)
    rejects = pl.read_csv(io.BytesIO(filesystem.read_bytes(f"{bucket}/out/rejects.csv")))
    assert rejects["image"].to_list() == ["notes.txt"] and rejects["reason"][0].startswith("not an image")
    for name in ("_SUCCESS.json", "report/index.html", "search/index.json", "data_docs/index.html",
                 "validation_result.json", "run_config.json"):
        assert filesystem.isfile(f"{bucket}/out/{name}"), name
    thumbs = filesystem.list_dir(f"{bucket}/out/report/thumbs", suffix=".jpg")
    assert len(thumbs) == 12
    assert filesystem.walk_files(f"{bucket}/cache/embeddings")[0]  # the cache lives in the bucket too
    assert list(cwd.iterdir()) == []  # no local folder named after the URL, no lock file, no cache part

    hashed = []
    real_sha = ingest.sha256_file
    monkeypatch.setattr(ingest, "sha256_file", lambda p: hashed.append(p) or real_sha(p))
    second = run_catalog(**run)
    assert hashed == []  # size + ETag from the listing: no image read to hash it
    assert second["embeddings_computed"] == 0 and second["embeddings_cached"] == 12
    assert second["search"]["added"] == 0 and not second["search"]["rebuilt"]
    again = _parquet(f"{bucket}/out/catalog.parquet")
    stable = [c for c in table.columns if c not in VOLATILE]
    assert again.select(stable).equals(table.select(stable))

    captured = capfd.readouterr()
    assert ENV["AWS_SECRET_ACCESS_KEY"] not in captured.out + captured.err + caplog.text


def _cli(env: dict, source: str, out: str, cache: str, config: Path, **popen) -> subprocess.Popen:
    return cli("run", source, "--out", out, "--cache-dir", cache, "--config", config, "--no-llm", "--shard-size", "16",
               env=env, **popen)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_to_the_rows_of_a_clean_run(s3, seed_images, config_file, tmp_path, cli_env):
    """The runs report to the session's Prefect server: the kill is the CLI's and its workers'.
    The clean run to compare with runs in this process (what it computes is the question, not how it starts)."""
    bucket = s3.bucket("catalog-kill")
    seeds = [p.read_bytes() for p in sorted(seed_images.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg")]
    images = 64  # 4 shards of 16
    files = {f"p{i:03d}.jpg": jpeg_with_comment(seeds[i % len(seeds)], f"variant {i}".encode()) for i in range(images)}
    _upload(files, f"{bucket}/drop")
    src, embeddings = f"{bucket}/drop", f"{bucket}/cache/embeddings"

    victim = _cli(cli_env, src, f"{bucket}/out", f"{bucket}/cache", config_file, start_new_session=True)
    deadline = time.monotonic() + 420
    while not [f for f, _ in filesystem.walk_files(embeddings)[0] if "/part-" in f]:
        assert victim.poll() is None, "the run finished before it could be killed: " + victim.stdout.read()[-2000:]
        assert time.monotonic() < deadline, "no embedding part appeared in time"
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)  # the whole run: CLI and its decode workers
    victim.wait(timeout=30)
    victim.stdout.close()
    done_before = sum(_parquet(f).height for f, _ in filesystem.walk_files(embeddings)[0] if "/part-" in f)
    assert 0 < done_before < images
    assert not filesystem.isfile(f"{bucket}/out/catalog.parquet")  # nothing half-published

    resumed = _finish(_cli(cli_env, src, f"{bucket}/out", f"{bucket}/cache", config_file))
    computed = int(re.search(r"embeddings (\d+) computed", resumed).group(1))
    assert computed == images - done_before  # the killed run's work was kept
    clean = run_catalog(src, f"{bucket}/clean-out", config_file, f"{bucket}/clean-cache", no_llm=True, shard_size=16)
    assert clean["embeddings_computed"] == images

    a, b = _parquet(f"{bucket}/out/catalog.parquet"), _parquet(f"{bucket}/clean-out/catalog.parquet")
    stable = [c for c in a.columns if c not in VOLATILE]
    assert a.height == images and a.sort("image").select(stable).equals(b.sort("image").select(stable))


def test_storage_options_from_the_config_and_never_shown(s3, monkeypatch, tmp_path):
    """Without any AWS_* variable, [paths.storage_options.s3] alone reaches the server; the secret is in no repr."""
    from catalog_intel.settings import load_config

    s3.bucket("catalog-options")
    for key in (*ENV, "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    secret = ENV["AWS_SECRET_ACCESS_KEY"]
    options = {"endpoint_url": s3.endpoint, "key": ENV["AWS_ACCESS_KEY_ID"], "secret": secret,
               "client_kwargs": {"region_name": "us-east-1"}}
    try:
        config = load_config(None, {"paths.storage_options": {"s3": options},
                                    "paths.cache_dir": "s3://catalog-options/cache"})
        filesystem.configure(config.paths.storage_options)  # what a run does with its settings
        store = ParquetStore(config.paths.cache_path / "embeddings" / "m", key="sha256")
        store.append(pl.DataFrame({"sha256": ["a", "b"]}))
        assert store.existing(["a", "b", "c"]) == {"a", "b"}
        assert secret not in repr(config) + str(config) + repr(config.paths)
    finally:
        filesystem.configure({})


def test_decode_workers_read_images_from_the_bucket(s3, seed_images, tiny_clip):
    """DataLoader worker processes read the bytes through fsspec; a missing object is a reject, not a crash."""
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.settings import load_config
    from catalog_intel.inference.embedding import compute_embeddings

    bucket = s3.bucket("catalog-workers")
    photos = sorted(seed_images.iterdir())[:6]
    _upload({p.name: p.read_bytes() for p in photos}, f"{bucket}/drop")
    config = load_config(None, tiny_clip)
    clip = load_clip(config.clip, config.paths.cache_path)
    paths = [f"{bucket}/drop/{p.name}" for p in photos] + [f"{bucket}/drop/gone.jpg"]
    remote, reasons = compute_embeddings(paths, clip, batch_size=4, decode_workers=1, max_pixels=10**8)
    local, _ = compute_embeddings([str(p) for p in photos], clip, batch_size=4, decode_workers=0, max_pixels=10**8)
    assert reasons[:6] == [""] * 6 and reasons[6].startswith("file does not exist")
    assert abs(remote[:6] - local).max() < 1e-5
