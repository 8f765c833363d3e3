"""Reviewer edits honoured by the next run (`catalog-intel run ... --facts edits.csv`).

The edits file is the one the review report's "Download edits" writes (a facts file): CSV
or Parquet keyed by `image` (optional `product_id`), any edited attribute columns, any
edited copy columns (lists joined with "; "), `review_status` (approved | edited | rejected)
and `review_reason`. A blank cell is no edit.

What a run does with it (pure functions, frames in, frames out):
- reviewed rows (approved or edited) keep the attribute values the reviewer saw, with the
  edits over them: those values are locked (`lock_attributes`);
- copy is asked for only for rows that were not approved and whose copy was not edited
  (`needs_copy`); since copy is cached by attribute set, only rows whose attributes changed
  cost an LLM request;
- approved rows keep their previous copy, edited copy fields are kept as written
  (`apply_review`), and rejected rows become rejects with the reviewer's reason.

Attribute facts from a manifest or supplier file are the facts module's job (issue 9): the
attribute part here is the minimal form the review loop needs until the two are joined."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .config import ATTRIBUTE_ORDER, UNKNOWN, Config
from .copywriter import COPY_COLUMNS

REVIEW_STATUSES = ("approved", "edited", "rejected")
LIST_COPY = ("bullet_points", "seo_tags")
LIST_SEPARATOR = ";"


class EditsError(ValueError):
    """The edits file cannot be used; the message names the file, row and fix."""


def read_edits(path: str | Path, config: Config) -> pl.DataFrame:
    """The edits file as a frame: image, product_id, attribute and copy columns (text, null =
    no edit; list copy columns as lists), review_status, review_reason."""
    path = Path(path)
    try:
        frame = pl.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else \
            pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise EditsError(f"{path}: cannot read the edits file ({exc}); give a CSV or Parquet file with an "
                         "'image' column, as the review report's 'Download edits' writes") from exc
    if "image" not in frame.columns:
        raise EditsError(f"{path}: no 'image' column (columns: {', '.join(frame.columns)}); the edits file is keyed by image")
    attrs = [a for a in ATTRIBUTE_ORDER if a in config.attributes]
    known = {"image", "product_id", "review_status", "review_reason", *attrs, *COPY_COLUMNS}
    unknown = [c for c in frame.columns if c not in known]
    if unknown:
        raise EditsError(f"{path}: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    frame = frame.with_columns(
        pl.col(c).cast(pl.Utf8).str.strip_chars().replace("", None) for c in frame.columns if c not in LIST_COPY
        or frame.schema[c] == pl.Utf8)
    for c in known:
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(c))
    for n, row in enumerate(frame.iter_rows(named=True), 2):  # CSV line numbers (header is line 1)
        if not row["image"]:
            raise EditsError(f"{path}, line {n}: empty image; every edit names its image")
        status = row["review_status"]
        if status is not None and status not in REVIEW_STATUSES:
            raise EditsError(f"{path}, line {n} ({row['image']}): review_status {status!r} is not one of "
                             f"{', '.join(REVIEW_STATUSES)}")
        for a in attrs:
            value = row[a]
            if value is not None and value != UNKNOWN and value not in config.attributes[a].values:
                raise EditsError(f"{path}, line {n} ({row['image']}): {a} {value!r} is not in the vocabulary "
                                 f"({', '.join(config.attributes[a].values)})")
    if frame["image"].is_duplicated().any():
        dup = frame.filter(pl.col("image").is_duplicated())["image"][0]
        raise EditsError(f"{path}: image {dup!r} appears more than once; keep one row per image")
    lists = [pl.col(c).str.split(LIST_SEPARATOR).list.eval(pl.element().str.strip_chars())
             .list.eval(pl.element().filter(pl.element() != "")).alias(c)
             for c in LIST_COPY if frame.schema[c] == pl.Utf8]
    return frame.with_columns(lists).select("image", "product_id", *attrs, *COPY_COLUMNS, "review_status",
                                            "review_reason")


@dataclass
class ReviewPlan:
    edits: pl.DataFrame           # read_edits' frame
    previous: pl.DataFrame | None  # the previous run's catalog rows (OUT/catalog.parquet), if any

    @property
    def attributes(self) -> list[str]:
        return [a for a in ATTRIBUTE_ORDER if a in self.edits.columns]

    def _by_sha(self, inventory: pl.DataFrame) -> pl.DataFrame:
        return self.edits.join(inventory.select("image", "sha256"), on="image", how="inner") \
            .unique(subset="sha256", keep="last", maintain_order=True)

    def _copy_edited(self) -> pl.Expr:
        return pl.any_horizontal([pl.col(c).is_not_null() for c in COPY_COLUMNS])


def load_plan(edits_path: str | Path, out_dir: str | Path, config: Config) -> ReviewPlan:
    """The edits plus the previous run's catalog in `out_dir` (read before this run replaces it)."""
    edits = read_edits(edits_path, config)
    previous_path = Path(out_dir) / "catalog.parquet"
    previous = pl.read_parquet(previous_path) if previous_path.is_file() else None
    return ReviewPlan(edits, previous)


