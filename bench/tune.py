#!/usr/bin/env python
"""Tune the embed stage: decode workers, forward threads, prefetch, batch size, precision.

    python bench/tune.py [--images 128] [--rounds 2] [--device cpu]

Each setting runs compute_embeddings on the same images, and the model forward
alone (random input) runs for each (threads, batch, precision) it uses; all of
them round-robin for --rounds rounds, so the machine's other load falls on every
setting alike. Prints img/s per setting (median over rounds), its ratio to the
forward alone at the same (threads, batch, precision), and the time to the first
batch (decode-worker start-up, paid once per shard).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catalog import DEFAULT_ROOT, ensure_catalog  # noqa: E402
from bench.harness import Timer, add_report_args, load_settings, log, random_checkpoint, report  # noqa: E402
from bench.run import autocast  # noqa: E402

# (name, decode_workers, torch_threads, prefetch, batch, precision)
CPU_GRID = [
    ("1 worker, 2 threads (default)", 1, 2, 2, 64, "fp32"),
    ("1 worker, 1 thread", 1, 1, 2, 64, "fp32"),
    ("0 workers (decode inline), 2 threads", 0, 2, 2, 64, "fp32"),
    ("2 workers, 2 threads", 2, 2, 2, 64, "fp32"),
    ("1 worker, 2 threads, prefetch 4", 1, 2, 4, 64, "fp32"),
    ("1 worker, 2 threads, batch 32", 1, 2, 2, 32, "fp32"),
    ("1 worker, 2 threads, bf16 autocast", 1, 2, 2, 64, "bf16"),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", type=Path, default=Path("/tmp/vitb32-random.pt"))
    p.add_argument("--only", default="", help="comma list of grid row numbers (0-based)")
    add_report_args(p, "tune")
    args = p.parse_args()

    import torch

    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.inference.embedding import compute_embeddings

    root, order = ensure_catalog(DEFAULT_ROOT, args.images, 2000, log=log)
    files = [str(root / p) for p in order[: args.images]]
    random_checkpoint(args.checkpoint, "ViT-B-32")
    grid = CPU_GRID if not args.only else [CPU_GRID[int(i)] for i in args.only.split(",")]
    clips = {}
    for *_, precision in grid:
        if precision not in clips:
            cfg = load_settings(overrides={"clip.checkpoint": str(args.checkpoint), "clip.device": args.device,
                                     "clip.precision": precision})
            clips[precision] = load_clip(cfg.clip, cfg.paths.cache_path)
    max_pixels = 89_478_485
    fwd_keys = sorted({(t, b, prec) for _, _, t, _, b, prec in grid})
    fwd: dict = {k: [] for k in fwd_keys}
    emb: dict = {g[0]: [] for g in grid}
    first: dict = {g[0]: [] for g in grid}

    class FirstBatch:
        def __init__(self):
            self.t0, self.at = time.perf_counter(), None

        def update(self, n):
            if self.at is None:
                self.at = time.perf_counter() - self.t0

    for rnd in range(args.rounds):
        for threads, batch, precision in fwd_keys:
            clip = clips[precision]
            torch.set_num_threads(threads)
            x = torch.randn(batch, 3, clip.image_size, clip.image_size)
            with torch.inference_mode(), autocast(clip.device, precision):
                clip.model.encode_image(x)  # warm
                with Timer() as w:
                    for s in range(0, len(files), batch):
                        torch.nn.functional.normalize(clip.model.encode_image(x[: min(batch, len(files) - s)]).float(),
                                                      dim=-1).cpu()
            fwd[(threads, batch, precision)].append(len(files) / w.wall)
            log(f"round {rnd + 1}: forward threads={threads} batch={batch} {precision}: {len(files) / w.wall:.2f} img/s "
                f"(foreign {w.foreign_cores:.1f} cores)")
        for name, workers, threads, prefetch, batch, precision in grid:
            bar = FirstBatch()
            with Timer() as w:
                compute_embeddings(files, clips[precision], batch, workers, max_pixels, progress=bar,
                                   prefetch_batches=prefetch, torch_threads=threads, precision=precision)
            emb[name].append(len(files) / w.wall)
            first[name].append(bar.at)
            log(f"round {rnd + 1}: {name}: {len(files) / w.wall:.2f} img/s, first batch after {bar.at:.2f} s "
                f"(foreign {w.foreign_cores:.1f} cores)")

    rows = []
    print(f"\n{'setting':<40} {'embed img/s':>11} {'forward img/s':>13} {'ratio':>6} {'1st batch s':>11}")
    for name, workers, threads, prefetch, batch, precision in grid:
        e = statistics.median(emb[name])
        f = statistics.median(fwd[(threads, batch, precision)])
        ratios = [a / b for a, b in zip(emb[name], fwd[(threads, batch, precision)])]
        print(f"{name:<40} {e:>11.2f} {f:>13.2f} {statistics.median(ratios):>6.0%} {statistics.median(first[name]):>11.2f}")
        rows.append({"setting": name, "embed_img_s": round(e, 2), "forward_img_s": round(f, 2),
                     "ratio": round(statistics.median(ratios), 3), "first_batch_s": round(statistics.median(first[name]), 2)})
    report("tune", rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
