"""`shopify_products.csv`: Shopify's product CSV (the column names exactly as Shopify
spells them). One row per product with its first image; each further image of the
product is a row with only Handle and the Image columns, as Shopify expects."""

from __future__ import annotations

from pathlib import Path

import jinja2
import polars as pl

from catalog_intel.exports.fields import Missing, attribute, handles, image_url, one_line, prices, text_list
from catalog_intel.io.csv_cells import neutralise_formulas
from catalog_intel.io.filesystem import write_csv
from catalog_intel.settings import Config, ExportsConfig

COLUMNS = ("Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags", "Published",
           "Option1 Name", "Option1 Value", "Variant Price", "Image Src", "Image Position", "Image Alt Text",
           "SEO Title", "SEO Description", "Status")
FILENAME = "shopify_products.csv"

# Autoescape: every value is HTML-escaped by construction (generated copy is untrusted).
_BODY = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    "{% if description %}<p>{{ description }}</p>{% endif %}"
    "{% if bullets %}<ul>{% for b in bullets %}<li>{{ b }}</li>{% endfor %}</ul>{% endif %}"
)


def body_html(description: object, bullets: list[str]) -> str:
    return _BODY.render(description=one_line(description), bullets=[one_line(b) for b in bullets])


def tags(seo_tags: list[str]) -> str:
    """Shopify splits Tags on commas, so a comma inside one tag cannot survive."""
    cleaned = (" ".join(one_line(t).replace(",", " ").split()) for t in seo_tags)
    return ", ".join(dict.fromkeys(t for t in cleaned if t))


def shopify_rows(table: pl.DataFrame, cfg: ExportsConfig, missing: Missing) -> pl.DataFrame:
    if not cfg.vendor:
        missing.note("exports.vendor", "Vendor")
    published = "TRUE" if cfg.publish else "FALSE"
    rows, position = [], {}
    for row, handle, price in zip(table.iter_rows(named=True), handles(table), prices(table, cfg, missing)):
        position[handle] = position.get(handle, 0) + 1
        title = one_line(row.get("title"))
        image = {"Handle": handle, "Image Src": image_url(row["image"], cfg, missing),
                 "Image Position": str(position[handle]), "Image Alt Text": title}
        if position[handle] > 1:  # another image of a product already written
            rows.append(image)
            continue
        rows.append({
            **image, "Title": title, "Body (HTML)": body_html(row.get("description"), text_list(row.get("bullet_points"))),
            "Vendor": cfg.vendor, "Product Category": cfg.product_category,
            "Type": attribute(row.get("garment_type")), "Tags": tags(text_list(row.get("seo_tags"))),
            "Published": published, "Option1 Name": "Title", "Option1 Value": "Default Title",
            "Variant Price": price, "SEO Title": title, "SEO Description": one_line(row.get("style_summary")),
            "Status": "active" if cfg.publish else "draft",
        })
    frame = pl.DataFrame(rows, schema={c: pl.Utf8 for c in COLUMNS}) if rows else \
        pl.DataFrame(schema={c: pl.Utf8 for c in COLUMNS})
    return neutralise_formulas(frame.select(COLUMNS).fill_null(""))


def write(table: pl.DataFrame, folder: Path, config: Config, missing: Missing) -> Path:
    path = folder / FILENAME
    write_csv(shopify_rows(table, config.exports, missing), path)
    return path
