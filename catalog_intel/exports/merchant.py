"""`google_merchant.tsv`: a Google Merchant Center text feed (tab-separated, one
product per line, no line breaks inside values).

Generated copy is AI text, and Google asks for it in `structured_title` and
`structured_description` as `trained_algorithmic_media:"<content>"` (digital source
type, a colon, the content in double quotes because it may hold colons or quotes).
`title` and `description` stay empty: Google prefers them over the structured
attributes when both are given, which would drop the disclosure."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from catalog_intel.exports.fields import Missing, attribute, handles, image_url, one_line, prices, product_url
from catalog_intel.io.csv_cells import neutralise_formulas
from catalog_intel.io.filesystem import atomic_write_text
from catalog_intel.settings import Config, ExportsConfig

COLUMNS = ("id", "title", "description", "link", "image_link", "price", "availability", "condition", "brand",
           "color", "pattern", "material", "gender", "age_group", "structured_title", "structured_description")
FILENAME = "google_merchant.tsv"
AI_SOURCE = "trained_algorithmic_media"
# Google's limits for the content sub-attribute.
TITLE_MAX, DESCRIPTION_MAX = 150, 5000


def structured(content: object, limit: int) -> str:
    """`trained_algorithmic_media:"..."`, inner double quotes doubled; empty without content."""
    text = one_line(content)[:limit]
    return f'{AI_SOURCE}:"{text.replace(chr(34), chr(34) * 2)}"' if text else ""


def _price(value: str, cfg: ExportsConfig, missing: Missing) -> str:
    if value and not cfg.currency:
        missing.note("exports.currency", "price currencies (Merchant Center wants e.g. '15.00 EUR')")
    return f"{value} {cfg.currency}" if value and cfg.currency else value


def merchant_rows(table: pl.DataFrame, cfg: ExportsConfig, missing: Missing) -> pl.DataFrame:
    for key, value, what in (("exports.availability", cfg.availability, "availability"),
                             ("exports.vendor", cfg.vendor, "brand"), ("exports.gender", cfg.gender, "gender"),
                             ("exports.age_group", cfg.age_group, "age_group")):
        if not value:
            missing.note(key, what)
    rows, seen = [], set()
    for row, handle, price in zip(table.iter_rows(named=True), handles(table), prices(table, cfg, missing)):
        if handle in seen:  # one feed item per product; further images are not items
            continue
        seen.add(handle)
        rows.append({
            "id": handle, "title": "", "description": "", "link": product_url(handle, cfg, missing),
            "image_link": image_url(row["image"], cfg, missing), "price": _price(price, cfg, missing),
            "availability": cfg.availability, "condition": cfg.condition, "brand": cfg.vendor,
            "color": attribute(row.get("color")), "pattern": attribute(row.get("pattern")),
            "material": attribute(row.get("fabric")), "gender": cfg.gender, "age_group": cfg.age_group,
            "structured_title": structured(row.get("title"), TITLE_MAX),
            "structured_description": structured(row.get("description"), DESCRIPTION_MAX),
        })
    frame = pl.DataFrame(rows, schema={c: pl.Utf8 for c in COLUMNS}) if rows else \
        pl.DataFrame(schema={c: pl.Utf8 for c in COLUMNS})
    return neutralise_formulas(frame.with_columns(pl.col(c).map_elements(one_line, return_dtype=pl.Utf8) for c in COLUMNS))


def to_tsv(frame: pl.DataFrame) -> str:
    """Tab-separated, no quoting: values are one line without tabs by construction."""
    lines = ["\t".join(frame.columns)] + ["\t".join(v or "" for v in row) for row in frame.iter_rows()]
    return "\n".join(lines) + "\n"


def write(table: pl.DataFrame, folder: Path, config: Config, missing: Missing) -> Path:
    path = folder / FILENAME
    atomic_write_text(path, to_tsv(merchant_rows(table, config.exports, missing)))
    return path
