#!/usr/bin/env python
"""Throughput benchmark: every pipeline stage against its ceiling, measured in the same run.

    python bench/run.py --images 2000 [--device cpu|cuda] [--json bench/results/run.json]

Stages (items/s, and the ratio to the stage's ceiling):

  decode+preprocess   one process, without and with JPEG draft; in the pipeline's decode
                      workers (ceiling: workers x one process)
  model forward       random input at the pipeline's batch size (the embed stage's ceiling)
  embed               compute_embeddings per shard, as the flow runs it (ceiling: forward)
  zero-shot           catalog_intel.inference.zeroshot.classify on N x D embeddings (ceiling: the bare
                      matmul + softmax)
  store write/read    ParquetStore append per shard / lookup (ceiling: plain polars Parquet IO)
  hash                ingest's sha256 per file, warm and cold page cache, and the stat-keyed
                      hash cache (ceiling: reading the bytes)
  Prefect             per-task overhead of a no-op task

Flow runs, each `catalog-intel run` in a child process through the harness (bench/harness.py):
  peak RSS at N and 10N images (fresh caches), and a cached re-run over --rerun-images
  (wall time of the flow and of the whole command, model forwards run).

The synthetic catalog is generated once and cached (bench/catalog.py). The machine's
other load is recorded: "foreign CPU" is the CPU time of processes outside this
benchmark, in cores, while it ran. LLM copy rates: bench/llm_copy.py concurrency.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's catalog_intel, not an installed one
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from bench.catalog import DEFAULT_ROOT, ensure_catalog, ensure_manifest, mean_file_kb  # noqa: E402
from bench.harness import (Timer, add_report_args, log, machine, prefect_server, random_checkpoint,  # noqa: E402
                           run_pipeline)
from bench.harness import report as write_report  # noqa: E402

MB = 1024 * 1024
STAGES = ("decode", "forward", "embed", "classify", "store", "hash", "prefect", "rerun", "rss")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Report:
    def __init__(self):
        self.rows: list[dict] = []
        self.extra: dict = {}

    def add(self, stage, rate, unit, ceiling=None, ceiling_rate=None, note="", window: Timer | None = None, **more):
        row = {"stage": stage, "rate": rate, "unit": unit, "ceiling": ceiling, "ceiling_rate": ceiling_rate,
               "ratio": (rate / ceiling_rate) if (rate is not None and ceiling_rate) else None, "note": note}
        if window is not None:
            row["wall_s"] = round(window.wall, 2)
            row["foreign_cores"] = round(window.foreign_cores, 2)
        row.update(more)
        self.rows.append(row)
        log(f"  {stage}: {_fmt(rate)} {unit}" + (f"  ({row['ratio']:.0%} of {ceiling})" if row["ratio"] else "")
            + (f"  [{note}]" if note else ""))
        return row

    def table(self) -> str:
        lines = [f"{'stage':<34} {'rate':>10} {'unit':<11} {'ceiling':<30} {'ceiling rate':>12} {'ratio':>6}  note",
                 "-" * 130]
        for r in self.rows:
            lines.append(f"{r['stage']:<34} {_fmt(r['rate']):>10} {r['unit']:<11} {str(r['ceiling'] or ''):<30} "
                         f"{_fmt(r['ceiling_rate']):>12} {(format(r['ratio'], '.0%') if r['ratio'] else ''):>6}  "
                         f"{r['note']}")
        return "\n".join(lines)


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


# ----------------------------------------------------------------------------- setup


def make_config(args, cache_dir: Path):
    from bench.harness import load_settings

    return load_settings(overrides={**flow_settings(args), "paths.cache_dir": str(cache_dir)})


def embed_kwargs(args) -> dict:
    """compute_embeddings' tuning keywords, where this checkout has them."""
    from catalog_intel.inference.embedding import compute_embeddings

    params = inspect.signature(compute_embeddings).parameters
    wanted = {"prefetch_batches": args.prefetch, "torch_threads": args.torch_threads,
              "precision": args.precision, "gpu_decode": args.gpu_decode}
    return {k: v for k, v in wanted.items() if k in params}


# ----------------------------------------------------------------------------- stages


