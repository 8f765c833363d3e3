"""Quality of the marketing copy in a catalog output: schema validity, copy that contradicts
the row's own attributes, title length and SEO-tag format.

Works on our ``catalog.parquet`` (native lists), our ``catalog.csv`` and the original tool's
``reference_output.csv`` (lists joined by "; ", ", " or "," from row to row).
The claim rules live in :mod:`catalog_intel.copywriting.grounding`.
"""

from __future__ import annotations

import os
import re
import statistics
from collections import Counter
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from catalog_intel.copywriting.copywriter import CatalogCopy
from catalog_intel.copywriting.grounding import (CLAIM_KINDS, FORM_KINDS, Terms, build_terms, claims, contradictions,
                                                 facts_text, form_problems, instruction_runs, norm_text)
from catalog_intel.copywriting.grounding.phrases import borrowed, stock_figures
from catalog_intel.errors import CopyQualityError
from catalog_intel.io.filesystem import read_table
from catalog_intel.schemas import ATTRIBUTE_ORDER, COPY_COLUMNS
from catalog_intel.settings import Config

# --------------------------------------------------------------------------- reading outputs


_FORMULA_QUOTE = r"^'([=+\-@\t\r])"


def split_list_cell(cell: str | None, sep: str = "auto") -> tuple[list[str] | None, str]:
    """One CSV list cell -> (items, separator seen). ``auto``: ";" when the cell has one, else
    ",", else a single item; the separator seen is reported exactly ("; ", ";", ", ", ",",
    "; and ," when both occur, "none")."""
    if cell is None:
        return None, "empty"
    text = cell.strip()
    if not text:
        return [], "empty"
    if sep != "auto":
        return [x.strip() for x in text.split(sep) if x.strip()], (sep if sep in text else "none")
    if ";" in text:
        kind = "; " if re.fullmatch(r"[^;]*(?:; [^;]*)+", text) else ";"
        if "," in text:
            kind = f"{kind.strip()} and ,"
        return [x.strip() for x in text.split(";") if x.strip()], kind
    if "," in text:
        kind = ", " if re.fullmatch(r"[^,]*(?:, [^,]*)+", text) else ","
        return [x.strip() for x in text.split(",") if x.strip()], kind
    return [text], "none"


def load_output(path: str | os.PathLike, list_sep: str = "auto") -> tuple[pl.DataFrame, dict]:
    """A catalog output -> (frame with list columns as lists, separators seen per list column)."""
    p = Path(path)
    if not p.is_file():
        raise CopyQualityError(f"output file not found: {p} (pass OUT_DIR/catalog.parquet, catalog.csv or "
                               "../shared/data/seed-samples/reference_output.csv)")
    try:
        frame = read_table(str(p))
    except ValueError as exc:
        raise CopyQualityError(f"{p}: expected a .parquet or .csv catalog ({exc})") from None
    missing = [c for c in COPY_COLUMNS if c not in frame.columns]
    if missing:
        raise CopyQualityError(f"{p}: copy columns missing: {missing} (columns: {', '.join(frame.columns)}); "
                               "pass a catalog output with title, bullet_points, description, style_summary, seo_tags")
    separators: dict[str, dict[str, int]] = {}
    if p.suffix.lower() != ".parquet":
        frame = frame.with_columns(
            pl.col(c).str.replace(_FORMULA_QUOTE, "$1") for c, t in frame.schema.items() if t == pl.Utf8
        )
        for col in ("bullet_points", "seo_tags"):
            split = [split_list_cell(v, list_sep) for v in frame[col].to_list()]
            separators[col] = dict(Counter(k for _, k in split).most_common())
            frame = frame.with_columns(pl.Series(col, [items for items, _ in split], dtype=pl.List(pl.Utf8)))
    else:
        for col in ("bullet_points", "seo_tags"):
            if not isinstance(frame.schema[col], pl.List):
                raise CopyQualityError(f"{p}: column '{col}' should be a list of strings, is {frame.schema[col]}")
            separators[col] = {"native list": int(frame[col].is_not_null().sum())}
    return frame, separators


# --------------------------------------------------------------------------- metrics


def _schema_problem(row: dict, title_max_words: int) -> str | None:
    try:
        copy = CatalogCopy.model_validate({c: row.get(c) for c in COPY_COLUMNS})
    except ValidationError as exc:
        e = exc.errors()[0]
        return f"{'.'.join(str(x) for x in e['loc'][:1])}: {e['msg']}"
    if len(copy.title.split()) > title_max_words:
        return f"title: over {title_max_words} words"
    return None


def _share(n: int, d: int) -> float | None:
    return n / d if d else None


