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

from catalog_intel.errors import EditsError
from catalog_intel.io.filesystem import isfile, read_parquet
from catalog_intel.io.layout import OutputLayout
from catalog_intel.pipeline.facts import merge_facts, normalise, read_facts_file, split_facts
from catalog_intel.schemas import ATTRIBUTE_ORDER, COPY_COLUMNS
from catalog_intel.settings import Config

REVIEW_STATUSES = ("approved", "edited", "rejected")
LIST_COPY = ("bullet_points", "seo_tags")
LIST_SEPARATOR = ";"


REVIEW_COLUMNS = (*COPY_COLUMNS, "review_status", "review_reason")


def is_review_file(columns: list[str]) -> bool:
    """A facts file with copy columns or a review status is a reviewer's edits file."""
    return any(c in REVIEW_COLUMNS for c in columns)


def read_edits(path: str | Path, frame: pl.DataFrame | None = None) -> pl.DataFrame:
    """The edits file as a frame: image, product_id, the attribute columns it has (raw text, as
    facts.py reads them), copy columns (null = no edit; list columns as lists), review_status,
    review_reason. Other fact columns (free text) are facts.py's and left out here. `frame`: the
    file already read (`path` then only names it in errors)."""
    frame = read_facts_file(path) if frame is None else frame
    if "image" not in frame.columns:
        raise EditsError(f"{path}: an edits file is keyed by 'image' (columns: {', '.join(frame.columns)}); "
                         "use the file the review report's 'Download edits' writes")
    for c in ("product_id", *REVIEW_COLUMNS):
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(c))
    for n, (image, status) in enumerate(zip(frame["image"], frame["review_status"]), 2):  # line 1: header
        if not image:
            raise EditsError(f"{path}, line {n}: empty image; every edit names its image")
        if status is not None and status not in REVIEW_STATUSES:
            raise EditsError(f"{path}, line {n} ({image}): review_status {status!r} is not one of "
                             f"{', '.join(REVIEW_STATUSES)}; fix the cell or leave it blank")
    lists = [pl.col(c).str.split(LIST_SEPARATOR).list.eval(pl.element().str.strip_chars())
             .list.eval(pl.element().filter(pl.element() != "")).alias(c) for c in LIST_COPY]
    attrs = [a for a in ATTRIBUTE_ORDER if a in frame.columns]
    return frame.with_columns(lists).select("image", "product_id", *attrs, *REVIEW_COLUMNS)


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

    def strip_columns(self, inventory: pl.DataFrame) -> pl.DataFrame:
        """The inventory without the copy and review columns facts.py attached from the edits file
        (the review applies them after the copy step, see apply_review)."""
        return inventory.drop([c for c in REVIEW_COLUMNS if c in inventory.columns])


def load_plan(facts_path: str | Path, out_dir: str | Path) -> ReviewPlan | None:
    """The reviewer's edits (None when the facts file is not an edits file) plus the previous
    run's catalog in `out_dir`, read before this run replaces it."""
    frame = read_facts_file(facts_path)
    if not is_review_file(frame.columns):
        return None
    edits = read_edits(facts_path, frame)
    previous_path = OutputLayout(out_dir).catalog_parquet  # a local folder or a URL
    previous = read_parquet(previous_path) if isfile(previous_path) else None
    return ReviewPlan(edits, previous)


