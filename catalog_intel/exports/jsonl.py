"""`catalog.jsonl`: one JSON object per catalog row, every column of catalog.parquet
(lists stay lists). U+2028/U+2029 are escaped so no reader splits a record."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl

from catalog_intel.exports.fields import Missing
from catalog_intel.io.filesystem import atomic_write_text
from catalog_intel.settings import Config

FILENAME = "catalog.jsonl"


def _default(value: object) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"catalog.jsonl: cannot write a {type(value).__name__} value")


def to_jsonl(table: pl.DataFrame) -> str:
    lines = (json.dumps(row, ensure_ascii=False, default=_default, allow_nan=False)
             .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") for row in table.iter_rows(named=True))
    return "".join(line + "\n" for line in lines)


def write(table: pl.DataFrame, folder: Path, config: Config, missing: Missing) -> Path:
    path = folder / FILENAME
    atomic_write_text(path, to_jsonl(table.fill_nan(None)))
    return path
