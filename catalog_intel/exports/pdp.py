"""`pdp/`: the product detail pages, rendered by the review report's templates
(report.write_product_pages), so the shop copy and the report show the same page."""

from __future__ import annotations

import polars as pl

from catalog_intel.exports.fields import Missing
from catalog_intel.report.render import write_product_pages
from catalog_intel.settings import Config


def write(table: pl.DataFrame, folder, config: Config, missing: Missing):
    write_product_pages(table, config, folder / "pdp")
    return folder / "pdp"
