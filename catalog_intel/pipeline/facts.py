"""Catalog facts: what the supplier already knows about a product, merged over the models.

A manifest column (or a column of a ``--facts FILE``, keyed by ``image``) named like an
attribute holds supplier values; columns named in ``facts.free_text`` (material, brand, care,
sizes, ...) are facts the LLM may state. A blank cell is no fact. Values are normalised into
the vocabulary through ``facts.synonyms``; one that maps to nothing is kept as a free fact and
reported, never dropped. Per attribute, ``facts.policy`` decides what is published:

* ``trust_facts``: the fact (confidence 1.0, source ``facts``); the model fills only blanks;
* ``trust_model``: the model's value; a fact fills only what the model left unknown;
* ``flag_only``: the model's value; the fact is only compared.

A confident model (``facts.conflict_confidence``) that disagrees with a fact adds a
``conflicts`` entry, which flags the row for review. The supplier's note (the ``details`` free
fact) is read for attribute values too (grounding.notes): where no column gives a value, the
note's counts as a fact, with source ``note``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

import polars as pl

from catalog_intel.copywriting.grounding.notes import NOTE_FACT, note_values
from catalog_intel.copywriting.grounding.terms import build_terms
from catalog_intel.errors import FactsError
from catalog_intel.io.csv_cells import restore_formulas
from catalog_intel.io.filesystem import read_table
from catalog_intel.schemas import ATTRIBUTE_ORDER, COPY_COLUMNS, COPY_FRAME_SCHEMA, UNKNOWN
from catalog_intel.settings import Config

SOURCES = ("facts", "note", "clip", "pixels", "ensemble", "head")
SUPPLIER_PREFIX = "supplier_"
# Columns the pipeline generates (besides the attributes and the copy): run metadata, the colour
# opinions, facts, search and review. A supplier column by one of these names is kept apart.
GENERATED_COLUMNS = frozenset({
    *(c for c in COPY_FRAME_SCHEMA if c != "sha256"), "clip_model_id", "llm_model", "prompt_version", "run_id", "processed_at",
    "color_clip", "color_pixels", "conflicts", "facts_json", "similar_images", "similar_scores",
    "group_id", "group_size", "duplicate_of", "needs_review", "review_status", "review_reason", "reject_reason"})
_GENERATED_FORM = re.compile(r".+_(confidence|margin|raw|source|fact)|(%s|copy_warnings)_[a-z]{2}(-[a-z]{2})?"
                             % "|".join(COPY_COLUMNS))
log = logging.getLogger(__name__)


def is_generated_column(name: str) -> bool:
    """True for a name the pipeline writes into catalog.parquet / catalog.csv itself (the
    attribute columns excepted: a supplier's `color` is a fact)."""
    return name in GENERATED_COLUMNS or bool(_GENERATED_FORM.fullmatch(name))


def keep_apart(frame: pl.DataFrame, keep: tuple[str, ...] = ()) -> tuple[pl.DataFrame, list[str]]:
    """Supplier columns named like a generated column -> ``supplier_<name>``, so that they never
    take an output column's place; returns the frame and the renamed names. `keep`: names to leave."""
    clash = [c for c in frame.columns if is_generated_column(c) and c not in keep]
    taken = [f"{SUPPLIER_PREFIX}{c}" for c in clash if f"{SUPPLIER_PREFIX}{c}" in frame.columns]
    if taken:
        raise FactsError(f"columns {', '.join(taken)} and the output columns they would be renamed from are both "
                         "in the input; rename one of them")
    return frame.rename({c: f"{SUPPLIER_PREFIX}{c}" for c in clash}), clash


def _norm(value) -> str:
    return re.sub(r"\s+", " ", str(value).strip().lower())


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or not str(value).strip()


def normalise(value, attribute: str, config: Config) -> str | None:
    """A supplier value -> the vocabulary value it means, or None when nothing maps."""
    v = _norm(value)
    spec = config.attributes[attribute]
    if v in spec.values:
        return v
    synonyms = {_norm(k): t for k, t in config.facts.synonyms.get(attribute, {}).items()}
    if v in synonyms and synonyms[v] in spec.values:
        return synonyms[v]
    by_phrase = {_norm(p): val for val, p in spec.phrases.items()}
    return by_phrase.get(v)


def read_facts_file(path: str | os.PathLike) -> pl.DataFrame:
    """A CSV/Parquet facts file keyed by ``image`` (or ``product_id``), every cell as text."""
    p = Path(path)
    if not p.is_file():
        raise FactsError(f"facts file not found: {p} (give a CSV or Parquet file with an 'image' column)")
    table = read_table(str(p))
    if "image" not in table.columns and "product_id" not in table.columns:
        raise FactsError(f"facts file {p} has no 'image' or 'product_id' column (columns: {', '.join(table.columns)})")
    key = "image" if "image" in table.columns else "product_id"
    dupes = table.filter(pl.col(key).is_duplicated())[key].unique().to_list()
    if dupes:
        raise FactsError(f"facts file {p}: {key} values occur more than once: {dupes[:5]}; keep one row per {key}")
    table = restore_formulas(table.with_columns(pl.all().cast(pl.Utf8)))  # edits.csv is neutralised like ours
    return table.with_columns(  # a blank cell is no fact
        pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c)).alias(c)
        for c in table.columns if c not in ("image", "product_id"))


