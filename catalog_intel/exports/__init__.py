"""Shop exports into OUT/exports/: Shopify product CSV, Google Merchant Center feed,
JSON Lines, product detail pages. `write_exports` runs the ones the config names."""

from __future__ import annotations

import polars as pl

from catalog_intel.exports import jsonl, merchant, pdp, shopify
from catalog_intel.exports.fields import Missing
from catalog_intel.io.layout import OutputLayout
from catalog_intel.settings import Config

EXPORTERS = {"shopify": shopify.write, "gmc": merchant.write, "jsonl": jsonl.write, "pdp": pdp.write}


def write_exports(table: pl.DataFrame, out_dir: str, config: Config) -> tuple[dict[str, str], list[str]]:
    """Write each configured export; returns {name: path} and the run's warnings (each once)."""
    missing, paths = Missing(), {}
    folder = OutputLayout(out_dir).exports
    for name in config.exports.formats:
        path = EXPORTERS[name](table, folder, config, missing)
        if path is not None:
            paths[f"export_{name}"] = str(path)
    return paths, missing.warnings()
