"""Fixed overhead of an ad hoc run: an attributes-only run over N catalog images
(the real CLI) against the bare model forward over the same images (pixels decoded
and preprocessed beforehand, not timed).

    python bench/overhead.py --images 400 [--repeat 3] [--running-server] [--json out.json]

Each round times two runs, each into a fresh output, then the bare forward:
  first   a fresh cache: the first run on a machine (checkpoint hashed, label texts encoded);
  ad hoc  a cache an earlier run used (8 other images), as on a machine that has run before:
          the N images are new to it.
Rounds alternate the kinds because this machine's speed drifts by 10-20% over minutes; the
result is the median ratio. `--running-server`: the runs report to a Prefect server that is
already up (PREFECT_API_URL), as deployments and scheduled runs do, instead of starting one.
Target (issue #11): run wall time <= 1.4x the bare forward. The run's per-phase
times come from its summary line; `outside_flow_s` is start-up, report and exit; `cpu_s` is
the CPU time of the run and its child processes (the decode worker, and Prefect's temporary
server where the run starts one), against `forward_cpu_s`: on a machine whose cores the
forward already fills, the run's wall time cannot drop below cpu_s / cores."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare_forward(files: list[str], checkpoint: str, batch: int) -> Callable[[], tuple[float, float]]:
    """A function that times the model's forward over the images' pixels (loaded once, here)."""
    import torch

    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.settings import load_config
    from catalog_intel.io.images import load_rgb

    config = load_config(None, {"clip.checkpoint": checkpoint})
    clip = load_clip(config.clip, config.paths.cache_path)
    pixels = torch.stack([clip.preprocess(load_rgb(f, config.run.max_image_pixels, clip.image_size)) for f in files])

    def forward() -> tuple[float, float]:
        """(wall s, CPU s) of one pass over the pixels."""
        with torch.inference_mode():
            clip.model.encode_image(pixels[:batch])  # warm-up
            started, cpu = time.monotonic(), time.process_time()
            for i in range(0, len(files), batch):
                clip.model.encode_image(pixels[i:i + batch])
            return time.monotonic() - started, time.process_time() - cpu

    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of (first run, ad hoc run, bare forward)")
    parser.add_argument("--work", default="/tmp/catalog-intel-overhead")
    parser.add_argument("--checkpoint", default="/tmp/vitb32-random.pt")
    parser.add_argument("--running-server", action="store_true", help="runs report to a server already up")
    parser.add_argument("--json")
    args = parser.parse_args()
    from catalog_intel.settings import load_config
    from catalog_intel.io.synthetic import write_catalog

    work = Path(args.work)
    if not Path(args.checkpoint).is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_random_checkpoint.py"), args.checkpoint], check=True)
    files = [str(p) for p in write_catalog(work / "catalog", args.images)]
    write_catalog(work / "earlier", 8, seed=1)  # other images: what the ad hoc run's cache saw before
    forward = bare_forward(files, args.checkpoint, load_config().clip.batch_size)
    if args.running_server:
        from catalog_intel.orchestration.prefect_api import TemporaryServer

        os.environ["PREFECT_API_URL"] = TemporaryServer.launch().wait_ready()  # the runs inherit it
    rounds = []
    for n in range(1, args.repeat + 1):  # rounds, not runs of a kind back to back: the machine's speed drifts
        run_dir = work / f"run-{time.time_ns()}"
        first = timed_run(work / "catalog", run_dir / "out-first", run_dir / "cache-first", args.checkpoint)
        timed_run(work / "earlier", run_dir / "out-earlier", run_dir / "cache", args.checkpoint)
        ad_hoc = timed_run(work / "catalog", run_dir / "out", run_dir / "cache", args.checkpoint)
        forward_s, forward_cpu_s = forward()
        rounds.append({"forward_s": round(forward_s, 1), "forward_cpu_s": round(forward_cpu_s, 1),
                       "first": {**first, "ratio": round(first["run_s"] / forward_s, 2)},
                       "ad_hoc": {**ad_hoc, "ratio": round(ad_hoc["run_s"] / forward_s, 2)}})
        print(f"round {n}: forward {forward_s:.1f} s; first run {first['run_s']} s "
              f"({rounds[-1]['first']['ratio']}x); ad hoc run {ad_hoc['run_s']} s ({rounds[-1]['ad_hoc']['ratio']}x)",
              flush=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    result = {"images": args.images, "running_server": args.running_server, "median_ratio": {kind: statistics.median(r[kind]["ratio"] for r in rounds)
                                                      for kind in ("first", "ad_hoc")},
              "rounds": rounds, "cores": os.cpu_count(), "load_avg": os.getloadavg()}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


def timed_run(source: Path, out: Path, cache: Path, checkpoint: str) -> dict:
    """One `catalog-intel run` in its own process, as a user starts it: wall time and the summary."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(source), "--out", str(out),
                           "--cache-dir", str(cache), "--no-llm", "--clip-checkpoint", checkpoint],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    run_s = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the run, its decode worker and Prefect's server
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("catalog-intel:"))
    flow_s = float(re.search(r"\| ([\d.]+) s[ |]", summary)[1])  # the flow's own time, from its summary line
    return {"run_s": round(run_s, 1), "cpu_s": round(cpu_s, 1), "flow_s": flow_s,
            "outside_flow_s": round(run_s - flow_s, 1),  # start-up (imports, model), report, exit
            "summary": summary}


if __name__ == "__main__":
    main()
