"""The copy step over a run's distinct attribute sets: identical sets cost one
request across the whole run, on any number of workers (pure polars)."""

from __future__ import annotations

import polars as pl

from catalog_intel.copywriting.copywriter import prompts_and_keys
from catalog_intel.copywriting.grounding.phrases import stock_figures
from catalog_intel.schemas import COPY_FRAME_SCHEMA
from catalog_intel.settings import LLMConfig


def keyed(attributes: pl.DataFrame, llm: LLMConfig) -> pl.DataFrame:
    """attributes[sha256, <attributes>, facts_json?] -> [sha256, copy_key] (the keys describe() uses)."""
    _, keys = prompts_and_keys(attributes, llm)
    return pl.DataFrame({"sha256": list(keys), "copy_key": list(keys.values())},
                        schema={"sha256": pl.Utf8, "copy_key": pl.Utf8})


def distinct_sets(attributes: pl.DataFrame, keys: pl.DataFrame, batch: int) -> list[pl.DataFrame]:
    """One representative row per distinct attribute set, in batches of `batch` sets."""
    firsts = keys.unique(subset="copy_key", keep="first", maintain_order=True)["sha256"]
    sets = attributes.filter(pl.col("sha256").is_in(firsts.implode()))
    return [sets.slice(start, batch) for start in range(0, sets.height, batch)]


def expand_copy(keys: pl.DataFrame, parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The representatives' copy given to every image with the same attribute set."""
    if not parts:
        return pl.DataFrame(schema=COPY_FRAME_SCHEMA)
    by_key = pl.concat(parts, how="diagonal_relaxed").drop("sha256").unique(subset="copy_key", keep="first")
    extra = [c for c in by_key.columns if c not in COPY_FRAME_SCHEMA]  # copy in other languages
    return keys.join(by_key, on="copy_key", how="left").select(*COPY_FRAME_SCHEMA.keys(), *extra)


def sum_counts(counts: list[dict]) -> dict[str, float]:
    total: dict[str, float] = {}
    for c in counts:
        for key, value in c.items():
            total[key] = total.get(key, 0) + (value if isinstance(value, float) else int(value))
    return total


def copy_style_counts(copy: pl.DataFrame) -> dict:
    """Prose sentences, and those with a stock phrase (a 6-word run with no product word that 3
    or more of the batch's products share)."""
    figures = stock_figures(copy.filter(pl.col("copy_error").is_null()).to_dicts())
    return {"llm_sentences": figures["sentences"], "llm_stock_sentences": figures["stock_sentences"]}
