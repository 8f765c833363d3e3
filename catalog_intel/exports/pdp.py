"""`pdp/`: the product detail pages (issue 12, branch `review`). This export only
calls the page writer when this installation has one; otherwise it says so."""

from __future__ import annotations

import importlib
from pathlib import Path

import polars as pl

from ..config import ExportsConfig
from .fields import Missing

# Where the review branch's page writer may live: (module, function). The function
# takes (table, folder) and writes the pages into folder.
WRITERS = (("catalog_intel.pdp", "write_product_pages"), ("catalog_intel.report", "write_product_pages"))


def find_writer():
    for module, name in WRITERS:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if callable(found):
            return found
    return None


def write(table: pl.DataFrame, folder: Path, cfg: ExportsConfig, missing: Missing) -> Path | None:
    writer = find_writer()
    if writer is None:
        missing.skipped("pdp", "this installation has no product detail page writer yet (issue 12)")
        return None
    writer(table, folder / "pdp")
    return folder / "pdp"

