"""Names and column sets that several layers share. Ground level: imports nothing of catalog_intel."""

from __future__ import annotations

import polars as pl

UNKNOWN = "unknown"  # an abstention: no value clears its attribute's min_confidence
# Attribute columns in the order of the original tool's CSV, then the additions.
ATTRIBUTE_ORDER = ("color", "neckline", "sleeve", "pattern", "fabric", "fit", "garment_type")
EXPORT_FORMATS = ("shopify", "gmc", "jsonl", "pdp")

# catalog.csv: the original tool's exact columns.
CSV_COLUMNS = ("image", "color", "neckline", "sleeve", "pattern", "fabric", "fit",
               "title", "bullet_points", "description", "style_summary", "seo_tags")
REJECTS_SCHEMA = {"image": pl.Utf8, "reason": pl.Utf8}

COPY_COLUMNS = ("title", "bullet_points", "description", "style_summary", "seo_tags")
COPY_FRAME_SCHEMA = {
    "sha256": pl.Utf8, "copy_key": pl.Utf8, "title": pl.Utf8, "bullet_points": pl.List(pl.Utf8),
    "description": pl.Utf8, "style_summary": pl.Utf8, "seo_tags": pl.List(pl.Utf8), "copy_warnings": pl.List(pl.Utf8),
    "copy_error": pl.Utf8,
}

HEAD_FORMAT = "catalog-intel-head/1"  # the `format` of a trained head's JSON file
