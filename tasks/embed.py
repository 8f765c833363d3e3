from __future__ import annotations

import polars as pl
from prefect import get_run_logger, task

from catalog_intel.clip_model import load_clip
from catalog_intel.config import Config
from catalog_intel.embedding import embedding_store, embeddings_frame, iter_embeddings

from .common import TASK_DEFAULTS, progress_bar


@task(name="embed-shard", **TASK_DEFAULTS)
def embed_shard(shard: pl.DataFrame, config: Config, model_id: str, shard_no: int) -> pl.DataFrame:
    """Make sure every image of the shard has an embedding in the store.

    shard[sha256, path] -> [sha256, status ('cached' | 'computed' | 'rejected'), reason].
    Content seen before (any run, any file name) is not embedded again."""
    store = embedding_store(config.paths.cache_path, model_id)
    unique = shard.unique(subset="sha256", keep="first", maintain_order=True)
    have = store.lookup(unique["sha256"])
    cached = set(have["sha256"]) if have is not None else set()
    todo = unique.filter(~pl.col("sha256").is_in(list(cached)))
    statuses = {sha: ("cached", None) for sha in cached}
    if todo.height:
        clip = load_clip(config.clip, config.paths.cache_path)
        shas = todo["sha256"].to_list()
        with progress_bar(todo.height, f"embed shard {shard_no}") as bar:
            batches = iter_embeddings(todo["path"].to_list(), clip, config.clip.batch_size,
                                      config.clip.decode_workers, config.run.max_image_pixels)
            for index, vectors, reasons in batches:
                ok = [j for j, r in enumerate(reasons) if not r]
                # Stored per batch: a killed run loses at most one batch of work.
                if ok:
                    store.append(embeddings_frame([shas[index[j]] for j in ok], vectors[ok], model_id))
                for i, reason in zip(index, reasons):
                    statuses[shas[i]] = ("rejected", reason) if reason else ("computed", None)
                bar.update(len(index))
        computed = sum(1 for s, _ in statuses.values() if s == "computed")
        get_run_logger().info("shard %d: %d embedded, %d cached, %d rejected", shard_no, computed,
                              len(cached), len(statuses) - computed - len(cached))
    return pl.DataFrame(
        {"sha256": list(statuses), "status": [s for s, _ in statuses.values()], "reason": [r for _, r in statuses.values()]},
        schema={"sha256": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8},
    )
