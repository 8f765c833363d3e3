"""One shard as the unit of work: embed -> pixel colour -> classify for a small,
serialisable shard spec, and one pure reduce over the shards' results.

A shard runs wherever the task runner puts it (the flow's process, a Dask worker
on another machine): it takes resolved settings and builds its resources (CLIP,
stores) from them, once per process."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field

import polars as pl

from catalog_intel.inference.clip_model import load_clip
from catalog_intel.inference.color_fusion import PIXEL_ALGORITHM, PIXEL_SCHEMA, fuse_color, pixel_colors
from catalog_intel.inference.embedding import compute_embeddings, embedding_store, embeddings_frame
from catalog_intel.inference.heads import heads_for_shard
from catalog_intel.inference.image_feed import Fed, FeedSpec
from catalog_intel.inference.zeroshot import classify
from catalog_intel.io.layout import CacheLayout
from catalog_intel.io.parquet_store import ParquetStore
from catalog_intel.io.thumbnails import report_thumb_sizes, thumbnail_store, thumbnails_frame
from catalog_intel.pipeline.assemble import split_decoded
from catalog_intel.settings import Config

STATUS_SCHEMA = {"sha256": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8}


@dataclass(frozen=True, eq=False)
class ShardSpec:
    """What a worker needs to find one shard's images: [sha256, path]. A frame, not tuples of
    strings: Prefect walks a task's parameters for futures element by element (130 ms for a
    shard of 8,192 images, more than a cached shard's own work) and does not look inside a frame."""
    no: int
    images: pl.DataFrame

    def frame(self) -> pl.DataFrame:
        return self.images


@dataclass
class ShardResult:
    no: int
    status: pl.DataFrame               # [sha256, status (cached | computed | rejected), reason]
    attributes: pl.DataFrame | None    # classified attributes of the shard's decoded images
    worker: str
    seconds: float
    cpu: dict = field(default_factory=dict)  # stage -> CPU seconds (image_feed.STAGES, normalize, model)
    decoded: int = 0                         # images decoded (the cpu figures are theirs)
    started: float = 0.0                     # wall clock (time.time) at the shard's start and end
    ended: float = 0.0


@dataclass
class Enriched:
    """All shards reduced: one status and one attribute row per sha256."""
    status: pl.DataFrame
    decoded: pl.DataFrame              # inventory rows whose image decoded
    rejected: pl.DataFrame             # [image, reason] for those that did not
    attributes: pl.DataFrame | None
    shards_by_worker: dict[str, list[int]] = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)  # stage -> CPU seconds, summed over the shards
    images_decoded: int = 0            # images decoded this run (the cpu figures are theirs)
    first_started: float | None = None
    last_ended: float | None = None


def shard_specs(inventory: pl.DataFrame, size: int) -> list[ShardSpec]:
    """Contiguous slices of at most `size` rows (deterministic: inventory order)."""
    return [ShardSpec(no=n, images=part)
            for n, part in enumerate(inventory.select("sha256", "path").iter_slices(size), 1)]


def worker_name() -> str:
    """The Dask worker's address, or host:pid outside Dask."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def pixel_color_store(config: Config) -> ParquetStore:
    return ParquetStore(CacheLayout(config.paths.cache_dir).pixel_color(PIXEL_ALGORITHM), key="sha256")


def feed_spec(config: Config) -> FeedSpec:
    """What each decode makes besides the model's pixels: the pixel colour (unless colour is CLIP's
    alone) and the report's thumbnails."""
    vocabulary = tuple(config.attributes["color"].values) if config.color.policy != "clip" else None
    return FeedSpec(config.run.max_image_pixels, report_thumb_sizes(config), vocabulary)


def pixel_color_frame(shard: pl.DataFrame, config: Config, fresh: dict[str, tuple | None] | None = None
                      ) -> pl.DataFrame:
    """Dominant garment colour from the pixels for shard[sha256, path] (cached by content).
    `fresh`: sha256 -> (name, confidence) | None from this run's decodes; the rest come from the
    store, and only what neither has is decoded (again) here."""
    store = pixel_color_store(config)
    fresh = fresh or {}
    unique = shard.unique(subset="sha256", keep="first", maintain_order=True)
    have = store.lookup([s for s in unique["sha256"].to_list() if s not in fresh])
    known = set(fresh) | (set() if have is None else set(have["sha256"].to_list()))
    todo = unique.filter(~pl.col("sha256").is_in(list(known)))
    decoded = pl.DataFrame([(sha, *(c or (None, None))) for sha, c in fresh.items()], schema=PIXEL_SCHEMA,
                           orient="row")
    if todo.height:
        decoded = pl.concat([decoded, pixel_colors(todo, config)])
    store.append(decoded.filter(pl.col("color_pixels").is_not_null()))
    parts = [decoded] if have is None else [have.select(PIXEL_SCHEMA.keys()), decoded]
    return pl.concat(parts)


