from __future__ import annotations

import polars as pl
from prefect import task

from catalog_intel.color_fusion import PIXEL_ALGORITHM, PIXEL_SCHEMA, pixel_colors
from catalog_intel.config import Config
from catalog_intel.storage import ParquetStore

from .common import TASK_DEFAULTS


def pixel_color_store(config: Config) -> ParquetStore:
    return ParquetStore(config.paths.cache_path / "pixel_color" / PIXEL_ALGORITHM, key="sha256")


@task(name="pixel-color-shard", **TASK_DEFAULTS)
def pixel_color_shard(shard: pl.DataFrame, config: Config) -> pl.DataFrame:
    """Dominant garment colour from the pixels for the shard's images (cached by content)."""
    store = pixel_color_store(config)
    unique = shard.unique(subset="sha256", keep="first", maintain_order=True)
    have = store.lookup(unique["sha256"])
    todo = unique if have is None else unique.filter(~pl.col("sha256").is_in(have["sha256"].implode()))
    fresh = pixel_colors(todo, config) if todo.height else pl.DataFrame(schema=PIXEL_SCHEMA)
    store.append(fresh.filter(pl.col("color_pixels").is_not_null()))
    parts = [fresh] if have is None else [have.select(PIXEL_SCHEMA.keys()), fresh]
    return pl.concat(parts)