def bench_decode(report: Report, clip, files: list[str], args, max_pixels: int) -> None:
    from catalog_intel.inference.embedding import _collate, _DecodedImages
    from catalog_intel.io.images import load_rgb

    files = files[: args.decode_images]
    size = clip.image_size
    # Without and with draft alternate in chunks, so that bursts of other load on the
    # machine hit both alike; each reports the median chunk rate.
    chunk = 50
    chunk_rates: dict = {"no draft": [], "draft": []}
    windows = []
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a decode worker (the preprocess runs torch ops)
    for start in range(0, len(files), chunk):
        part = files[start:start + chunk]
        for label, min_side in (("no draft", None), ("draft", size)):
            with Timer() as w:
                for p in part:
                    clip.preprocess(load_rgb(p, max_pixels, min_side))
            chunk_rates[label].append(len(part) / w.wall)
            windows.append(w)
    torch.set_num_threads(threads)
    rates = {k: float(np.median(v)) for k, v in chunk_rates.items()}
    foreign = round(sum(w.foreign_cores * w.wall for w in windows) / sum(w.wall for w in windows), 2)
    img = load_rgb(files[0], max_pixels, size)
    report.add("decode+preprocess, 1 proc, no draft", rates["no draft"], "img/s", foreign_cores=foreign,
               note=f"median of {len(chunk_rates['draft'])} chunks of {chunk}; full 800x1000 decode")
    report.add("decode+preprocess, 1 proc, draft", rates["draft"], "img/s", foreign_cores=foreign,
               note=f"draft decodes at {img.size[0]}x{img.size[1]}; gain x{rates['draft'] / rates['no draft']:.2f}")
    if args.decode_workers > 0:
        import torch
        from torch.utils.data import DataLoader

        from catalog_intel.inference.image_feed import FeedSpec

        loader_kwargs = dict(batch_size=args.batch_size, num_workers=args.decode_workers, collate_fn=_collate)
        with Timer() as w:  # the model's pixels only (the embed stage's CPU row adds colour and thumbnails)
            for _ in DataLoader(_DecodedImages(files, clip.preprocess, size, FeedSpec(max_pixels)), **loader_kwargs):
                pass
        cores = min(args.decode_workers, os.cpu_count() or 1)
        report.add(f"decode+preprocess, {args.decode_workers} workers", len(files) / w.wall, "img/s",
                   f"{cores} x 1-proc draft", cores * rates["draft"], window=w, note="DataLoader, no model")
        if str(clip.device).startswith("cuda"):
            from catalog_intel.inference.embedding import _decode_raw_batch, resolve_gpu_decode

            if resolve_gpu_decode("on", clip.device, clip.preprocess):
                reasons = [""] * len(files)
                ds = _DecodedImages(files, clip.preprocess, size, FeedSpec(max_pixels), raw_jpeg=True)
                with Timer() as w:
                    for _, _, _, _, raw, _ in DataLoader(ds, pin_memory=True, **loader_kwargs):
                        if raw is not None:
                            _decode_raw_batch(raw, clip, max_pixels, reasons)
                    torch.cuda.synchronize()
                report.add(f"decode+preprocess, nvjpeg ({args.decode_workers} readers)", len(files) / w.wall,
                           "img/s", window=w, note="GPU decode + GPU resize, no model")


def autocast(device: str, precision: str):
    """The pipeline's autocast for this precision (tune.py uses it too)."""
    from catalog_intel.inference.embedding import _autocast

    return _autocast(device, precision)


def _forward_batches(clip, n_images: int, args, x=None):
    """The pipeline's forward (same batch size, precision, normalise, copy back) on
    `x`, one batch reused (default: random input), for n_images images."""
    import torch

    if x is None:
        x = torch.randn(args.batch_size, 3, clip.image_size, clip.image_size)
    if str(clip.device).startswith("cuda"):
        x = x.pin_memory()
    done = 0
    with torch.inference_mode(), autocast(clip.device, args.precision):
        while done < n_images:
            n = min(len(x), n_images - done)
            feats = clip.model.encode_image(x[:n].to(clip.device, non_blocking=True))
            torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()
            done += n


def _pixels(clip, files: list[str], n: int, max_pixels: int):
    import torch

    from catalog_intel.io.images import load_rgb

    return torch.stack([clip.preprocess(load_rgb(p, max_pixels, clip.image_size)) for p in files[:n]])