def copy_quality(frame: pl.DataFrame, config: Config, name: str = "output",
                 separators: dict | None = None, terms: Terms | None = None) -> dict:
    """All figures for one output frame (list columns as lists). Pure: frame in, dict out."""
    terms = terms or build_terms(config)
    limit = config.validation.title_max_words
    lo, hi = config.validation.seo_tags_min, config.validation.seo_tags_max
    rows = frame.to_dicts()
    with_copy = [r for r in rows if any(r.get(c) not in (None, "", []) for c in COPY_COLUMNS)]
    n, m = len(rows), len(with_copy)

    problems = [_schema_problem(r, limit) for r in with_copy]
    schema_reasons = Counter(p for p in problems if p)

    def flag(rule) -> tuple[list[dict], Counter]:
        rows_flagged, kinds = [], Counter()
        for r in with_copy:
            reasons = rule(r, terms)
            if reasons:
                rows_flagged.append({"image": r.get("image"), "reasons": reasons})
                kinds.update({reason.split(":", 1)[0] for reason in reasons})
        return rows_flagged, kinds

    flagged, kinds = flag(contradictions)
    # free-text facts, and the supplier's own attribute values (<attr>_fact, "embroidered" included)
    free = [c for c in (*config.facts.free_text, *(f"{a}_fact" for a in ATTRIBUTE_ORDER)) if c in frame.columns]
    invented, invented_kinds = flag(lambda r, t: [c.reason for c in claims(r, t, facts_text(r, free))])
    echo = instruction_runs(config.llm.system_prompt, config.llm.user_prompt)  # our prompts; field names for any
    form = {id(r): form_problems(r, None, echo) for r in with_copy}
    form_rows = {k: sum(any(p.kind == k for p in form[id(r)]) for r in with_copy) for k in FORM_KINDS}
    descriptions = Counter(norm_text(r["description"]) for r in with_copy if r.get("description"))

    words = [len(str(r["title"]).split()) for r in with_copy if r.get("title")]
    tags = [r["seo_tags"] for r in with_copy if r.get("seo_tags") is not None]
    counts = Counter(len(t) for t in tags)
    bullets = Counter(len(r["bullet_points"]) for r in with_copy if r.get("bullet_points") is not None)

    def norm(t: str) -> str:
        return re.sub(r"\s+", " ", t.strip().lower())

    return {
        "file": name,
        "rows": n,
        "rows_with_copy": m,
        "schema_valid": {"rows": sum(p is None for p in problems), "share": _share(sum(p is None for p in problems), m),
                         "share_of_all_rows": _share(sum(p is None for p in problems), n),
                         "problems": dict(schema_reasons.most_common())},
        "contradictions": {"rows": len(flagged), "share": _share(len(flagged), m),
                           "by_kind": {k: kinds.get(k, 0) for k in ("colour", "sleeve", "garment", "gender")},
                           "rows_flagged": flagged},
        "ungrounded_claims": {"rows": len(invented), "share": _share(len(invented), m),
                              "by_kind": {k: invented_kinds.get(k, 0) for k in CLAIM_KINDS},
                              "free_fact_columns": free, "rows_flagged": invented},
        "form": {
            "truncated_fields": sum(p.kind == "truncated" for r in with_copy for p in form[id(r)]),
            "rows": form_rows,
            "other_script_rows": invented_kinds.get("script", 0),
            "duplicate_descriptions_share": _share(sum(k for k in descriptions.values() if k > 1), m),
        },
        "style": {**{k: v for k, v in stock_figures(with_copy).items()},
                  "example_sentences": sum(len(borrowed(r, config.llm.example.answer)) for r in with_copy)
                  if config.llm.example.answer else 0},
        "title_words": {
            "limit": limit,
            "mean": statistics.fmean(words) if words else None,
            "median": statistics.median(words) if words else None,
            "max": max(words) if words else None,
            "over_limit_share": _share(sum(w > limit for w in words), len(words)),
        },
        "seo_tags": {
            "count_distribution": {str(k): v for k, v in sorted(counts.items())},
            "range": [lo, hi],
            "within_range_share": _share(sum(lo <= len(t) <= hi for t in tags), len(tags)),
            "all_lowercase_share": _share(sum(all(x == x.lower() for x in t) for t in tags), len(tags)),
            "no_duplicates_share": _share(sum(len({norm(x) for x in t}) == len(t) for t in tags), len(tags)),
            "separators": (separators or {}).get("seo_tags", {}),
        },
        "bullet_points": {
            "count_distribution": {str(k): v for k, v in sorted(bullets.items())},
            "separators": (separators or {}).get("bullet_points", {}),
        },
    }


def assess_file(path: str | os.PathLike, config: Config, list_sep: str = "auto") -> dict:
    frame, seps = load_output(path, list_sep)
    return copy_quality(frame, config, name=str(path), separators=seps)


# --------------------------------------------------------------------------- report


def _fmt(v, kind: str = "pct") -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{100 * v:.1f}%"
    if kind == "num":
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    return str(v)


def _seps(d: dict) -> str:
    total = sum(d.values())
    if not total:
        return "-"
    named = {"none": "none", "empty": "empty", "native list": "native list"}
    return ", ".join(f"{named.get(k, repr(k))} {100 * v / total:.0f}%" for k, v in d.items())


