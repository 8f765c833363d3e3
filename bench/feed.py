"""Feeding the model (issue #21): what grows with the catalog, apart from what does not.

    python bench/feed.py [--sizes 400,2000] [--json bench/results/feed.json]

Synthetic 800x1000 catalog JPEGs, attributes only (no LLM), the real CLI, fresh caches:
  forward_s   the bare forward over N images (pixels decoded and preprocessed beforehand, not timed;
              400 distinct images, cycled: the forward's cost does not depend on the pixels);
  run_s       `catalog-intel run` over N images, wall time of the whole command;
  marginal    (forward_s[big] - forward_s[small]) / (run_s[big] - run_s[small]): the share of each added
              image's cost that is the model's (fixed costs cancel); target >= 0.85;
  fixed_s     run_s[small] - small * (run_s[big] - run_s[small]) / (big - small): the run's intercept;
  rerun_s     the big run again, same cache and output (nothing new): target <= 15 s;
  cpu_ms      CPU per image of each stage outside the model, from the big run's summary (decode, colour,
              thumbnails) and of the model; target: decode + colour + thumbnails <= 3 ms.
Every timed figure carries the 1-minute load average before and after it: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load() -> float:
    return round(os.getloadavg()[0], 2)


def catalog(work: Path, size: int) -> Path:
    """work/catalog-N: the first N images of one deterministic catalog (hard links, one drawing)."""
    from catalog_intel.io.synthetic import write_catalog

    files = write_catalog(work / "drawn", size)
    folder = work / f"catalog-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not (folder / f.name).exists():
            os.link(f, folder / f.name)
    return folder


def bare_forward(folder: Path, checkpoint: str, sizes: list[int]) -> dict:
    """{N: (wall s, CPU s, load)} of the model's forward over N images' pixels, batch as configured."""
    import torch

    from catalog_intel.config import load_config
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.io.images import load_rgb

    config = load_config(None, {"clip.checkpoint": checkpoint})
    clip = load_clip(config.clip, config.paths.cache_path)
    files = sorted(folder.glob("*.jpg"))[:400]
    pixels = torch.stack([clip.preprocess(load_rgb(str(f), config.run.max_image_pixels, clip.image_size))
                          for f in files])
    batch = config.clip.batch_size
    out = {}
    with torch.inference_mode():
        clip.model.encode_image(pixels[:batch])  # warm-up
        for n in sizes:
            before = load()
            started, cpu = time.monotonic(), time.process_time()
            for i in range(0, n, batch):
                idx = torch.arange(i, min(i + batch, n)) % len(files)
                clip.model.encode_image(pixels[idx])
            out[n] = {"forward_s": round(time.monotonic() - started, 2), "forward_cpu_s": round(time.process_time() - cpu, 2),
                      "load": [before, load()]}
            print(f"bare forward {n}: {out[n]}", flush=True)
    return out


def timed_run(source: Path, out: Path, cache: Path, checkpoint: str) -> dict:
    """One `catalog-intel run` in its own process, as a user starts it: wall time, CPU, the summary."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before_load = load()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(source), "--out", str(out),
                           "--cache-dir", str(cache), "--no-llm", "--clip-checkpoint", checkpoint],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    run_s = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"run of {source} failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    summary_line = next(line for line in proc.stdout.splitlines() if line.startswith("catalog-intel:"))
    flow_s = float(re.search(r"\| ([\d.]+) s[ |]", summary_line)[1])
    summary = _summary_fields(proc.stdout)
    return {"run_s": round(run_s, 2), "flow_s": flow_s,
            "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
            "load": [before_load, load()], "summary": summary_line,
            "cpu_ms_per_image": summary.get("cpu_ms_per_image"), "fixed_s": summary.get("fixed_s")}


def _summary_fields(stdout: str) -> dict:
    """CPU per image and fixed costs from the run's summary lines (absent: a summary without them)."""
    out: dict = {}
    cpu = re.search(r"^CPU per image: (.*)$", stdout, re.M)
    if cpu:
        out["cpu_ms_per_image"] = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+) ms", cpu[1])}
    fixed = re.search(r"before the first shard ([\d.]+) s, after the last ([\d.]+) s", stdout)
    if fixed:
        out["fixed_s"] = {"before_first_shard": float(fixed[1]), "after_last_shard": float(fixed[2])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="400,2000")
    parser.add_argument("--work", default="/tmp/catalog-intel-feed")
    parser.add_argument("--checkpoint", default="/tmp/vitb32-random.pt")
    parser.add_argument("--skip-forward", action="store_true", help="runs only (reuse forward figures of --json)")
    parser.add_argument("--json")
    args = parser.parse_args()
    small, big = (int(s) for s in args.sizes.split(","))
    work = Path(args.work)
    if not Path(args.checkpoint).is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_random_checkpoint.py"), args.checkpoint], check=True)
    folders = {n: catalog(work, n) for n in (small, big)}
    result: dict = {"sizes": [small, big], "cores": os.cpu_count(), "commit": _commit(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    runs_dir = work / f"runs-{time.time_ns()}"
    result["runs"] = {}
    for n in (small, big):
        result["runs"][n] = timed_run(folders[n], runs_dir / f"out-{n}", runs_dir / f"cache-{n}", args.checkpoint)
        print(f"run {n}: {result['runs'][n]['run_s']} s (load {result['runs'][n]['load']})", flush=True)
    result["rerun"] = timed_run(folders[big], runs_dir / f"out-{big}", runs_dir / f"cache-{big}", args.checkpoint)
    print(f"cached re-run {big}: {result['rerun']['run_s']} s (load {result['rerun']['load']})", flush=True)
    result["forward"] = bare_forward(folders[big], args.checkpoint, [small, big])
    shutil.rmtree(runs_dir, ignore_errors=True)
    f, r = result["forward"], result["runs"]
    d_run = r[big]["run_s"] - r[small]["run_s"]
    result["marginal"] = round((f[big]["forward_s"] - f[small]["forward_s"]) / d_run, 3)
    result["fixed_s"] = round(r[small]["run_s"] - small * d_run / (big - small), 2)
    result["rerun_s"] = result["rerun"]["run_s"]
    result["cpu_ms_per_image"] = r[big]["cpu_ms_per_image"]
    result["load_end"] = load()
    print(json.dumps({k: result[k] for k in ("marginal", "fixed_s", "rerun_s", "cpu_ms_per_image")}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
