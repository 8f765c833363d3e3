"""The flow on a real Dask cluster (the session's: a `dask scheduler` and two `dask worker` processes,
each its own OS process and process group, on 127.0.0.1; see tests/cluster.py), against the fake
LLM HTTP server.

Same rows as the local run; shards ran in both workers; the global rate limit paces the copy
requests of both workers; a worker SIGKILLed mid-run loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cluster import kill_group
from conftest import make_source, run_catalog, write_config
from llm_server import FakeLLMServer

REPO = Path(__file__).resolve().parents[1]
IMAGES = 96
SHARD_SIZE = 8
SHARDS = IMAGES // SHARD_SIZE
RATE = 4.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, tiny_clip):
    """96 H&M photos, and a config: tiny CLIP, 2 decode workers (threads inside a Dask worker),
    a 4 requests/s LLM rate limit and copy batches of 3 distinct attribute sets."""
    root = tmp_path_factory.mktemp("dask-catalog")
    src = make_source(root / "src", IMAGES, "hm-tops", link=True)
    config = write_config(root / "catalog-intel.toml", tiny_clip, {
        "clip": {"batch_size": 4, "decode_workers": 2},
        "llm": {"requests_per_second": RATE, "backoff_max_s": 1.0, "timeout_s": 10, "describe_batch": 3,
                "rate_limit_name": "catalog-intel-dask-test"},
        "attributes": {"sleeve": {"min_confidence": 0.0}, "color": {"min_confidence": 0.0}}})
    return SimpleNamespace(src=src, config=config, root=root)


def _run(catalog, name: str, llm, **params) -> tuple[dict, pl.DataFrame]:
    out = catalog.root / name
    summary = run_catalog(catalog.src, out, catalog.config, catalog.root / f"cache-{name}", shard_size=SHARD_SIZE,
                          llm_base_url=llm.base_url, **params)
    return summary, pl.read_parquet(out / "catalog.parquet").sort("image")


def _same_rows(local: pl.DataFrame, other: pl.DataFrame) -> None:
    stable = [c for c in local.columns if c not in ("run_id", "processed_at")]
    assert other.height == local.height == IMAGES and other["image"].n_unique() == IMAGES
    assert_frame_equal(local.select(stable), other.select(stable), check_exact=False, abs_tol=1e-6, rel_tol=0)


@pytest.fixture(scope="module")
def local_run(prefect_server, catalog):
    with FakeLLMServer() as llm:
        summary, table = _run(catalog, "local", llm)
    assert summary["task_runner"] == "local" and summary["rows"] == IMAGES
    return table


def test_two_worker_cluster_gives_the_local_rows_paced_llm_and_names_its_workers(prefect_server, catalog,
                                                                                 local_run, dask_cluster):
    cluster = dask_cluster
    addresses = set(cluster.worker_address.values())
    with FakeLLMServer() as llm:
        summary, table = _run(catalog, "dask", llm, task_runner="dask", dask_address=cluster.address)
        times = sorted(r["time"] for r in llm.request_log)
    _same_rows(local_run, table)
    assert summary["embeddings_computed"] == IMAGES  # its own cache: every image embedded on the workers
    # Shards ran in both worker processes, each shard exactly once.
    assert set(summary["workers"]) == addresses, summary["workers"]
    assert sorted(s for shards in summary["workers"].values() for s in shards) == list(range(1, SHARDS + 1))
    from catalog_intel.pipeline.summary import RunSummary

    assert summary["task_runner"] == f"dask {cluster.address}"
    line = RunSummary(**summary).one_line()
    assert f"| dask {cluster.address}: 2 workers (" in line and all(f"{a}: " in line for a in addresses), line
    # The copy batches ran on the workers; one limit paced them all: slots decay at RATE/s, burst RATE.
    assert summary["llm_calls"] == len(times) >= 8
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 2 * RATE, busiest
    assert times[-1] - times[0] >= (len(times) - RATE) / RATE - 0.5


def test_cli_on_a_cluster_whose_gpu_worker_takes_every_shard(catalog, tmp_path, dask_cluster):
    """`catalog-intel run --task-runner dask --dask-address ...` from the command line (its own temporary
    Prefect server, which the workers reach by URL). A third worker advertises a GPU: only it takes
    shard tasks (3 shards of the catalog: where they run is the question, not how many)."""
    images = 3 * SHARD_SIZE
    src = make_source(tmp_path / "src", images, "hm-tops", link=True)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    cluster = dask_cluster
    with cluster.extra_worker("w3", resources="GPU=1") as w3:
        proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(src), "--out", str(out),
                               "--config", str(catalog.config), "--cache-dir", str(tmp_path / "cache"), "--no-llm",
                               "--shard-size", str(SHARD_SIZE), "--task-runner", "dask", "--dask-address",
                               cluster.address], capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{images} inputs = {images} rows + 0 rejects" in proc.stdout
    assert f"| dask {cluster.address}: 1 workers ({w3}: 3 shards)" in proc.stdout, proc.stdout[-2000:]
    assert pl.read_parquet(out / "catalog.parquet").height == images


def test_worker_killed_mid_run_loses_and_duplicates_nothing(prefect_server, catalog, local_run, dask_cluster):
    cluster = dask_cluster
    killed, in_flight = threading.Event(), []
    embeddings = catalog.root / "cache-killed" / "embeddings"
    w1 = cluster.worker_address["w1"]

    def kill_when_work_started() -> None:
        """Once a batch is stored, w1 (worker and nanny) dies while it runs a shard."""
        from distributed import Client

        with Client(cluster.address, timeout=60) as client:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not (list(embeddings.rglob("part-*.parquet"))
                                                       and client.processing(workers=[w1]).get(w1)):
                time.sleep(0.05)
            in_flight.extend(client.processing(workers=[w1]).get(w1, ()))
            kill_group(cluster.procs["w1"], signal.SIGKILL)
        killed.set()

    with FakeLLMServer() as llm:
        killer = threading.Thread(target=kill_when_work_started, daemon=True)
        killer.start()
        summary, table = _run(catalog, "killed", llm, task_runner="dask", dask_address=cluster.address)
        killer.join(5)
        assert cluster.procs["w1"].wait(10) == -signal.SIGKILL
    assert killed.is_set() and in_flight  # w1 was running a shard when it died
    _same_rows(local_run, table)
    assert summary["rows"] == IMAGES and summary["rejects"] == 0
    assert sorted(s for shards in summary["workers"].values() for s in shards) == list(range(1, SHARDS + 1))
    assert cluster.worker_address["w2"] in summary["workers"]