def bench_forward_and_embed(report: Report, clip, files: list[str], args, max_pixels: int, skip: set) -> None:
    """Interleaved per shard: the model forward alone, on random input and on the
    shard's own pixels decoded beforehand (same batch size, same count), then
    compute_embeddings on the shard's files; so a change in the machine's other
    load hits all three alike. The embed stage's ceiling is the faster forward."""
    import torch

    from catalog_intel.inference.embedding import compute_embeddings

    with torch.inference_mode(), autocast(clip.device, args.precision):  # warm-up: allocator, kernels
        clip.model.encode_image(torch.randn(args.batch_size, 3, clip.image_size, clip.image_size).to(clip.device))
    files = files[: args.embed_images]
    kwargs = embed_kwargs(args)
    has_timings = "timings" in inspect.signature(compute_embeddings).parameters
    if "feed" in inspect.signature(compute_embeddings).parameters:  # colour and thumbnails too, as a run makes them
        from catalog_intel.settings import load_config
        from catalog_intel.pipeline.shard import feed_spec

        kwargs["feed"] = feed_spec(load_config())
    cpu: dict = {}
    decoded = 0
    spent = {"random": 0.0, "pixels": 0.0, "embed": 0.0}
    windows: dict = {"random": [], "pixels": [], "embed": []}
    rejected, per_shard, waits = 0, [], []
    for start in range(0, len(files), args.shard_size):
        shard = files[start:start + args.shard_size]
        rates = {}
        if "forward" not in skip:
            x = _pixels(clip, shard, args.batch_size, max_pixels)
            for kind, inp in (("random", None), ("pixels", x)):
                with Timer() as w:
                    _forward_batches(clip, len(shard), args, inp)
                spent[kind] += w.wall
                windows[kind].append(w)
                rates[kind] = len(shard) / w.wall
        if "embed" not in skip:
            timings: dict = {}
            with Timer() as w:
                _, reasons = compute_embeddings(shard, clip, args.batch_size, args.decode_workers, max_pixels,
                                                **kwargs, **({"timings": timings} if has_timings else {}))
            spent["embed"] += w.wall
            windows["embed"].append(w)
            waits.append(timings.get("wait_s"))
            for stage, seconds in timings.get("cpu_s", {}).items():
                cpu[stage] = cpu.get(stage, 0.0) + seconds
            decoded += timings.get("images", 0)
            rejected += sum(1 for r in reasons if r)
            rates["embed"] = len(shard) / w.wall
        if "embed" in rates and "random" in rates:
            per_shard.append(round(rates["embed"] / max(rates["random"], rates["pixels"]), 3))
        log(f"    shard {start // args.shard_size + 1}: " + ", ".join(f"{k} {v:.1f} img/s" for k, v in rates.items()))

    def foreign(kind):
        return round(sum(w.foreign_cores * w.wall for w in windows[kind]) / spent[kind], 2) if spent[kind] else None

    shape = f"batch {args.batch_size}, {args.precision}, threads {args.torch_threads or 'default'}"
    fwd = {k: len(files) / spent[k] for k in ("random", "pixels") if spent[k]}
    if fwd:
        report.add("model forward alone, random input", fwd["random"], "img/s", note=shape,
                   foreign_cores=foreign("random"), wall_s=round(spent["random"], 1))
        report.add("model forward alone, real pixels", fwd["pixels"], "img/s",
                   note=f"one decoded batch of the shard, reused; x{fwd['pixels'] / fwd['random']:.2f} vs random",
                   foreign_cores=foreign("pixels"), wall_s=round(spent["pixels"], 1))
    if spent["embed"]:
        ceiling = max(fwd.values()) if fwd else None
        waited = sum(x for x in waits if x is not None) if has_timings else None
        wait_note = f"; the model waited for decoding {waited / spent['embed']:.1%} of the time" if has_timings else ""
        report.add("embed (compute_embeddings)", len(files) / spent["embed"], "img/s", "model forward alone (faster)",
                   ceiling, note=f"{len(files)} files in shards of {args.shard_size}; {args.decode_workers} decode "
                                 f"workers, prefetch {args.prefetch}; {rejected} rejected{wait_note}",
                   foreign_cores=foreign("embed"), wall_s=round(spent["embed"], 1), per_shard_ratio=per_shard,
                   median_shard_ratio=float(np.median(per_shard)) if per_shard else None,
                   decode_wait_share=round(waited / spent["embed"], 4) if has_timings else None)
    if decoded:
        per = {stage: round(1000 * seconds / decoded, 2) for stage, seconds in cpu.items()}
        outside = sum(per.get(s, 0.0) for s in ("decode", "color", "thumbnails"))
        report.add("CPU outside the model (decode + colour + thumbnails)", outside, "ms/img",
                   note="per decoded image: " + ", ".join(f"{k} {v} ms" for k, v in per.items())
                        + f"; {os.cpu_count()} cores feed about {1000 / outside * max(1, (os.cpu_count() or 2) - 1):.0f}"
                          " img/s with cores - 1 decode workers", cpu_ms_per_image=per)