def lock_attributes(attributes: pl.DataFrame, inventory: pl.DataFrame, plan: ReviewPlan,
                    config: Config) -> pl.DataFrame:
    """Published attributes (after facts.merge_facts) with reviewed rows' values locked: the
    previous run's value (what the reviewer saw and accepted), then the reviewer's edit over it,
    whatever the facts policy. A locked value gets confidence 1.0, source `facts`, and no
    `conflicts` entry (the reviewer settled it)."""
    reviewed = pl.col("review_status").is_in(["approved", "edited"])
    edits = plan._by_sha(inventory)
    names = [a for a in ATTRIBUTE_ORDER if a in attributes.columns]
    edits = edits.with_columns(  # reviewer values through the same synonym table as any fact
        pl.col(a).map_elements(lambda v, a=a: normalise(v, a, config), return_dtype=pl.Utf8)
        for a in names if a in edits.columns)
    edits = edits.filter(reviewed | pl.any_horizontal([pl.col(a).is_not_null() for a in names if a in edits.columns]
                                                      or [pl.lit(False)]))
    if edits.is_empty():
        return attributes
    if plan.previous is not None:
        seen = plan.previous.select("image", *[pl.col(a).alias(f"{a}__seen") for a in names if a in plan.previous.columns])
        edits = edits.join(seen, on="image", how="left")
    none = pl.lit(None, pl.Utf8)
    locked = edits.select("sha256", *[
        pl.coalesce(pl.col(a) if a in edits.columns else none,
                    pl.when(reviewed).then(pl.col(f"{a}__seen") if f"{a}__seen" in edits.columns else none))
        .alias(f"{a}__locked") for a in names])
    out = attributes.join(locked, on="sha256", how="left")
    is_locked = {a: pl.col(f"{a}__locked").is_not_null() for a in names}
    out = out.with_columns(
        *[pl.coalesce(f"{a}__locked", a).alias(a) for a in names],
        *[pl.when(is_locked[a]).then(1.0).otherwise(pl.col(f"{a}_confidence"))
          .cast(attributes.schema[f"{a}_confidence"]).alias(f"{a}_confidence") for a in names
          if f"{a}_confidence" in attributes.columns],
        *[pl.when(is_locked[a]).then(pl.lit("facts")).otherwise(pl.col(f"{a}_source")).alias(f"{a}_source")
          for a in names if f"{a}_source" in attributes.columns],
    )
    if "conflicts" in out.columns:
        settled = pl.concat_list([pl.when(is_locked[a]).then(pl.lit(f"{a}: ")).otherwise(pl.lit("\x00"))
                                  for a in names])
        out = out.with_columns(pl.struct("conflicts", settled.alias("settled")).map_elements(
            lambda r: [c for c in (r["conflicts"] or []) if not any(c.startswith(p) for p in r["settled"])],
            return_dtype=pl.List(pl.Utf8)).alias("conflicts"))
    return out.drop([f"{a}__locked" for a in names])


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


@dataclass(frozen=True)
class RunFacts:
    """A run's catalog facts and reviewer edits, applied by the flow in pipeline order:
    facts over the model attributes (reviewed values locked), copy only where it is needed,
    then the review over the assembled rows."""

    inventory: pl.DataFrame  # fact columns renamed <attr>_fact, edit columns taken out
    known: pl.DataFrame      # [sha256, <attr>_fact..., free-text facts]
    plan: ReviewPlan | None

    @classmethod
    def load(cls, inventory: pl.DataFrame, config: Config, out_dir: str | Path) -> "RunFacts":
        facts_file = config.facts.file or None
        plan = load_plan(facts_file, out_dir) if facts_file else None
        inventory, known = split_facts(inventory, config, facts_file, keep=REVIEW_COLUMNS if plan else ())
        return cls(plan.strip_columns(inventory) if plan is not None else inventory, known, plan)

    def attributes(self, attributes: pl.DataFrame | None, config: Config) -> pl.DataFrame | None:
        if attributes is None:
            return None
        merged = merge_facts(attributes, self.known, config)
        return lock_attributes(merged, self.inventory, self.plan, config) if self.plan is not None else merged

    def needing_copy(self, attributes: pl.DataFrame | None) -> pl.DataFrame | None:
        if attributes is None or self.plan is None:
            return attributes
        return needs_copy(attributes, self.inventory, self.plan)

    def review(self, table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        if self.plan is None or table.is_empty():
            return table, pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8})
        return apply_review(table, self.plan)
