"""Dask scale-out bench: N images through the real CLI (the harness's run_pipeline), local vs a local Dask cluster of
W worker processes on this machine (ratio), the per-shard overhead of Prefect + Dask, and optionally the local run of
an older checkout on the same images (the local default must not get slower).

    python bench/dask_bench.py --images 400 --workers 2 [--old-tree /tmp/old-checkout] [--json bench/results/dask_bench.json]

Every run is `catalog-intel run MANIFEST --no-llm` in a child process with a fresh cache (random ViT-B-32 weights:
same compute as the real ones), so every image is decoded and embedded."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.catalog import DEFAULT_ROOT, ensure_catalog, ensure_manifest  # noqa: E402
from bench.harness import add_report_args, log, random_checkpoint, report, run_pipeline  # noqa: E402


def run_cli(tree: Path, manifest: Path, work: Path, label: str, args, *flags: str) -> dict:
    """`catalog-intel run` of `tree` (a checkout), fresh cache."""
    settings = {"clip.model": "ViT-B-32", "clip.checkpoint": str(args.checkpoint), "clip.batch_size": args.batch_size,
                "clip.decode_workers": 1, "run.shard_size": args.shard_size}
    run = run_pipeline(manifest, work / f"out-{label}", cache=work / f"cache-{label}", settings=settings,
                       flags=flags, repo=tree, label=label, env={"PREFECT_HOME": str(work / "prefect-home")})
    return {**run.figures(), "load_after": os.getloadavg()[0]}


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
    log(f"  per-shard overhead ({n} no-op shard tasks, 512-image specs): "
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
    add_report_args(p, "dask_bench")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    random_checkpoint(args.checkpoint)
    root, order = ensure_catalog(DEFAULT_ROOT, args.images, min(args.images, 2000))
    manifest = ensure_manifest(root, order, args.images)
    result: dict = {"images": args.images, "workers": args.workers, "shard_size": args.shard_size}
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
        result["dask_over_local"] = round(result["local"]["summary"]["seconds"] / result["dask"]["summary"]["seconds"], 2)
        log(f"  {args.workers}-worker Dask cluster vs local: {result['dask_over_local']}x the local throughput")
    if "local" in result and "old_local" in result:
        result["local_new_over_old"] = round(result["old_local"]["summary"]["seconds"] / result["local"]["summary"]["seconds"], 2)
        log(f"  local, this checkout vs the old one: {result['local_new_over_old']}x the old throughput")
    report("dask_bench", result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
