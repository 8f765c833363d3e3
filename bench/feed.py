"""Feeding the model (issue #21): what grows with the catalog, apart from what does not.

    python bench/feed.py [--sizes 400,2000] [--json bench/results/feed.json]   the runs (minutes)
    python bench/feed.py stages [--images 200] [--photos DIR]                  CPU per image, old and new paths
    python bench/feed.py fixed [--images 400]                                  fixed costs, both Prefect servers

`runs`: synthetic 800x1000 catalog JPEGs, attributes only (no LLM), the real CLI, fresh caches:
  forward_s   the bare forward over N images (400 distinct images preprocessed beforehand, not timed, cycled:
              the forward's cost does not depend on the pixels);
  run_s       `catalog-intel run` over N images, wall time of the whole command;
  marginal    (forward_s[big] - forward_s[small]) / (run_s[big] - run_s[small]): the model's share of each added
              image's cost (fixed costs cancel); target >= 0.85;
  fixed_s     run_s[small] - small * (run_s[big] - run_s[small]) / (big - small), the runs' intercept; and the
              summaries' own split (before the first shard, after the last); target <= 12 s;
  rerun_s     the big run again, same cache and output (nothing new): target <= 15 s;
  cpu_ms      CPU per decoded image of each stage, from the big run's summary; target: decode + colour +
              thumbnails ("outside") <= 3 ms.
`fixed`: one run over N images with the CLI's temporary Prefect server (target <= 12 s), one reporting to a server
already up (PREFECT_API_URL, as deployments do; target <= 6 s): the summary's time before the first shard and after
the last, and their sum.
`stages`: the same images through the old three decodes (model preprocess; pixel colour v1 at 256 px; report
thumbnails at 384 px) and through image_feed's one decode, CPU time per image of each, in this process.
Every figure carries the load (`foreign_cores`: cores other processes kept busy meanwhile): this machine is shared.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import (Timer, add_report_args, load_settings, prefect_server, random_checkpoint,  # noqa: E402
                           report, run_pipeline)

CHECKPOINT = Path(tempfile.gettempdir()) / "vitb32-random.pt"


def catalog(work: Path, size: int) -> Path:
    """work/catalog-N: the first N images of one deterministic catalog (hard links to one drawing)."""
    from catalog_intel.io.synthetic import write_catalog

    folder = work / f"catalog-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    for f in write_catalog(work / "drawn", size):
        if not (folder / f.name).exists():
            os.link(f, folder / f.name)
    return folder


def bare_forward(folder: Path, sizes: list[int]) -> dict:
    """{N: wall s, CPU s, load} of the model's forward over N images' pixels, batches as configured."""
    import torch

    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.io.images import load_rgb

    config = load_settings(overrides={"clip.checkpoint": str(CHECKPOINT)})
    clip = load_clip(config.clip, config.paths.cache_path)
    files = sorted(folder.glob("*.jpg"))[:400]
    pixels = torch.stack([clip.preprocess(load_rgb(str(f), config.run.max_image_pixels, clip.image_size))
                          for f in files])
    batch, out = config.clip.batch_size, {}
    with torch.inference_mode():
        clip.model.encode_image(pixels[:batch])  # warm-up
        for n in sizes:
            with Timer() as t:
                for i in range(0, n, batch):
                    clip.model.encode_image(pixels[torch.arange(i, min(i + batch, n)) % len(files)])
            out[n] = {"forward_s": round(t.wall, 2), "cpu_s": round(t.cpu, 2), "foreign_cores": round(t.foreign_cores, 2),
                      "load_avg": round(os.getloadavg()[0], 2)}
            print(f"bare forward {n}: {out[n]}", file=sys.stderr, flush=True)
    return out


def feed_fields(output: str) -> dict:
    """CPU per image and the fixed costs from a run's summary lines (absent: a summary without them)."""
    out: dict = {}
    cpu = re.findall(r"^.*CPU per image: (.*)$", output, re.M)
    if cpu:
        out["cpu_ms_per_image"] = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+) ms", cpu[-1])}
    fixed = re.findall(r"before the first shard ([\d.]+) s, after the last ([\d.]+) s", output)
    if fixed:
        out["fixed_s"] = {"before_first_shard": float(fixed[-1][0]), "after_last_shard": float(fixed[-1][1])}
    return out


def timed(source: Path, out: Path, cache: Path, repo: Path, env: dict | None = None) -> dict:
    load = round(os.getloadavg()[0], 2)
    run = run_pipeline(source, out, cache=cache, settings={"clip.checkpoint": str(CHECKPOINT)}, repo=repo,
                       label=out.name, env=env)
    return {"run_s": round(run.wall_s, 2), "cpu_s": round(run.cpu_s, 2), "flow_s": run.summary["seconds"],
            "load_avg": [load, round(os.getloadavg()[0], 2)], **feed_fields(run.output)}


