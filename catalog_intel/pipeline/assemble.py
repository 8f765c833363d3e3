"""Joining the per-stage frames into the final catalog table (pure polars)."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from catalog_intel.schemas import (ATTRIBUTE_ORDER, COPY_COLUMNS, COPY_FRAME_SCHEMA, CSV_COLUMNS, REJECTS_SCHEMA,
                                   UNKNOWN)
from catalog_intel.settings import Config

COLOR_OPINIONS = ("color_clip", "color_clip_confidence", "color_pixels", "color_pixels_confidence")


def shards(frame: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    """Contiguous slices of at most `size` rows (deterministic: inventory order)."""
    return [frame.slice(start, size) for start in range(0, frame.height, size)]


def split_decoded(inventory: pl.DataFrame, embed_status: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Inventory rows whose image decoded, and rejects for those that did not.
    Both names of duplicated content share one status."""
    joined = inventory.join(embed_status, on="sha256", how="left")
    rejects = joined.filter(pl.col("status") == "rejected").select("image", "reason")
    return joined.filter(pl.col("status") != "rejected").drop("status", "reason"), rejects


def empty_copy(shas: pl.Series) -> pl.DataFrame:
    return pl.DataFrame({"sha256": shas}).with_columns(
        [pl.lit(None, dtype=t).alias(c) for c, t in COPY_FRAME_SCHEMA.items() if c != "sha256"]
    )


def assemble(inventory: pl.DataFrame, attributes: pl.DataFrame, copy: pl.DataFrame, meta: dict) -> pl.DataFrame:
    """One row per decoded image: identity, attributes (+confidence, margin),
    copy, then run metadata (model ids, prompt version, run id, timestamp)."""
    attr_cols = [c for a in ATTRIBUTE_ORDER for c in (a, f"{a}_confidence", f"{a}_margin")]
    # Pre-abstention values (threshold calibration) and the two colour opinions.
    extra_cols = [f"{a}_raw" for a in ATTRIBUTE_ORDER] + [c for c in COLOR_OPINIONS if c in attributes.columns]
    # Anything else the attribute steps produced: <attr>_source, attributes only a trained head knows.
    extra_cols += [c for c in attributes.columns if c not in {"sha256", *attr_cols, *extra_cols}]
    table = (
        inventory.join(attributes.select("sha256", *attr_cols, *extra_cols), on="sha256", how="left")
        .join(copy.unique(subset="sha256").select("sha256", *COPY_COLUMNS, "copy_warnings", "copy_error",
                                                  *[c for c in copy.columns if c not in COPY_FRAME_SCHEMA]),
              on="sha256", how="left")
        .with_columns([pl.lit(v).alias(k) for k, v in meta.items()])
    )
    first = ["image", "product_id", *attr_cols, *COPY_COLUMNS]
    return table.select(first + [c for c in table.columns if c not in first])


def assemble_catalog(inventory: pl.DataFrame, attributes: pl.DataFrame | None, copy: pl.DataFrame,
                     meta: dict) -> pl.DataFrame:
    """`assemble`, or the empty table of a run where no image decoded."""
    if attributes is None:
        return pl.DataFrame(schema={c: pl.Utf8 for c in (*CSV_COLUMNS, "sha256", "copy_error")})
    return assemble(inventory, attributes, copy, meta)


def run_meta(settings: Config, model_id: str, run_id: str) -> dict:
    """The run's columns: model ids, prompt version, run id, timestamp."""
    with_copy = settings.llm.enabled
    return {
        "clip_model_id": model_id,
        "llm_model": settings.llm.model if with_copy else None,
        "prompt_version": settings.llm.prompt_version if with_copy else None,
        "run_id": run_id,
        "processed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def not_rejected(table: pl.DataFrame, *rejects: pl.DataFrame) -> pl.DataFrame:
    """The rows of `table` whose image none of `rejects` names."""
    names = pl.concat([r.select("image") for r in rejects]) if rejects else pl.DataFrame(schema={"image": pl.Utf8})
    return table.filter(~pl.col("image").is_in(names["image"].implode()))


def accepted(table: pl.DataFrame, rejects: pl.DataFrame) -> pl.DataFrame:
    """The catalog's final rows: every row not rejected, without the copy error column."""
    return not_rejected(table, rejects).drop("copy_error", strict=False)


def copy_failures(table: pl.DataFrame) -> pl.DataFrame:
    """Rows whose copy could not be produced (retries exhausted), with the last error."""
    return table.filter(pl.col("copy_error").is_not_null()).select(
        "image", (pl.lit("LLM copy failed: ") + pl.col("copy_error")).alias("reason")
    )


def merge_rejects(*frames: pl.DataFrame) -> pl.DataFrame:
    """One row per rejected image, reasons joined."""
    parts = [f.select("image", "reason") for f in frames if f.height]
    if not parts:
        return pl.DataFrame(schema=REJECTS_SCHEMA)
    return (
        pl.concat(parts).group_by("image", maintain_order=True)
        .agg(pl.col("reason").unique(maintain_order=True).str.join("; "))
        .sort("image")
    )


def abstention_counts(table: pl.DataFrame) -> dict[str, int]:
    return {a: int((table[a] == UNKNOWN).sum()) for a in ATTRIBUTE_ORDER if a in table.columns}
