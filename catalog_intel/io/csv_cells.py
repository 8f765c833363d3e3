"""CSV cells a spreadsheet would run as formulas (CSV injection, OWASP): neutralised when a CSV
is written, restored when one of ours is read back."""

from __future__ import annotations

import polars as pl

from catalog_intel.io.filesystem import write_csv


# A spreadsheet runs a cell as a formula if it starts with one of these, after any whitespace
# (CSV injection, OWASP). report.js's cell() applies the same rule to edits.csv.
FORMULA = r"^\s*[=+\-@\t\r]"
NEUTRALISED = r"^'(\s*[=+\-@\t\r])"  # a cell neutralise_formulas quoted; $1 is the original
KEY_COLUMNS = ("image", "product_id")  # joins need them as they are: quoted in the file, never changed


def neutralise_formulas(frame: pl.DataFrame, keys: tuple[str, ...] = KEY_COLUMNS) -> pl.DataFrame:
    """Prefix a quote to text cells a spreadsheet would run as a formula; key columns are left."""
    text = [c for c, t in frame.schema.items() if t == pl.Utf8 and c not in keys]
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text
    )


def restore_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """A neutralised CSV read back: the quote neutralise_formulas prefixed removed again."""
    return frame.with_columns(pl.col(c).str.replace(NEUTRALISED, "$1") for c, t in frame.schema.items() if t == pl.Utf8)


def write_neutral_csv(frame: pl.DataFrame, loc, keys: tuple[str, ...] = KEY_COLUMNS) -> int:
    """`frame` as CSV, formulas neutralised; if a key cell looks like a formula, every text cell is
    written quoted (the key itself unchanged, so the file still joins)."""
    formula_key = any(frame.schema[c] == pl.Utf8 and frame[c].str.contains(FORMULA).any()
                      for c in keys if c in frame.columns)
    return write_csv(neutralise_formulas(frame, keys), loc, quote_style="non_numeric" if formula_key else "necessary")