def embed_frame(shard: pl.DataFrame, config: Config, model_id: str, no: int, log: logging.Logger, store: ParquetStore,
                fed: dict[str, Fed] | None = None, timings: dict | None = None) -> pl.DataFrame:
    """Make sure every image of shard[sha256, path] has an embedding in the store ->
    [sha256, status, reason]. Content seen before (any run, any name) is not embedded again.
    `fed` gets sha256 -> the rest of each decode's work (colour, thumbnails), whose thumbnails are
    stored here; `timings` gets compute_embeddings' timings."""
    unique = shard.unique(subset="sha256", keep="first", maintain_order=True)
    cached = store.existing(unique["sha256"])  # keys only: classify reads the vectors
    todo = unique.filter(~pl.col("sha256").is_in(list(cached)))
    statuses = {sha: ("cached", None) for sha in cached}
    fed = {} if fed is None else fed
    timings = {} if timings is None else timings
    if todo.height:
        clip = load_clip(config.clip, config.paths.cache_path)  # once per process, by model id
        shas = todo["sha256"].to_list()
        spec = feed_spec(config)

        def store_batch(rows: list[int], vectors) -> None:  # a killed worker loses at most one batch
            store.append(embeddings_frame([shas[i] for i in rows], vectors, model_id))

        def keep_fed(rows: list[int], results: list[Fed]) -> None:
            fed.update((shas[i], f) for i, f in zip(rows, results))

        _, reasons = compute_embeddings(
            todo["path"].to_list(), clip, config.clip.batch_size, config.clip.decode_workers,
            config.run.max_image_pixels, prefetch_batches=config.clip.prefetch_batches,
            torch_threads=config.clip.torch_threads, precision=config.clip.precision,
            gpu_decode=config.clip.gpu_decode, timings=timings, on_batch=store_batch,
            feed=spec, on_fed=keep_fed,
        )
        if spec.thumb_sizes and fed:
            thumbnail_store(config.paths.cache_path, spec.thumb_sizes).append(
                thumbnails_frame(list(fed), [f.thumbs for f in fed.values()], spec.thumb_sizes))
        statuses.update({sha: (("rejected", r) if r else ("computed", None)) for sha, r in zip(shas, reasons)})
        done = sum(1 for r in reasons if not r)
        log.info("shard %d: %d embedded, %d cached, %d rejected; %.1f img/s, the model waited %.1f s of %.1f s for "
                 "decoding", no, done, len(cached), len(shas) - done, len(shas) / max(timings["wall_s"], 1e-9),
                 timings["wait_s"], timings["wall_s"])
    return pl.DataFrame({"sha256": list(statuses), "status": [s for s, _ in statuses.values()],
                         "reason": [r for _, r in statuses.values()]}, schema=STATUS_SCHEMA)


def classify_frame(shas: list[str], config: Config, model_id: str, labels: pl.DataFrame, store: ParquetStore,
                   pixels: pl.DataFrame | None, items: pl.DataFrame | None = None) -> pl.DataFrame:
    """Zero-shot attributes for embedded images, colour fused with the pixel colour by config.color.policy."""
    embeddings = store.lookup(shas)
    if embeddings is None or embeddings.height < len(set(shas)):
        found = 0 if embeddings is None else embeddings.height
        raise RuntimeError(f"{len(set(shas)) - found} of {len(set(shas))} embedded images are missing from the store "
                           f"{config.paths.cache_path}: is the cache folder shared by every worker?")
    attributes = classify(embeddings.select("sha256", "embedding"), labels, config.attributes)
    # Trained heads (if configured) replace zero-shot for their attributes; items feed a colour head's pixels.
    return heads_for_shard(fuse_color(attributes, pixels, config), embeddings, config, model_id, items)


def enrich(spec: ShardSpec, config: Config, model_id: str, labels: pl.DataFrame,
           log: logging.Logger | None = None) -> ShardResult:
    """embed (with each decode's pixel colour and thumbnails) -> pixel colour -> classify, for one shard."""
    log = log or logging.getLogger(__name__)
    started, wall_started = time.monotonic(), time.time()
    shard = spec.frame()
    fed: dict[str, Fed] = {}
    timings: dict = {}
    store = embedding_store(config.paths.cache_path, model_id)  # the shard's one view of the embedding cache
    status = embed_frame(shard, config, model_id, spec.no, log, store, fed, timings)
    ok = status.filter(pl.col("status") != "rejected")["sha256"].to_list()
    cpu = timings.get("cpu_s", {})
    attributes = None
    if ok:
        pixels = None
        if config.color.policy != "clip":
            c0 = time.process_time()
            pixels = pixel_color_frame(shard.filter(pl.col("sha256").is_in(ok)), config,
                                       {sha: f.color for sha, f in fed.items()})
            cpu = {**cpu, "color": cpu.get("color", 0.0) + time.process_time() - c0}
        attributes = classify_frame(ok, config, model_id, labels, store, pixels, shard.filter(pl.col("sha256").is_in(ok)))
    return ShardResult(spec.no, status, attributes, worker_name(), time.monotonic() - started, cpu=cpu,
                       decoded=timings.get("images", 0), started=wall_started, ended=time.time())


def reduce_shards(inventory: pl.DataFrame, results: list[ShardResult]) -> Enriched:
    """The shards' results as one: content shared by images of different shards was
    embedded once and classified per shard, so keep one row per sha256 (first shard wins)."""
    ordered = sorted(results, key=lambda r: r.no)
    status = (pl.concat([r.status for r in ordered]).unique(subset="sha256", keep="first", maintain_order=True)
              if ordered else pl.DataFrame(schema=STATUS_SCHEMA))
    decoded, rejected = split_decoded(inventory, status)
    parts = [r.attributes for r in ordered if r.attributes is not None and r.attributes.height]
    attributes = pl.concat(parts).unique(subset="sha256", keep="first", maintain_order=True) if parts else None
    by_worker: dict[str, list[int]] = {}
    cpu: dict[str, float] = {}
    for r in ordered:
        by_worker.setdefault(r.worker, []).append(r.no)
        for stage, seconds in r.cpu.items():
            cpu[stage] = cpu.get(stage, 0.0) + seconds
    return Enriched(status, decoded, rejected, attributes, by_worker, cpu, sum(r.decoded for r in ordered),
                    min((r.started for r in ordered), default=None), max((r.ended for r in ordered), default=None))