def runs(args) -> dict:
    small, big = (int(s) for s in args.sizes.split(","))
    random_checkpoint(CHECKPOINT)
    work = Path(args.work)
    folders = {n: catalog(work, n) for n in (small, big)}
    tmp = Path(tempfile.mkdtemp(prefix="feed-runs-", dir=work))
    r = {n: timed(folders[n], tmp / f"out-{n}", tmp / f"cache-{n}", args.repo) for n in (small, big)}
    rerun = timed(folders[big], tmp / f"out-{big}", tmp / f"cache-{big}", args.repo)
    f = bare_forward(folders[big], [small, big])
    d_run = r[big]["run_s"] - r[small]["run_s"]
    return {"sizes": [small, big], "runs": r, "rerun": rerun, "forward": f,
            "marginal": round((f[big]["forward_s"] - f[small]["forward_s"]) / d_run, 3),
            "fixed_s": round(r[small]["run_s"] - small * d_run / (big - small), 2),
            "rerun_s": rerun["run_s"], "cpu_ms_per_image": r[big].get("cpu_ms_per_image")}


def fixed(args) -> dict:
    """Fixed costs of one N-image run, with the temporary server and with a server already up."""
    random_checkpoint(CHECKPOINT)
    work = Path(args.work)
    folder = catalog(work, args.images)
    tmp = Path(tempfile.mkdtemp(prefix="feed-fixed-", dir=work))
    out = {"images": args.images,
           "temporary_server": timed(folder, tmp / "out-temporary", tmp / "cache-temporary", args.repo)}
    with prefect_server() as url:
        out["running_server"] = timed(folder, tmp / "out-running", tmp / "cache-running", args.repo,
                                      env={"PREFECT_API_URL": url})
    for kind in ("temporary_server", "running_server"):
        split = out[kind].get("fixed_s") or {}
        out[kind]["fixed_total_s"] = round(sum(split.values()), 2) if split else None
    return out


def stages(args) -> dict:
    """CPU ms per image of the old path's three decodes and of image_feed's one, on the same images."""
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.inference.image_feed import FeedSpec, fast_preprocess_size, feed_image
    from catalog_intel.inference.pixel_color import dominant_color, prepare_color_tables
    from catalog_intel.io.images import load_rgb
    from catalog_intel.io.thumbnails import report_thumb_sizes
    from catalog_intel.report.render import _thumbnails

    import torch

    torch.set_num_threads(1)  # as in a decode worker (DataLoader workers run one thread each)
    random_checkpoint(CHECKPOINT)
    config = load_settings(overrides={"clip.checkpoint": str(CHECKPOINT)})
    clip = load_clip(config.clip, config.paths.cache_path)
    folder = Path(args.photos) if args.photos else catalog(Path(args.work), args.images)
    files = [str(p) for p in sorted(folder.glob("*.jpg"))[:args.images]]
    limit, vocab = config.run.max_image_pixels, list(config.attributes["color"].values)
    sizes = report_thumb_sizes(config)
    out_dir = Path(tempfile.mkdtemp(prefix="feed-thumbs-"))
    old = {
        "decode": lambda f: clip.preprocess(load_rgb(f, limit, clip.image_size)),
        "color": lambda f: dominant_color(load_rgb(f, limit, min_side=256), vocabulary=vocab),  # pixel-color-v1
        "thumbnails": lambda f: _thumbnails(f, [(out_dir / f"a{s}.jpg", s) for s in sizes], limit),
    }
    result: dict = {"images": len(files), "photos": str(folder) if args.photos else "synthetic 800x1000",
                    "before": {}, "after": {}}
    for stage, fn in old.items():
        with Timer() as t:
            for f in files:
                fn(f)
        result["before"][stage] = round(1000 * t.cpu / len(files), 2)
        result["before"].setdefault("foreign_cores", []).append(round(t.foreign_cores, 2))
    spec = FeedSpec(limit, sizes, tuple(vocab))
    size = fast_preprocess_size(clip.preprocess)
    prepare_color_tables()  # as compute_embeddings does before its decode workers start
    totals = dict.fromkeys(("decode", "color", "thumbnails"), 0.0)
    with Timer() as t:
        for f in files:
            for stage, seconds in feed_image(f, clip.preprocess, size, clip.image_size, spec).cpu.items():
                totals[stage] += seconds
    result["after"] = {stage: round(1000 * s / len(files), 2) for stage, s in totals.items()}
    result["after"]["foreign_cores"] = [round(t.foreign_cores, 2)]
    for side in ("before", "after"):
        result[side]["outside"] = round(sum(result[side][s] for s in ("decode", "color", "thumbnails")), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=("runs", "stages", "fixed"), default="runs")
    parser.add_argument("--sizes", default="400,2000")
    parser.add_argument("--images", type=int, default=None, help="stages: images to time (200); fixed: run size (400)")
    parser.add_argument("--photos", default=None, help="stages: time these JPEGs (a folder) instead of synthetic ones")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "catalog-intel-feed"))
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                        help="runs: the checkout whose code runs (e.g. a worktree of an older commit)")
    add_report_args(parser, "feed")
    args = parser.parse_args()
    started = time.monotonic()
    args.images = args.images or {"stages": 200, "fixed": 400}.get(args.what)
    figures = {"runs": runs, "stages": stages, "fixed": fixed}[args.what](args)
    figures["bench_s"] = round(time.monotonic() - started, 1)
    report("feed", figures, args.json, section=args.what)


if __name__ == "__main__":
    main()
