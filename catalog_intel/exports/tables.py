"""Catalog outputs: catalog.csv (the original tool's exact columns), catalog.parquet
(everything, native lists) and rejects.csv, each published in one step (one PUT on an
object store). OUT/_SUCCESS.json marks a complete output set: a run removes it before it
writes anything and writes it, with the run id the tables carry, after everything else."""

from __future__ import annotations

import json
import time

import polars as pl

from catalog_intel.io.csv_cells import write_neutral_csv
from catalog_intel.io.filesystem import atomic_write_text, remove_files, write_parquet
from catalog_intel.io.layout import OutputLayout
from catalog_intel.schemas import CSV_COLUMNS


LIST_SEPARATOR = "; "


def csv_view(table: pl.DataFrame) -> pl.DataFrame:
    """The original tool's CSV: exact columns and order, lists joined with '; '."""
    view = table.select(
        [
            pl.col(c).list.join(LIST_SEPARATOR) if isinstance(table.schema.get(c), pl.List) else pl.col(c)
            for c in CSV_COLUMNS
        ]
    )
    return view.with_columns(pl.col(c).cast(pl.Utf8) for c in CSV_COLUMNS)


def write_outputs(table: pl.DataFrame, rejects: pl.DataFrame, out_dir) -> dict[str, str]:
    """Write the three outputs (out_dir: a local folder or URL) and any per-language CSVs; returns their paths."""
    out = OutputLayout(out_dir)
    from catalog_intel.copywriting.languages import copy_languages, language_view

    paths = {
        "catalog_csv": out.catalog_csv,
        "catalog_parquet": out.catalog_parquet,
        "rejects_csv": out.rejects_csv,
    }
    write_parquet(table, paths["catalog_parquet"])
    write_neutral_csv(csv_view(table), paths["catalog_csv"])
    write_neutral_csv(rejects.select("image", "reason").sort("image"), paths["rejects_csv"])
    for lang in copy_languages(table):  # copy in other languages: catalog.<lang>.csv, same columns
        paths[f"catalog_csv_{lang}"] = out.catalog_csv_in(lang)
        write_neutral_csv(csv_view(language_view(table, lang)), paths[f"catalog_csv_{lang}"])
    return {k: str(v) for k, v in paths.items()}


def withdraw_commit(out_dir) -> None:
    """Before a run writes any output: readers then see no complete set until write_commit."""
    remove_files([OutputLayout(out_dir).commit_file])


def write_commit(out_dir, run_id: str, rows: int, rejects: int, outputs: dict[str, str]) -> None:
    """The last file a run writes: its run id (the tables' run_id column) and what it wrote."""
    atomic_write_text(OutputLayout(out_dir).commit_file, json.dumps({
        "run_id": run_id, "rows": rows, "rejects": rejects, "outputs": outputs,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1))
