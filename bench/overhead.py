"""Fixed overhead of an ad hoc run: an attributes-only run over N catalog images
(the real CLI, fresh cache and output) against the bare model forward over the
same images (pixels decoded and preprocessed beforehand, not timed).

    python bench/overhead.py --images 400 [--checkpoint /tmp/vitb32-random.pt] [--json out.json]
Target (issue #11): run wall time <= 1.4x the bare forward. The run's per-phase
times come from its summary line."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare_forward(files: list[str], checkpoint: str, batch: int) -> float:
    import torch

    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.config import load_config
    from catalog_intel.io.images import load_rgb

    config = load_config(None, {"clip.checkpoint": checkpoint})
    clip = load_clip(config.clip, config.paths.cache_path)
    pixels = torch.stack([clip.preprocess(load_rgb(f, config.run.max_image_pixels, clip.image_size)) for f in files])
    with torch.inference_mode():
        clip.model.encode_image(pixels[:batch])  # warm-up
        started = time.monotonic()
        for i in range(0, len(files), batch):
            clip.model.encode_image(pixels[i:i + batch])
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--work", default="/tmp/catalog-intel-overhead")
    parser.add_argument("--checkpoint", default="/tmp/vitb32-random.pt")
    parser.add_argument("--json")
    args = parser.parse_args()
    from catalog_intel.config import load_config
    from catalog_intel.io.synthetic import write_catalog

    work = Path(args.work)
    if not Path(args.checkpoint).is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_random_checkpoint.py"), args.checkpoint], check=True)
    files = [str(p) for p in write_catalog(work / "catalog", args.images)]
    batch = load_config().clip.batch_size
    run_dir = work / f"run-{time.time_ns()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(work / "catalog"), "--out",
                           str(run_dir / "out"), "--cache-dir", str(run_dir / "cache"), "--no-llm",
                           "--clip-checkpoint", args.checkpoint], env=env, cwd=ROOT, capture_output=True, text=True)
    run_s = time.monotonic() - started
    if proc.returncode:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("catalog-intel:"))
    forward_s = bare_forward(files, args.checkpoint, batch)
    flow_s = float(re.search(r"\| ([\d.]+) s[ |]", summary)[1])  # the flow's own time, from its summary line
    result = {"images": args.images, "run_s": round(run_s, 1), "forward_s": round(forward_s, 1),
              "ratio": round(run_s / forward_s, 2), "flow_s": flow_s,
              "outside_flow_s": round(run_s - flow_s, 1),  # start-up (imports, Prefect server), report, exit
              "summary": summary, "cores": os.cpu_count(),
              "load_avg": os.getloadavg()}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
