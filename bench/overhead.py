"""Fixed overhead of an ad hoc run: an attributes-only run over N catalog images (the real CLI, through the harness)
against the bare model forward over the same images (pixels decoded and preprocessed beforehand, not timed).

    python bench/overhead.py --images 400 [--repeat 3] [--running-server] [--json bench/results/overhead.json]

Each round times two runs, each into a fresh output, then the bare forward:
  first   a fresh cache: the first run on a machine (checkpoint hashed, label texts encoded);
  ad hoc  a cache an earlier run used (8 other images), as on a machine that has run before: the N images are new to it.
Rounds alternate the kinds because a machine's speed drifts by 10-20% over minutes; the result is the median ratio.
`--running-server`: the runs report to a Prefect server that is already up (PREFECT_API_URL), as deployments do.
`outside_flow_s` is start-up, report and exit; `cpu_s` (the run and every process it started) against `forward_cpu_s`:
on a machine whose cores the forward already fills, the run's wall time cannot drop below cpu_s / cores.
Target (issue #11, restated in docs/decisions/0010): run wall time against the bare forward."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import (Timer, add_report_args, load_settings, prefect_server, random_checkpoint,  # noqa: E402
                           report, run_pipeline)


def bare_forward(files: list[str], checkpoint: str) -> Callable[[], tuple[float, float]]:
    """A function that times the model's forward over the images' pixels (loaded once, here): (wall s, CPU s)."""
    import torch

    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.io.images import load_rgb

    config = load_settings(overrides={"clip.checkpoint": checkpoint})
    clip = load_clip(config.clip, config.paths.cache_path)
    batch = config.clip.batch_size
    pixels = torch.stack([clip.preprocess(load_rgb(f, config.run.max_image_pixels, clip.image_size)) for f in files])

    def forward() -> tuple[float, float]:
        with torch.inference_mode():
            clip.model.encode_image(pixels[:batch])  # warm-up
            with Timer() as t:
                for i in range(0, len(files), batch):
                    clip.model.encode_image(pixels[i:i + batch])
        return t.wall, t.cpu

    return forward


def timed(source: Path, out: Path, cache: Path, checkpoint: str) -> dict:
    run = run_pipeline(source, out, cache=cache, settings={"clip.checkpoint": checkpoint}, label=out.name)
    return {"run_s": round(run.wall_s, 1), "cpu_s": round(run.cpu_s, 1), "flow_s": run.summary["seconds"],
            "outside_flow_s": round(run.wall_s - run.summary["seconds"], 1), "phases": run.summary["phases"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of (first run, ad hoc run, bare forward)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/catalog-intel-overhead"))
    parser.add_argument("--checkpoint", default="/tmp/vitb32-random.pt", help="ViT-B-32 weights (random if missing)")
    parser.add_argument("--running-server", action="store_true", help="runs report to a server already up")
    add_report_args(parser, "overhead")
    args = parser.parse_args()
    from catalog_intel.io.synthetic import write_catalog

    work = args.work
    random_checkpoint(Path(args.checkpoint))
    files = [str(p) for p in write_catalog(work / "catalog", args.images)]
    write_catalog(work / "earlier", 8, seed=1)  # other images: what the ad hoc run's cache saw before
    forward = bare_forward(files, args.checkpoint)
    server = prefect_server() if args.running_server else contextlib.nullcontext()
    rounds = []
    with server as api_url:
        if api_url:
            os.environ["PREFECT_API_URL"] = api_url  # the runs inherit it
        for n in range(1, args.repeat + 1):  # rounds, not runs of a kind back to back: the machine's speed drifts
            run_dir = work / f"run-{time.time_ns()}"
            first = timed(work / "catalog", run_dir / "out-first", run_dir / "cache-first", args.checkpoint)
            timed(work / "earlier", run_dir / "out-earlier", run_dir / "cache", args.checkpoint)
            ad_hoc = timed(work / "catalog", run_dir / "out", run_dir / "cache", args.checkpoint)
            forward_s, forward_cpu_s = forward()
            rounds.append({"forward_s": round(forward_s, 1), "forward_cpu_s": round(forward_cpu_s, 1),
                           "first": {**first, "ratio": round(first["run_s"] / forward_s, 2)},
                           "ad_hoc": {**ad_hoc, "ratio": round(ad_hoc["run_s"] / forward_s, 2)},
                           "load_avg": os.getloadavg()})
            print(f"round {n}: forward {forward_s:.1f} s; first run {first['run_s']} s ({rounds[-1]['first']['ratio']}x)"
                  f"; ad hoc run {ad_hoc['run_s']} s ({rounds[-1]['ad_hoc']['ratio']}x)", flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
        if api_url:
            os.environ.pop("PREFECT_API_URL")
    report("overhead", {"images": args.images, "running_server": args.running_server,
                        "median_ratio": {kind: statistics.median(r[kind]["ratio"] for r in rounds)
                                         for kind in ("first", "ad_hoc")}, "rounds": rounds}, args.json)


if __name__ == "__main__":
    main()