def bench_classify(report: Report, clip, config, n: int) -> None:
    from catalog_intel.schemas import ATTRIBUTE_ORDER
    from catalog_intel.inference.zeroshot import classify, encode_label_texts

    labels = encode_label_texts(clip, config.attributes)
    dim = len(labels["embedding"][0])
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    frame = pl.DataFrame({"sha256": [f"{i:064x}" for i in range(n)],
                          "embedding": pl.Series(vectors, dtype=pl.Array(pl.Float32, dim))})
    best = best_bare = float("inf")
    for _ in range(3):
        with Timer() as w:
            classify(frame, labels, config.attributes)
        best = min(best, w.wall)
        with Timer() as wb:  # the arithmetic alone: one matmul + softmax per attribute
            images = frame["embedding"].to_numpy()
            scale = float(labels["logit_scale"][0])
            for name in ATTRIBUTE_ORDER:
                text = labels.filter(pl.col("attribute") == name)["embedding"].to_numpy()
                logits = scale * images @ text.T
                logits -= logits.max(axis=1, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(axis=1, keepdims=True)
                np.argmax(p, axis=1)
        best_bare = min(best_bare, wb.wall)
    report.add("zero-shot classify", n / best, "rows/s", "matmul+softmax alone", n / best_bare,
               note=f"{n} x {dim} embeddings, {labels.height} labels; best of 3", window=w)


def bench_store(report: Report, n: int, dim: int, shard: int, workdir: Path) -> None:
    from catalog_intel.inference.embedding import embeddings_frame
    from catalog_intel.io.parquet_store import ParquetStore

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    shas = [f"{i:064x}" for i in range(n)]
    frame = embeddings_frame(shas, vectors, "bench-model")
    folder = workdir / "store"
    shutil.rmtree(folder, ignore_errors=True)
    store = ParquetStore(folder, key="sha256")
    with Timer() as w:
        for s in range(0, n, shard):
            store.append(frame.slice(s, shard))
    raw = workdir / "raw.parquet"
    with Timer() as wr:
        frame.write_parquet(raw, compression="zstd")
    report.add("store write (append per shard)", n / w.wall, "rows/s", "one write_parquet, no fsync", n / wr.wall,
               window=w, note=f"{n} x {dim} float32, {-(-n // shard)} parts, atomic + fsync each")
    with Timer() as w:
        got = store.lookup(shas)
    assert got is not None and got.height == n
    parts = sorted(str(p) for p in folder.glob("part-*.parquet"))
    with Timer() as wr:
        pl.read_parquet(parts)
    report.add("store read (lookup all keys)", n / w.wall, "rows/s", "read_parquet of all parts", n / wr.wall,
               window=w, note="semi-join + unique")
    # As the flow does it: one lookup per shard, each over all parts.
    with Timer() as w:
        for s in range(0, n, shard):
            store.lookup(shas[s:s + shard])
    report.add("store read (lookup per shard)", n / w.wall, "rows/s", "read_parquet of all parts", n / wr.wall,
               window=w, note=f"{-(-n // shard)} lookups of {shard}")


def _evict(paths: list[str]) -> bool:
    """Drop these files from the page cache (ours only; no root needed)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def bench_hash(report: Report, files: list[str], workdir: Path) -> None:
    from catalog_intel.io import filesystem
    from catalog_intel.io.hash_cache import FileHashCache

    total_mb = sum(os.path.getsize(p) for p in files) / MB
    for p in files:  # warm the page cache
        filesystem.read_bytes(p)
    with Timer() as wr:
        for p in files:
            filesystem.read_bytes(p)
    with Timer() as w:
        for p in files:
            filesystem.sha256_file(p)
    report.add("hash (sha256), warm cache", len(files) / w.wall, "files/s", "read bytes alone", len(files) / wr.wall,
               window=w, note=f"{total_mb / w.wall:,.0f} MB/s; {len(files)} files, {total_mb:,.0f} MB")
    if _evict(files):
        with Timer() as w:
            for p in files:
                filesystem.sha256_file(p)
        report.add("hash (sha256), cold cache", len(files) / w.wall, "files/s", window=w,
                   note=f"{total_mb / w.wall:,.0f} MB/s; pages evicted with posix_fadvise")
    if FileHashCache:  # older checkouts had no hash cache
        from catalog_intel.io.ingest import hash_paths

        with Timer() as w:
            hash_paths(files, None)
        report.add(f"hash (sha256), warm cache, {min(4, os.cpu_count() or 1)} threads", len(files) / w.wall,
                   "files/s", window=w, note=f"{total_mb / w.wall:,.0f} MB/s; as ingest does it now")
        cache = FileHashCache(workdir / "hash-cache")
        hash_paths(files, cache)  # fills it
        cache = FileHashCache(workdir / "hash-cache")
        with Timer() as w:
            hash_paths(files, cache)
        stats = {"cached": cache.hits, "hashed": len(files) - cache.hits}
        warm = next(r["rate"] for r in report.rows if r["stage"] == "hash (sha256), warm cache")
        report.add("hash cache hit (stat + lookup)", len(files) / w.wall, "files/s", window=w,
                   note=f"{stats['hashed']} rehashed, {stats['cached']} from cache; "
                        f"x{len(files) / w.wall / warm:.0f} vs sha256 warm")


def bench_prefect(report: Report, n_tasks: int = 40) -> None:
    from prefect import flow, task

    from catalog_intel.orchestration.tasks import TASK_DEFAULTS

    @task(name="bench-noop", **TASK_DEFAULTS)
    def noop(frame: pl.DataFrame) -> int:
        return frame.height

    @flow(name="bench-task-overhead")
    def overhead(n: int) -> tuple[float, float]:
        frame = pl.DataFrame({"sha256": [f"{i:064x}" for i in range(512)]})
        noop(frame)  # first call pays imports
        t0 = time.perf_counter()
        for _ in range(n):
            noop(frame)
        t1 = time.perf_counter()
        for _ in range(n):
            noop.fn(frame)
        return t1 - t0, time.perf_counter() - t1

    with Timer() as w:
        tasked, plain = overhead(n_tasks)
    per_task_ms = (tasked - plain) / n_tasks * 1000
    report.add("Prefect task overhead", per_task_ms, "ms/task", window=w,
               note=f"{n_tasks} no-op tasks with a 512-row frame; flow incl. temp server {w.wall:.1f} s")
    report.extra["prefect_task_overhead_ms"] = round(per_task_ms, 1)


# ----------------------------------------------------------------------------- flow runs (subprocesses)


def flow_settings(args) -> dict:
    return {"clip.model": args.model, "clip.checkpoint": str(args.checkpoint), "clip.device": args.device,
            "clip.batch_size": args.batch_size, "clip.decode_workers": args.decode_workers,
            "clip.prefetch_batches": args.prefetch, "clip.torch_threads": args.torch_threads,
            "clip.precision": args.precision, "clip.gpu_decode": args.gpu_decode, "run.shard_size": args.shard_size}


def run_flow(source: Path, out: Path, cache: Path, args, env: dict | None = None, label: str = "") -> dict:
    run = run_pipeline(source, out, cache=cache, settings=flow_settings(args), label=label,
                       env={"PREFECT_HOME": str(args.prefect_home), **(env or {})})
    return {**run.figures(), "images": run.summary["inputs"], "flow_s": run.summary["seconds"],
            "command_wall_s": round(run.wall_s, 2), "embeddings_computed": run.summary["embeddings_computed"]}


def bench_flows(report: Report, args, root: Path, order: list[str], skip: set, workdir: Path) -> None:
    out_root = workdir / "flow-out"
    flows: dict = {}
    report.extra["flows"] = flows
    if "rss" not in skip and args.rss_factor > 0:
        for n in (args.images, args.images * args.rss_factor):
            manifest = ensure_manifest(root, order, n)
            cache = workdir / f"flow-cache-{n}"
            shutil.rmtree(cache, ignore_errors=True)  # fresh: the run embeds every image
            flows[f"rss_{n}"] = run_flow(manifest, out_root / f"rss-{n}", cache, args,
                                         label=f"peak RSS, {n} images, fresh cache")
        small, big = flows[f"rss_{args.images}"], flows[f"rss_{args.images * args.rss_factor}"]
        report.add(f"peak RSS, {big['images']} vs {small['images']} images", big["peak_rss_mb"] / small["peak_rss_mb"],
                   "x", note=f"{small['peak_rss_mb']:.0f} MB -> {big['peak_rss_mb']:.0f} MB (largest process of the run)")
    if "rerun" not in skip:
        n = args.rerun_images
        manifest = ensure_manifest(root, order, n)
        reuse = [k for k in flows if k.startswith("rss_") and flows[k]["images"] >= n]
        cache = workdir / (f"flow-cache-{flows[reuse[-1]]['images']}" if reuse else f"flow-cache-rerun-{n}")
        out = out_root / f"rerun-{n}"
        first = run_flow(manifest, out, cache, args, label=f"re-run {n}: first run")
        again = run_flow(manifest, out, cache, args, label=f"re-run {n}: cached")
        flows["rerun_first"], flows["rerun"] = first, again
        report.add(f"cached re-run, {n} images: flow", again["flow_s"], "s",
                   note=f"{again['embeddings_computed']} model forwards (embeddings computed)")
        report.add(f"cached re-run, {n} images: command", again["command_wall_s"], "s",
                   note="whole CLI command incl. interpreter, imports, Prefect temporary server start/stop")
        if args.prefect_server:
            with prefect_server() as api_url:
                served = run_flow(manifest, out, cache, args, env={"PREFECT_API_URL": api_url},
                                  label=f"re-run {n}: cached, PREFECT_API_URL set")
            flows["rerun_api_url"] = served
            report.add(f"cached re-run, {n} images: command, running server", served["command_wall_s"], "s",
                       note="PREFECT_API_URL to a Prefect server already up (no server start in the run)")


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000, help="catalog size N for the stage measurements and RSS (default 2000)")
    p.add_argument("--drawn", type=int, default=2000, help="distinct drawn images; the rest are byte-distinct copies")
    p.add_argument("--catalog-dir", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--checkpoint", type=Path, default=Path("/tmp/vitb32-random.pt"),
                   help="open_clip weights (random ViT-B-32 weights are written here if missing)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--decode-workers", type=int, default=1)
    p.add_argument("--prefetch", type=int, default=2, help="batches each decode worker keeps ready")
    p.add_argument("--torch-threads", type=int, default=0, help="intra-op threads of the CPU forward (0 = default)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--gpu-decode", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--shard-size", type=int, default=512)
    p.add_argument("--embed-images", type=int, default=None, help="images for the forward/embed stages (default N)")
    p.add_argument("--decode-images", type=int, default=1000)
    p.add_argument("--classify-rows", type=int, default=None, help="default max(N, 10000)")
    p.add_argument("--rerun-images", type=int, default=10000)
    p.add_argument("--rss-factor", type=int, default=10, help="peak RSS at N and this x N images (0 = skip)")
    p.add_argument("--prefect-server", action="store_true",
                   help="also time the cached re-run against a running `prefect server start` (PREFECT_API_URL)")
    p.add_argument("--prefect-home", type=Path, default=Path(os.path.expanduser("~/.cache/catalog-intel/bench-prefect-home")))
    p.add_argument("--skip", default="", help=f"comma list of stages to skip: {', '.join(STAGES)}")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    add_report_args(p, "run")
    args = p.parse_args(argv)
    args.embed_images = args.embed_images or args.images
    args.classify_rows = args.classify_rows or max(args.images, 10000)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(STAGES) - {"llm"}  # llm: now bench/llm_copy.py concurrency; gpu.sh still names it
    if unknown:
        p.error(f"unknown stages in --skip: {sorted(unknown)}")
    return args, skip


def main(argv=None) -> int:
    args, skip = parse_args(argv)
    started = time.perf_counter()
    import torch

    from catalog_intel.inference.clip_model import load_clip

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    args.prefect_home.mkdir(parents=True, exist_ok=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="catalog-intel-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = Report()
    results: dict = {}
    log(f"machine: {machine()}")

    need = max([args.images, args.embed_images]
               + ([args.images * args.rss_factor] if "rss" not in skip and args.rss_factor else [])
               + ([args.rerun_images] if "rerun" not in skip else []))
    root, order = ensure_catalog(args.catalog_dir, need, args.drawn, log=log)
    files = [str(root / p) for p in order[: args.images]]
    results["catalog"] = {"root": str(root), "images": need, "drawn": min(args.drawn, need),
                          "mean_file_kb": round(mean_file_kb(root, order[:need]), 1), "size": "800x1000"}
    log(f"catalog: {results['catalog']}")

    random_checkpoint(args.checkpoint, args.model)
    config = make_config(args, workdir / "cache")
    with Timer() as w:
        clip = load_clip(config.clip, config.paths.cache_path)
    log(f"model {clip.model_id} on {clip.device} loaded in {w.wall:.1f} s; torch threads {torch.get_num_threads()}")
    results["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results["config"]["torch_threads_effective"] = torch.get_num_threads()

    if "decode" not in skip:
        log("decode + preprocess ...")
        bench_decode(report, clip, files, args, config.run.max_image_pixels)
    if not {"forward", "embed"} <= skip:
        log("model forward vs embed stage (interleaved per shard) ...")
        bench_forward_and_embed(report, clip, files, args, config.run.max_image_pixels, skip)
    if "classify" not in skip:
        log("zero-shot classify ...")
        bench_classify(report, clip, config, args.classify_rows)
    dim = int(clip.model.text_projection.shape[1])
    del clip
    gc.collect()
    if "store" not in skip:
        log("embedding store ...")
        bench_store(report, max(args.images, 10000), dim, args.shard_size, workdir)
    if "hash" not in skip:
        log("hashing ...")
        bench_hash(report, files, workdir)
    results["bench_peak_rss_mb"] = round(peak_rss_mb(), 1)
    if "prefect" not in skip:
        log("Prefect per-task overhead ...")
        os.environ.setdefault("PREFECT_HOME", str(args.prefect_home))
        bench_prefect(report)
    if not {"rss", "rerun"} <= skip:
        log("flow runs (subprocesses) ...")
        bench_flows(report, args, root, order, skip, workdir)

    results["stages"] = report.rows
    results.update(report.extra)
    results["targets"] = targets(report, args)
    results["total_s"] = round(time.perf_counter() - started, 1)
    print(report.table())
    print()
    for name, t in results["targets"].items():
        print(f"{'PASS' if t['pass'] else 'MISS' if t['pass'] is False else 'n/a '}  {name}: {t['value']}")
    print(f"\npeak RSS of this benchmark process: {results['bench_peak_rss_mb']:.0f} MB; total {results['total_s']:.0f} s")
    write_report("run", results, args.json)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def targets(report: Report, args) -> dict:
    rows = {r["stage"]: r for r in report.rows}
    out = {}
    embed = rows.get("embed (compute_embeddings)")
    if embed and embed["ratio"]:
        extra = []
        if embed.get("median_shard_ratio"):
            extra.append(f"median per shard {embed['median_shard_ratio']:.1%}")
        if embed.get("decode_wait_share") is not None:
            extra.append(f"model waited for decoding {embed['decode_wait_share']:.1%} of the time")
        extra.append(f"other load on the machine {embed.get('foreign_cores', 0):.1f} cores")
        out["embed >= 85% of model forward"] = {"value": f"{embed['ratio']:.1%} ({'; '.join(extra)})",
                                                "pass": embed["ratio"] >= 0.85}
    flows = report.extra.get("flows", {})
    if "rerun" in flows:
        r = flows["rerun"]
        out[f"cached re-run of {r['images']} images <= 20 s, no model forward"] = {
            "value": f"flow {r['flow_s']:.1f} s, command {r['command_wall_s']:.1f} s, "
                     f"{r['embeddings_computed']} forwards",
            "pass": r["flow_s"] <= 20 and r["embeddings_computed"] == 0,
            "command_pass": r["command_wall_s"] <= 20}
        if "rerun_api_url" in flows:
            out[f"cached re-run of {r['images']} images <= 20 s, no model forward"]["value"] += (
                f"; command with a running Prefect server {flows['rerun_api_url']['command_wall_s']:.1f} s")
    big = [k for k in flows if k.startswith("rss_")]
    if len(big) == 2:
        small, large = flows[big[0]], flows[big[1]]
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        out[f"peak RSS at {large['images']} <= 1.5 x at {small['images']}"] = {
            "value": f"x{ratio:.2f} ({small['peak_rss_mb']:.0f} -> {large['peak_rss_mb']:.0f} MB)",
            "pass": ratio <= 1.5}
    return out


if __name__ == "__main__":
    sys.exit(main())