def attach_facts(inventory: pl.DataFrame, facts: pl.DataFrame | None) -> pl.DataFrame:
    """The inventory with a facts file's columns; its cells win over the manifest's, blanks do not."""
    if facts is None:
        return inventory
    key = "image" if "image" in facts.columns else "product_id"
    cols = [c for c in facts.columns if c not in ("image", "product_id", "path", "sha256")]
    joined = inventory.join(facts.select(key, *cols), on=key, how="left", suffix="__file")
    for c in cols:
        if f"{c}__file" in joined.columns:
            joined = joined.with_columns(pl.coalesce(pl.col(f"{c}__file"), pl.col(c).cast(pl.Utf8)).alias(c)) \
                .drop(f"{c}__file")
    return joined


def split_facts(inventory: pl.DataFrame, config: Config, facts_file: str | None = None,
                keep: tuple[str, ...] = ()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Inventory -> (inventory with each attribute column renamed ``<attr>_fact``, the raw
    supplier value; facts per sha256: [sha256, <attr>_fact..., free-text fact columns]).
    Manifest and facts-file columns named like a generated column become ``supplier_<name>``
    (`keep`: the facts file's columns to leave, a reviewer's edits)."""
    inventory, renamed = keep_apart(inventory)
    facts = read_facts_file(facts_file) if facts_file else None
    if facts is not None:
        facts, renamed_in_file = keep_apart(facts, keep)
        renamed += [c for c in renamed_in_file if c not in renamed]
    if renamed:
        log.warning("input columns named like output columns kept as %s (list one in facts.free_text to give it "
                    "to the copy as a fact)", ", ".join(f"{c} -> {SUPPLIER_PREFIX}{c}" for c in renamed))
    inventory = attach_facts(inventory, facts)
    attrs = [a for a in ATTRIBUTE_ORDER if a in inventory.columns]
    inventory = inventory.rename({a: f"{a}_fact" for a in attrs}).with_columns(
        pl.col(f"{a}_fact").cast(pl.Utf8) for a in attrs)
    free = [c for c in config.facts.free_text if c in inventory.columns]
    facts = inventory.select("sha256", *[f"{a}_fact" for a in attrs], *[pl.col(c).cast(pl.Utf8) for c in free]) \
        .unique(subset="sha256", keep="first", maintain_order=True)
    return inventory, facts


def merge_facts(attributes: pl.DataFrame, facts: pl.DataFrame | None, config: Config) -> pl.DataFrame:
    """Model attributes [sha256, <attr>, <attr>_confidence, ...] -> the published attributes, plus
    ``<attr>_source``, ``conflicts`` (list) and ``facts_json`` (the facts the LLM may state)."""
    out = attributes
    for a in ATTRIBUTE_ORDER:  # the step that produced a value names itself; a model's default
        if a in out.columns and f"{a}_source" not in out.columns:
            model = config.color.policy if a == "color" else "clip"
            out = out.with_columns(pl.when(pl.col(a) == UNKNOWN).then(None).otherwise(pl.lit(model)).alias(f"{a}_source"))
    if facts is None or facts.is_empty() or facts.width == 1:  # no fact columns at all
        return out.with_columns(pl.lit([], dtype=pl.List(pl.Utf8)).alias("conflicts"),
                                pl.lit(None, dtype=pl.Utf8).alias("facts_json"))
    rows = out.join(facts, on="sha256", how="left").to_dicts()
    free = [c for c in config.facts.free_text if c in facts.columns]
    terms = build_terms(config) if NOTE_FACT in free else None
    updates = [_merge_row(r, free, config, terms) for r in rows]
    for col, dtype in (("conflicts", pl.List(pl.Utf8)), ("facts_json", pl.Utf8)):
        out = out.with_columns(pl.Series(col, [u.pop(col) for u in updates], dtype=dtype))
    for a in ATTRIBUTE_ORDER:
        if a in out.columns:
            out = out.with_columns(pl.Series(a, [u[a] for u in updates], dtype=pl.Utf8),
                                   pl.Series(f"{a}_confidence", [u[f"{a}_confidence"] for u in updates],
                                             dtype=out.schema[f"{a}_confidence"]),
                                   pl.Series(f"{a}_source", [u[f"{a}_source"] for u in updates], dtype=pl.Utf8))
    return out


def _merge_row(r: dict, free: list[str], config: Config, terms=None) -> dict:
    """`terms` (grounding.Terms): read the note (the ``details`` fact) for attribute values too,
    which count as facts (source ``note``) where no column gives one."""
    out: dict = {"conflicts": []}
    told: dict[str, str] = {}
    note = {} if terms is None or _blank(r.get(NOTE_FACT)) else note_values(str(r[NOTE_FACT]), terms)
    for a in ATTRIBUTE_ORDER:
        if a not in r:
            continue
        value, conf, source = r[a], r.get(f"{a}_confidence"), r.get(f"{a}_source")
        raw = r.get(f"{a}_fact")
        fact = None if _blank(raw) else normalise(raw, a, config)
        if not _blank(raw) and fact is None:
            told[a] = str(raw).strip()  # not in the vocabulary: a free fact, reported
        fact_source = "facts"
        if fact is None and a in note:
            fact, fact_source = note[a], "note"
        policy = config.facts.policy_for(a)
        model_known = value not in (None, UNKNOWN)
        if fact is not None and model_known and value != fact and (conf or 0) >= config.facts.conflict_confidence:
            said = "fact" if fact_source == "facts" else "note"
            out["conflicts"].append(f"{a}: {said} says {fact}, {source or 'model'} says {value} ({conf:.2f})")
        if fact is not None and (policy == "trust_facts" or (policy == "trust_model" and not model_known)):
            value, conf, source = fact, 1.0, fact_source
        out.update({a: value, f"{a}_confidence": conf, f"{a}_source": source})
    for c in free:
        if not _blank(r.get(c)):
            told[c] = str(r[c]).strip()
    out["facts_json"] = json.dumps(told, sort_keys=True) if told else None
    return out


def unmapped_facts(inventory: pl.DataFrame, config: Config) -> dict[str, dict[str, int]]:
    """Per attribute, the supplier values that map to no vocabulary value, with their counts."""
    out = {}
    for a in ATTRIBUTE_ORDER:
        col = f"{a}_fact"
        if col in inventory.columns:
            bad = Counter(str(v).strip() for v in inventory[col].to_list()
                          if not _blank(v) and normalise(v, a, config) is None)
            if bad:
                out[a] = dict(bad.most_common())
    return out


def completeness(inventory: pl.DataFrame, table: pl.DataFrame, config: Config) -> dict[str, dict]:
    """Per attribute, the share of products known in the input (a fact that maps into the
    vocabulary) and in the output (a published value that is not unknown)."""
    out = {}
    for a in ATTRIBUTE_ORDER:
        col = f"{a}_fact"
        known_in = sum(1 for v in inventory[col].to_list() if not _blank(v) and normalise(v, a, config)) \
            if col in inventory.columns else 0
        known_out = int((table[a] != UNKNOWN).sum()) if a in table.columns else 0
        out[a] = {"input": known_in / inventory.height if inventory.height else None,
                  "output": known_out / table.height if table.height else None}
    return out
