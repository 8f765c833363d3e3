"""`pdp/`: the product detail pages (issue 12, branch `review`). This export only
calls the page writer when this installation has one; otherwise it says so."""

from __future__ import annotations

import importlib
from pathlib import Path

import polars as pl

from ..config import Config
from .fields import Missing

# Where the page writer lives: (module, function). It takes (table, config, folder) and writes
# one page per row, with its images, into folder (report.write_product_pages of issue 12).
WRITERS = (("catalog_intel.report", "write_product_pages"), ("catalog_intel.pdp", "write_product_pages"))


def find_writer():
    for module, name in WRITERS:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if callable(found):
            return found
    return None


def write(table: pl.DataFrame, folder: Path, config: Config, missing: Missing) -> Path | None:
    writer = find_writer()
    if writer is None:
        missing.skipped("pdp", "this installation has no product detail page writer yet (issue 12)")
        return None
    writer(table, config, folder / "pdp")
    return folder / "pdp"