def lock_attributes(attributes: pl.DataFrame, inventory: pl.DataFrame, plan: ReviewPlan) -> pl.DataFrame:
    """attributes[sha256, <attr>, <attr>_confidence, ...] with reviewed rows' values locked:
    the previous run's value (what the reviewer saw and accepted), then the reviewer's edit over
    it; a locked value gets confidence 1.0."""
    edits = plan._by_sha(inventory).filter(pl.col("review_status").is_in(["approved", "edited"])
                                           | pl.any_horizontal([pl.col(a).is_not_null() for a in plan.attributes]))
    if edits.is_empty():
        return attributes
    names = [a for a in plan.attributes if a in attributes.columns]
    if plan.previous is not None:
        seen = plan.previous.select("image", *[pl.col(a).alias(f"{a}__seen") for a in names if a in plan.previous.columns])
        edits = edits.join(seen, on="image", how="left")
    locked = edits.select("sha256", *[
        pl.coalesce(pl.col(a), pl.when(pl.col("review_status").is_in(["approved", "edited"]))
                    .then(pl.col(f"{a}__seen") if f"{a}__seen" in edits.columns else pl.lit(None, pl.Utf8)))
        .alias(f"{a}__locked") for a in names])
    out = attributes.join(locked, on="sha256", how="left")
    return out.with_columns(
        *[pl.coalesce(f"{a}__locked", a).alias(a) for a in names],
        *[pl.when(pl.col(f"{a}__locked").is_not_null()).then(1.0).otherwise(pl.col(f"{a}_confidence"))
          .cast(attributes.schema[f"{a}_confidence"]).alias(f"{a}_confidence") for a in names
          if f"{a}_confidence" in attributes.columns],
    ).drop([f"{a}__locked" for a in names])


def frozen_shas(inventory: pl.DataFrame, plan: ReviewPlan) -> list[str]:
    """Contents whose copy is not asked for: approved rows with a previous copy, rows whose copy
    was edited (with a previous copy to complete it, or every copy field edited), rejected rows."""
    edits = plan._by_sha(inventory)
    has_previous = pl.lit(False)
    if plan.previous is not None and "title" in plan.previous.columns:
        titled = plan.previous.filter(pl.col("title").is_not_null())["image"].implode()
        has_previous = pl.col("image").is_in(titled)
    all_copy = pl.all_horizontal([pl.col(c).is_not_null() for c in COPY_COLUMNS])
    keep = (((pl.col("review_status") == "approved") | plan._copy_edited()) & (has_previous | all_copy)) \
        | (pl.col("review_status") == "rejected")
    return edits.filter(keep)["sha256"].to_list()


def needs_copy(attributes: pl.DataFrame, inventory: pl.DataFrame, plan: ReviewPlan) -> pl.DataFrame:
    """The attribute rows copy is asked for (see frozen_shas for the others)."""
    return attributes.filter(~pl.col("sha256").is_in(frozen_shas(inventory, plan)))


def apply_review(table: pl.DataFrame, plan: ReviewPlan) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The assembled table with the review applied: frozen rows take their previous copy, edited
    copy fields are written over it, `review_status` and `review_reason` columns are added.
    Returns (table, rejects[image, reason]) where rejects are the rows the reviewer rejected."""
    edits = plan.edits.select("image", *COPY_COLUMNS, "review_status", "review_reason")
    frozen = set(frozen_shas(table.select("image", "sha256"), plan))
    out = table.with_columns(pl.col("sha256").is_in(list(frozen)).alias("__frozen"))
    if plan.previous is not None and "title" in plan.previous.columns:
        cols = [c for c in (*COPY_COLUMNS, "copy_warnings") if c in plan.previous.columns]
        prev = plan.previous.select("image", *[pl.col(c).alias(f"{c}__prev") for c in cols])
        out = out.join(prev, on="image", how="left").with_columns(
            *[pl.when(pl.col("__frozen") & pl.col("title__prev").is_not_null()).then(pl.col(f"{c}__prev"))
              .otherwise(pl.col(c)).alias(c) for c in cols if c in out.columns])
        out = out.drop([f"{c}__prev" for c in cols])
    edit_cols = {c: f"{c}__edit" for c in COPY_COLUMNS}
    out = out.join(edits.rename(edit_cols), on="image", how="left")
    out = out.with_columns(
        *[pl.coalesce(pl.col(f"{c}__edit").cast(out.schema[c]), pl.col(c)).alias(c) for c in COPY_COLUMNS if c in out.columns],
        pl.when(pl.col("__frozen") | pl.any_horizontal([pl.col(f"{c}__edit").is_not_null() for c in COPY_COLUMNS]))
        .then(pl.lit(None, pl.Utf8)).otherwise(pl.col("copy_error")).alias("copy_error")
        if "copy_error" in out.columns else pl.lit(None, pl.Utf8).alias("__unused"),
    ).drop([*edit_cols.values(), "__frozen", "__unused"], strict=False)
    rejects = out.filter(pl.col("review_status") == "rejected").select(
        "image", (pl.lit("rejected by reviewer: ") + pl.col("review_reason").fill_null("no reason given")).alias("reason"))
    return out, rejects
