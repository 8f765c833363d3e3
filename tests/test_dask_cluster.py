"""The flow on a real Dask cluster: a `dask scheduler` and two `dask worker` processes, each its own
OS process (and process group) talking TCP on 127.0.0.1, against the fake LLM HTTP server.

Same rows as the local run; shards ran in both workers; the global rate limit paces the copy
requests of both workers; a worker SIGKILLed mid-run loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import shared_set
from llm_server import FakeLLMServer

REPO = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).parent / "dask"
IMAGES = 96
SHARD_SIZE = 8
SHARDS = IMAGES // SHARD_SIZE
RATE = 4.0

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dask_cluster(logs: Path, workers: int = 2, resources: dict[str, str] | None = None):
    """`dask scheduler` + `dask worker` processes, torn down (whole process groups) on exit."""
    from distributed import Client

    if not DASK.exists():
        pytest.skip(f"{DASK} is missing: install the dask extra")
    logs.mkdir(parents=True, exist_ok=True)
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen([str(DASK), *args], env=env, cwd=REPO, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)

    try:
        spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
              "--no-dashboard")
        for i in range(1, workers + 1):
            extra = ["--resources", resources[f"w{i}"]] if resources and f"w{i}" in resources else []
            spawn(f"w{i}", "worker", address, "--host", "127.0.0.1", "--name", f"w{i}", "--nthreads", "1",
                  "--nworkers", "1", "--no-dashboard", "--memory-limit", "0", *extra)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
            names = {w["name"]: a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        yield SimpleNamespace(address=address, procs=procs, worker_address=names)
    finally:
        for proc in reversed(list(procs.values())):
            _kill_group(proc, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait(10)


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, tiny_clip):
    """96 H&M photos, and a config: tiny CLIP, 2 decode workers (threads inside a Dask worker),
    a 4 requests/s LLM rate limit and copy batches of 3 distinct attribute sets."""
    images = sorted(shared_set("hm-tops").joinpath("images").iterdir())[:IMAGES]
    root = tmp_path_factory.mktemp("dask-catalog")
    src = root / "src"
    src.mkdir()
    for p in images:
        (src / p.name).symlink_to(p)
    config = root / "catalog-intel.toml"
    config.write_text(
        "[clip]\n" + "".join(f'{k.split(".")[1]} = "{v}"\n' for k, v in tiny_clip.items() if isinstance(v, str))
        + "batch_size = 4\ndecode_workers = 2\n"
        + f"[llm]\nrequests_per_second = {RATE}\nconcurrency = 4\nbackoff_initial_s = 0.05\nbackoff_max_s = 1.0\n"
        + 'timeout_s = 10\ndescribe_batch = 3\nrate_limit_name = "catalog-intel-dask-test"\n'
        + "[attributes.sleeve]\nmin_confidence = 0.0\n[attributes.color]\nmin_confidence = 0.0\n"
    )
    return SimpleNamespace(src=src, config=config, root=root)


def _run(catalog, name: str, llm, **params) -> tuple[dict, pl.DataFrame]:
    from catalog_intel.orchestration.flow import catalog_flow

    out = catalog.root / name
    summary = catalog_flow(source=str(catalog.src), out_dir=str(out), config_path=str(catalog.config),
                           cache_dir=str(catalog.root / f"cache-{name}"), shard_size=SHARD_SIZE,
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
                                                                                 local_run, tmp_path):
    with dask_cluster(tmp_path / "logs") as cluster, FakeLLMServer() as llm:
        summary, table = _run(catalog, "dask", llm, task_runner="dask", dask_address=cluster.address)
        times = sorted(r["time"] for r in llm.request_log)
        addresses = set(cluster.worker_address.values())
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


def test_worker_killed_mid_run_loses_and_duplicates_nothing(prefect_server, catalog, local_run, tmp_path):
    killed, in_flight = threading.Event(), []
    with dask_cluster(tmp_path / "logs") as cluster, FakeLLMServer() as llm:
        embeddings = catalog.root / "cache-killed" / "embeddings"

        def kill_when_work_started() -> None:
            """Once a batch is stored, w1 (worker and nanny) dies while it runs a shard."""
            from distributed import Client

            w1 = cluster.worker_address["w1"]
            with Client(cluster.address, timeout=60) as client:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline and not (list(embeddings.rglob("part-*.parquet"))
                                                           and client.processing(workers=[w1]).get(w1)):
                    time.sleep(0.05)
                in_flight.extend(client.processing(workers=[w1]).get(w1, ()))
                _kill_group(cluster.procs["w1"], signal.SIGKILL)
            killed.set()

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


def test_cli_on_a_cluster_whose_gpu_worker_takes_every_shard(prefect_server, catalog, tmp_path):
    """`catalog-intel run --task-runner dask --dask-address ...` from the command line (its own temporary
    Prefect server, which the workers reach by URL). w2 advertises a GPU: only it takes shard tasks."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    with dask_cluster(tmp_path / "logs", resources={"w2": "GPU=1"}) as cluster:
        proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(catalog.src), "--out", str(out),
                               "--config", str(catalog.config), "--cache-dir", str(tmp_path / "cache"), "--no-llm",
                               "--shard-size", str(SHARD_SIZE), "--task-runner", "dask", "--dask-address",
                               cluster.address], capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
        w2 = cluster.worker_address["w2"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{IMAGES} inputs = {IMAGES} rows + 0 rejects" in proc.stdout
    assert f"| dask {cluster.address}: 1 workers ({w2}: {SHARDS} shards)" in proc.stdout, proc.stdout[-2000:]
    assert pl.read_parquet(out / "catalog.parquet").height == IMAGES
