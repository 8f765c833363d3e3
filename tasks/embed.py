from __future__ import annotations

import polars as pl
from prefect import get_run_logger, task

from catalog_intel.clip_model import load_clip
from catalog_intel.config import Config
from catalog_intel.embedding import compute_embeddings, embedding_store, embeddings_frame

from .common import TASK_DEFAULTS, progress_bar


@task(name="embed-shard", **TASK_DEFAULTS)
def embed_shard(shard: pl.DataFrame, config: Config, model_id: str, shard_no: int) -> pl.DataFrame:
    """Make sure every image of the shard has an embedding in the store.

    shard[sha256, path] -> [sha256, status ('cached' | 'computed' | 'rejected'), reason].
    Content seen before (any run, any file name) is not embedded again."""
    store = embedding_store(config.paths.cache_path, model_id)
    unique = shard.unique(subset="sha256", keep="first", maintain_order=True)
    cached = store.existing(unique["sha256"])  # keys only: the vectors are read by classify
    todo = unique.filter(~pl.col("sha256").is_in(list(cached)))
    statuses = {sha: ("cached", None) for sha in cached}
    if todo.height:
        clip = load_clip(config.clip, config.paths.cache_path)
        shas = todo["sha256"].to_list()
        timings: dict = {}

        def store_batch(rows: list[int], vectors) -> None:
            # Stored per batch: a killed run loses at most one batch of work.
            store.append(embeddings_frame([shas[i] for i in rows], vectors, model_id))

        with progress_bar(todo.height, f"embed shard {shard_no}") as bar:
            _, reasons = compute_embeddings(
                todo["path"].to_list(), clip, config.clip.batch_size, config.clip.decode_workers,
                config.run.max_image_pixels, progress=bar, prefetch_batches=config.clip.prefetch_batches,
                torch_threads=config.clip.torch_threads, precision=config.clip.precision,
                gpu_decode=config.clip.gpu_decode, timings=timings, on_batch=store_batch,
            )
        for sha, reason in zip(shas, reasons):
            statuses[sha] = ("rejected", reason) if reason else ("computed", None)
        done = sum(1 for r in reasons if not r)
        get_run_logger().info("shard %d: %d embedded, %d cached, %d rejected; %.1f img/s, the model waited %.1f s "
                              "of %.1f s for decoding", shard_no, done, len(cached), len(shas) - done,
                              len(shas) / max(timings["wall_s"], 1e-9), timings["wait_s"], timings["wall_s"])
    return pl.DataFrame(
        {"sha256": list(statuses), "status": [s for s, _ in statuses.values()], "reason": [r for _, r in statuses.values()]},
        schema={"sha256": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8},
    )