def format_report(results: list[dict]) -> str:
    """Side by side: one column per result."""
    metrics = [
        ("rows", lambda r: r["rows"], "raw"),
        ("rows with copy", lambda r: r["rows_with_copy"], "raw"),
        ("schema-valid", lambda r: r["schema_valid"]["share"], "pct"),
        ("contradicts attributes", lambda r: r["contradictions"]["share"], "pct"),
        ("  colour", lambda r: r["contradictions"]["by_kind"]["colour"], "raw"),
        ("  sleeve", lambda r: r["contradictions"]["by_kind"]["sleeve"], "raw"),
        ("  garment", lambda r: r["contradictions"]["by_kind"]["garment"], "raw"),
        ("  gender", lambda r: r["contradictions"]["by_kind"]["gender"], "raw"),
        ("ungrounded claims (rows)", lambda r: r["ungrounded_claims"]["share"], "pct"),
        *((f"  {k}", (lambda k: lambda r: r["ungrounded_claims"]["by_kind"][k])(k), "raw") for k in CLAIM_KINDS),
        ("truncated fields", lambda r: r["form"]["truncated_fields"], "raw"),
        ("rows with duplicate SEO tags", lambda r: r["form"]["rows"]["duplicate_tag"], "raw"),
        ("rows with duplicate bullets", lambda r: r["form"]["rows"]["duplicate_bullet"], "raw"),
        ("rows with other-script words", lambda r: r["form"]["other_script_rows"], "raw"),
        ("summary repeats description", lambda r: r["form"]["rows"]["summary_repeats"], "raw"),
        ("summary over one sentence", lambda r: r["form"]["rows"]["summary_sentences"], "raw"),
        ("descriptions shared by rows", lambda r: r["form"]["duplicate_descriptions_share"], "pct"),
        ("sentences per description", lambda r: r["style"]["sentences_per_description"], "num"),
        ("sentences with a stock phrase", lambda r: r["style"]["stock_sentence_share"], "pct"),
        ("  stock phrases (3+ products)", lambda r: len(r["style"]["stock_phrases"]), "raw"),
        ("sentences from the example", lambda r: r["style"]["example_sentences"], "raw"),
        ("title words mean", lambda r: r["title_words"]["mean"], "num"),
        ("title words median", lambda r: r["title_words"]["median"], "num"),
        ("title words max", lambda r: r["title_words"]["max"], "num"),
        ("title over limit", lambda r: r["title_words"]["over_limit_share"], "pct"),
        ("SEO tags within range", lambda r: r["seo_tags"]["within_range_share"], "pct"),
        ("SEO tags all lowercase", lambda r: r["seo_tags"]["all_lowercase_share"], "pct"),
        ("SEO tags no duplicates", lambda r: r["seo_tags"]["no_duplicates_share"], "pct"),
        ("SEO tag count: rows", lambda r: ", ".join(f"{k}:{v}" for k, v in r["seo_tags"]["count_distribution"].items()), "raw"),
        ("SEO tag separators", lambda r: _seps(r["seo_tags"]["separators"]), "raw"),
        ("bullet count: rows", lambda r: ", ".join(f"{k}:{v}" for k, v in r["bullet_points"]["count_distribution"].items()), "raw"),
        ("bullet separators", lambda r: _seps(r["bullet_points"]["separators"]), "raw"),
    ]
    cells = [[_fmt(get(r), kind) for r in results] for _, get, kind in metrics]
    width = [max(len(Path(r["file"]).name), *(len(c[i]) for c in cells)) for i, r in enumerate(results)]
    label_w = max(len(m[0]) for m in metrics)
    lines = [" " * label_w + "  " + "  ".join(f"{Path(r['file']).name:<{w}s}" for r, w in zip(results, width))]
    for (label, _, _), row in zip(metrics, cells):
        lines.append(f"{label:<{label_w}s}  " + "  ".join(f"{c:<{w}s}" for c, w in zip(row, width)))
    for r in results:
        lines.append("")
        lines.append(f"{r['file']}:")
        limit = r["title_words"]["limit"]
        lines.append(f"  title limit {limit} words; SEO tag range {r['seo_tags']['range'][0]}-{r['seo_tags']['range'][1]}")
        for problem, k in list(r["schema_valid"]["problems"].items())[:6]:
            lines.append(f"  schema: {k:4d} x {problem}")
        for item in r["contradictions"]["rows_flagged"][:8]:
            lines.append(f"  {item['image']}: " + " | ".join(item["reasons"]))
        more = len(r["contradictions"]["rows_flagged"]) - 8
        if more > 0:
            lines.append(f"  ... {more} more rows with contradictions (all in --json)")
        for item in r["ungrounded_claims"]["rows_flagged"][:8]:
            lines.append(f"  {item['image']}: " + " | ".join(item["reasons"]))
        more = len(r["ungrounded_claims"]["rows_flagged"]) - 8
        if more > 0:
            lines.append(f"  ... {more} more rows with ungrounded claims (all in --json)")
    return "\n".join(lines)
