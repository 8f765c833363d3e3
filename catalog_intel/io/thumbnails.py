"""The report's JPEG thumbnails, cached by content beside the embeddings: the decode that fed the
model made them, so a report (this run's or a later one's) never decodes a photo again."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from catalog_intel.io.layout import CacheLayout
from catalog_intel.io.parquet_store import ParquetStore


def report_thumb_sizes(config) -> tuple[int, int]:
    """The report's card thumbnail and the product pages' image: longest sides in pixels."""
    return config.report.thumb_size, min(1024, 2 * config.report.thumb_size)


def thumbnail_store(cache_root: Path, sizes: tuple[int, ...]) -> ParquetStore:
    """One store per set of sizes (a changed report.thumb_size starts a new one)."""
    return ParquetStore(CacheLayout(cache_root).thumbnails(sizes),
                        key="sha256")


def _column(size: int) -> str:
    return f"jpeg_{size}"


def thumbnails_frame(shas: list[str], thumbs: list[dict[int, bytes]], sizes: tuple[int, ...]) -> pl.DataFrame:
    """[sha256, jpeg_<size>...] for images that have every size."""
    keep = [(sha, t) for sha, t in zip(shas, thumbs) if all(s in t for s in sizes)]
    return pl.DataFrame({"sha256": [sha for sha, _ in keep],
                         **{_column(s): pl.Series([t[s] for _, t in keep], dtype=pl.Binary) for s in sizes}},
                        schema={"sha256": pl.Utf8, **{_column(s): pl.Binary for s in sizes}})


def cached_thumbnails(store: ParquetStore, shas: list[str], size: int) -> dict[str, bytes]:
    """sha256 -> JPEG bytes at `size` for those of `shas` the store has."""
    found = store.lookup(shas) if shas else None
    if found is None or _column(size) not in found.columns:
        return {}
    return dict(zip(found["sha256"].to_list(), found[_column(size)].to_list()))
