"""Dask scale-out bench: N images through the real CLI, local vs a local Dask cluster of W worker
processes on this machine (ratio), the per-shard overhead of Prefect + Dask, and optionally the
local run of an older checkout on the same images (the local default must not get slower).

    python bench/dask_bench.py --images 400 --workers 2 [--old-tree /tmp/old-checkout] [--json out.json]

Every run is `catalog-intel run MANIFEST --no-llm` in a child process with a fresh cache (random
ViT-B-32 weights: same compute as the real ones), so every image is decoded and embedded."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.catalog import DEFAULT_ROOT, ensure_catalog, ensure_manifest  # noqa: E402

_SECONDS = re.compile(r"catalog-intel: (\d+) inputs = (\d+) rows .*?\| ([\d.]+) s")


def _load() -> str:
    with open("/proc/loadavg") as fh:
        return fh.read().split()[0]


def run_cli(tree: Path, manifest: Path, work: Path, label: str, args, *extra: str) -> dict:
    """`catalog-intel run` of `tree` (a checkout) in a child process, fresh cache; wall and flow seconds."""
    cache, out = work / f"cache-{label}", work / f"out-{label}"
    config = work / "bench.toml"
    config.write_text(f"[clip]\nbatch_size = {args.batch_size}\ndecode_workers = 1\n[run]\nmax_reject_share = 1.0\n")
    cmd = [sys.executable, str(tree / "bench" / "flow_child.py"), "run", str(manifest), "--out", str(out),
           "--config", str(config), "--cache-dir", str(cache), "--clip-checkpoint", str(args.checkpoint),
           "--clip-model", "ViT-B-32", "--no-llm", "--shard-size", str(args.shard_size), *extra]
    env = {**os.environ, "PYTHONPATH": str(tree), "PREFECT_HOME": str(work / "prefect-home"),
           "PREFECT_LOGGING_LEVEL": "WARNING", "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("BENCH_RUSAGE_OUT", None)
    load_before = _load()
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    output = proc.stdout + proc.stderr
    found = _SECONDS.findall(output)
    if proc.returncode != 0 or not found:
        print(output[-4000:])
        raise SystemExit(f"[{label}] failed with exit code {proc.returncode}")
    inputs, rows, seconds = found[-1]
    line = [ln for ln in output.splitlines() if ln.startswith("catalog-intel:")][-1]
    result = {"label": label, "images": int(inputs), "rows": int(rows), "flow_s": float(seconds),
              "command_s": round(wall, 1), "load_before": load_before, "load_after": _load(), "summary": line}
    print(f"  [{label}] flow {result['flow_s']:.1f} s, command {wall:.1f} s, "
          f"{int(inputs) / float(seconds):.2f} img/s (load {load_before} -> {result['load_after']})\n    {line}")
    return result


def per_task_overhead(n: int, workers: int) -> dict:
    """Per-task cost of mapping a no-op shard task: Prefect thread runner vs Prefect on a Dask cluster."""
    from prefect import flow, task, unmapped
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from catalog_intel.pipeline.shard import ShardSpec
    from catalog_intel.orchestration.tasks import TASK_DEFAULTS

    @task(name="bench-noop-shard", **TASK_DEFAULTS)
    def noop(spec: ShardSpec, config: dict) -> int:
        return spec.frame().height

    import polars as pl

    specs = [ShardSpec(i, pl.DataFrame({"sha256": [f"{i:064x}"] * 512, "path": [f"/x/{j}.jpg" for j in range(512)]}))
             for i in range(n)]

    @flow(name="bench-shard-overhead")
    def overhead() -> dict:
        times = {}
        for name, runner in (("prefect_threads", ThreadPoolTaskRunner(max_workers=1)),
                             ("prefect_dask", DaskTaskRunner(cluster_kwargs={"n_workers": workers,
                                                                             "threads_per_worker": 1,
                                                                             "dashboard_address": None}))):
            with runner:
                runner.map(noop, {"spec": specs[:2], "config": unmapped({})}).result()  # warm-up, cluster start
                t0 = time.perf_counter()
                runner.map(noop, {"spec": specs, "config": unmapped({})}).result()
                times[name] = (time.perf_counter() - t0) / n * 1000
        return times

    ms = overhead()
    print(f"  per-shard overhead ({n} no-op shard tasks, 512-image specs): "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()))
    return {k: round(v, 1) for k, v in ms.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--checkpoint", type=Path, default=Path("/tmp/vitb32-random.pt"),
                   help="ViT-B-32 weights (scripts/make_random_checkpoint.py makes random ones)")
    p.add_argument("--old-tree", type=Path, help="a checkout of an older commit: its local run on the same images")
    p.add_argument("--overhead-tasks", type=int, default=40)
    p.add_argument("--skip", default="", help="comma list of: local, dask, old, overhead")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    if not args.checkpoint.is_file():
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_random_checkpoint.py"), str(args.checkpoint)],
                       check=True)
    root, order = ensure_catalog(DEFAULT_ROOT, args.images, min(args.images, 2000))
    manifest = ensure_manifest(root, order, args.images)
    result: dict = {"images": args.images, "workers": args.workers, "shard_size": args.shard_size,
                    "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="dask-bench-") as tmp:
        work = Path(tmp)
        if "old" not in skip and args.old_tree:
            result["old_local"] = run_cli(args.old_tree, manifest, work, "old-local", args)
        if "local" not in skip:
            result["local"] = run_cli(REPO, manifest, work, "local", args)
        if "dask" not in skip:
            result["dask"] = run_cli(REPO, manifest, work, "dask", args, "--task-runner", "dask",
                                     "--workers", str(args.workers))
        if "overhead" not in skip:
            os.environ.setdefault("PREFECT_HOME", str(work / "prefect-home"))
            result["shard_overhead_ms"] = per_task_overhead(args.overhead_tasks, args.workers)
    if "local" in result and "dask" in result:
        result["dask_over_local"] = round(result["local"]["flow_s"] / result["dask"]["flow_s"], 2)
        print(f"  {args.workers}-worker Dask cluster vs local: {result['dask_over_local']}x the local throughput")
    if "local" in result and "old_local" in result:
        result["local_new_over_old"] = round(result["old_local"]["flow_s"] / result["local"]["flow_s"], 2)
        print(f"  local, this checkout vs the old one: {result['local_new_over_old']}x the old throughput")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
