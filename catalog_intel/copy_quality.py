"""Quality of the marketing copy in a catalog output: schema validity, copy that contradicts
the row's own attributes, title length and SEO-tag format.

Works on our ``catalog.parquet`` (native lists), our ``catalog.csv`` and the original tool's
``reference_output.csv`` (lists joined by "; ", ", " or "," from row to row).

Contradiction rules (:func:`contradictions`), all with word-boundary regexes, longest term
first so that "navy blue" is navy (not blue), "t-shirt" is not "shirt" and "tank top" is
not "top":

* **colour**: the copy names a colour (config ``attributes.color`` values, their phrases and
  :data:`COLOUR_SYNONYMS`) other than the row's colour. Shades listed in :data:`NEAR_COLOURS`
  (navy/blue, beige/white, ...) do not count. For a patterned row (pattern not solid / unknown)
  other colours are allowed as long as the row's colour is named too ("white with navy
  stripes"). A colour directly before a non-top garment ("pair with white jeans") is a
  styling suggestion and ignored. Rows whose colour is unknown or multicolour are not checked.
* **sleeve**: the copy names another sleeve length (config ``attributes.sleeve`` values,
  phrases and :data:`SLEEVE_SYNONYMS`).
* **garment**: the title, style summary or an SEO tag (the fields that say what the product
  *is*; bullets and description may suggest what to wear it with) names another garment type
  (config ``attributes.garment_type`` and :data:`GARMENT_SYNONYMS`; "top" is generic and
  :data:`COMPATIBLE_GARMENTS` are not contradictions), or a garment that is not a top at all
  (:data:`NON_TOP_GARMENTS`: dress, jacket, ...). Without a known garment type only the
  non-top garments are checked.
* **gender**: the copy says men's / male / unisex / boys for a women's item (every row,
  unless a ``gender`` column says the item is not women's).
"""

from __future__ import annotations

import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from .config import UNKNOWN, Config
from .copywriter import COPY_COLUMNS, CatalogCopy
from .storage import read_table

# --------------------------------------------------------------------------- term lists

#: extra words for colour values (only those whose value is in the configured vocabulary are used)
COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "black": ("jet black",),
    "white": ("off-white", "ivory", "snow white"),
    "grey": ("gray", "charcoal", "heather grey", "heather gray"),
    "beige": ("cream", "camel", "taupe", "oatmeal", "ecru"),
    "brown": ("chocolate", "tan", "mocha", "cognac", "rust brown"),
    "red": ("burgundy", "maroon", "crimson", "scarlet", "cherry red", "wine red"),
    "pink": ("fuchsia", "magenta", "blush", "hot pink", "light pink", "dusty pink"),
    "orange": ("burnt orange", "tangerine"),
    "yellow": ("mustard", "lemon yellow"),
    "green": ("olive", "khaki green", "mint", "sage", "emerald", "forest green", "bottle green"),
    "turquoise": ("teal", "aqua"),
    "blue": ("light blue", "sky blue", "cobalt", "royal blue", "denim blue", "dark blue", "powder blue"),
    "navy": ("navy blue", "midnight blue"),
    "purple": ("lilac", "lavender", "violet", "mauve", "plum"),
    "multicolor": ("multicolour", "multicoloured", "multicolored", "multi-colour", "multi-color",
                   "multi-coloured", "multi-colored"),
}
#: pairs of colour values that are shades of one another: naming one for the other is not a contradiction
NEAR_COLOURS: frozenset[frozenset[str]] = frozenset(
    frozenset(p) for p in [("navy", "blue"), ("turquoise", "blue"), ("turquoise", "green"),
                           ("beige", "white"), ("beige", "brown")]
)
SLEEVE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sleeveless": ("sleeveless", "sleeve-less", "no sleeves", "without sleeves", "strapless"),
    "short sleeve": ("short sleeves", "short-sleeved", "cap sleeves", "cap sleeve", "sleeve length: short"),
    "long sleeve": ("long sleeves", "long-sleeved", "full sleeves", "full-length sleeves", "sleeve length: long"),
}
FABRIC_SYNONYMS: dict[str, tuple[str, ...]] = {
    "cotton": ("cotton",), "polyester": ("polyester",), "denim": ("denim",), "silk": ("silk", "silky", "satin"),
    "knit": ("knit", "knitted", "jersey", "wool", "woollen", "cashmere"), "linen": ("linen",),
    "chiffon": ("chiffon",),
}
GARMENT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "t shirt", "tee", "tee shirt", "tshirt"),
    "top": ("top",),
    "blouse": ("blouse",),
    "shirt": ("shirt", "button-down", "button-up"),
    "sweater": ("sweater", "jumper", "pullover", "sweatshirt", "knit sweater"),
    "cardigan": ("cardigan",),
    "hoodie": ("hoodie", "hoody", "hooded sweatshirt", "hooded top"),
    "tank top": ("tank top", "tank", "camisole", "cami", "vest top", "strappy top"),
    "bodysuit": ("bodysuit", "body suit"),
    "polo shirt": ("polo shirt", "polo"),
}
#: garment words that name no particular garment type
GENERIC_GARMENTS: frozenset[str] = frozenset({"top"})
COMPATIBLE_GARMENTS: frozenset[frozenset[str]] = frozenset(
    frozenset(p) for p in [("blouse", "shirt"), ("cardigan", "sweater"), ("hoodie", "sweater"),
                           ("polo shirt", "shirt"), ("polo shirt", "t-shirt")]
)
#: garments that are not tops; in a tops catalog naming one is always a contradiction.
NON_TOP_GARMENTS: tuple[str, ...] = (
    "dress", "jacket", "coat", "blazer", "skirt", "trousers", "pants", "jeans", "shorts", "jumpsuit",
    "leggings", "cardigan coat", "swimsuit", "bikini",
)
_NON_TOP_STYLING = ("jeans", "trousers", "pants", "skirt", "skirts", "shorts", "jacket", "blazer", "coat",
                    "leggings", "shoes", "sneakers", "boots", "heels", "bag", "accessories", "chinos")
#: a garment word followed by one of these is not naming the garment: "dress it up",
#: "polo neck" (a high neck), "shirt collar" (a collared neckline)
_NOT_A_GARMENT_BEFORE = {"non-top:dress": "up|down|it|shirt|code", "polo shirt": "neck|necks|collar",
                         "shirt": "collar|collars"}
#: longest first, so the report quotes "men's" rather than "men"
GENDER_TERMS: tuple[str, ...] = (
    r"gentleman['’]s", r"gentlemen", r"menswear", r"for him", r"men['’]s", r"man['’]s", r"boy['’]s",
    r"unisex", r"mens", r"male", r"boys", r"men",
)
#: fields in which the garment type is checked (see module doc)
GARMENT_FIELDS = ("title", "style_summary", "seo_tags")
TEXT_FIELDS = ("title", "bullet_points", "description", "style_summary", "seo_tags")


def _term_regex(term: str, plural: bool) -> str:
    words = [re.escape(w) for w in re.split(r"[\s\-]+", term.strip()) if w]
    body = r"[\s\-]*".join(words)
    if plural:
        body += r"(?:s|es|d)?"
    return rf"(?<![\w\-]){body}(?![\w\-])"


@dataclass(frozen=True)
class TermSet:
    """(regex, canonical value) pairs, matched case-insensitively, longest span first."""

    patterns: tuple[tuple[re.Pattern, str], ...]

    def find(self, text: str) -> list[tuple[str, str, int, int]]:
        """Non-overlapping (value, matched text, start, end), longest match wins."""
        hits = []
        for rx, value in self.patterns:
            for m in rx.finditer(text):
                hits.append((m.end() - m.start(), m.start(), m.end(), value, m.group(0)))
        hits.sort(key=lambda h: (-h[0], h[1]))
        taken: list[tuple[int, int]] = []
        out = []
        for _, s, e, value, matched in hits:
            if any(s < te and ts < e for ts, te in taken):
                continue
            taken.append((s, e))
            out.append((value, matched, s, e))
        return sorted(out, key=lambda h: h[2])


def _termset(entries: dict[str, set[str]], plural: bool) -> TermSet:
    pats = []
    for value, terms in entries.items():
        for term in sorted(terms):
            pats.append((re.compile(_term_regex(term, plural), re.IGNORECASE), value))
    return TermSet(tuple(pats))


@dataclass(frozen=True)
class Terms:
    colour: TermSet
    sleeve: TermSet
    fabric: TermSet
    garment: TermSet  # values of the vocabulary + "non-top:<word>"
    gender: re.Pattern
    styling_after: re.Pattern  # "<colour> [word] jeans": a styling suggestion


def build_terms(config: Config) -> Terms:
    """Term lists from the configured vocabulary (values and their CLIP phrases) plus synonyms."""
    def entries(attribute: str, synonyms: dict[str, tuple[str, ...]]) -> dict[str, set[str]]:
        spec = config.attributes[attribute]
        out = {}
        for v in spec.values:
            terms = {v, *synonyms.get(v, ())}
            phrase = spec.phrases.get(v)
            if phrase and attribute != "garment_type":  # garment phrases ("jersey top") add nothing
                terms.add(phrase)
            out[v] = terms
        return out

    colour = entries("color", COLOUR_SYNONYMS)
    garment = entries("garment_type", GARMENT_SYNONYMS)
    for word in NON_TOP_GARMENTS:
        garment[f"non-top:{word}"] = {word}
    garment_set = _termset(garment, plural=True)
    garment_set = TermSet(tuple(
        (re.compile(rx.pattern + rf"(?![\s\-]+(?:{_NOT_A_GARMENT_BEFORE[v]})\b)", re.IGNORECASE), v)
        if v in _NOT_A_GARMENT_BEFORE else (rx, v) for rx, v in garment_set.patterns
    ))
    styling = "|".join(re.escape(w) for w in _NON_TOP_STYLING)
    return Terms(
        colour=_termset(colour, plural=False),
        sleeve=_termset(entries("sleeve", SLEEVE_SYNONYMS), plural=True),
        fabric=_termset(entries("fabric", FABRIC_SYNONYMS), plural=False),
        garment=garment_set,
        gender=re.compile(r"(?<![\w\-])(?:" + "|".join(GENDER_TERMS) + r")(?![\w\-])", re.IGNORECASE),
        styling_after=re.compile(r"^[\s\-]+(?:[\w\-]+\s+)?(?:" + styling + r")\b", re.IGNORECASE),
    )


# --------------------------------------------------------------------------- contradictions


def _known(v) -> str | None:
    if v is None:
        return None
    v = str(v).strip().lower()
    return None if v in ("", UNKNOWN) else v


def _field_texts(row: dict, fields) -> list[tuple[str, str]]:
    out = []
    for f in fields:
        v = row.get(f)
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            out.extend((f, str(x)) for x in v if x is not None)
        else:
            out.append((f, str(v)))
    return out


def contradictions(row: dict, terms: Terms) -> list[str]:
    """Reasons the row's copy contradicts its own attributes (empty list: consistent)."""
    reasons: list[str] = []
    texts = _field_texts(row, TEXT_FIELDS)

    colour = _known(row.get("color"))
    if colour and colour != "multicolor":
        pattern = _known(row.get("pattern"))
        named: dict[str, list[str]] = {}
        for field, text in texts:
            for value, matched, _, end in terms.colour.find(text):
                if terms.styling_after.match(text[end:]):
                    continue
                named.setdefault(value, []).append(f"{field}: '{matched}'")
        own_named = any(v == colour or frozenset((v, colour)) in NEAR_COLOURS for v in named)
        others = {v: w for v, w in named.items()
                  if v != colour and frozenset((v, colour)) not in NEAR_COLOURS and v != "multicolor"}
        if others and (pattern in (None, "solid") or not own_named):
            for v, where in others.items():
                reasons.append(f"colour: says {v} ({where[0]}), row colour is {colour}")

    sleeve = _known(row.get("sleeve"))
    if sleeve:
        seen = set()
        for field, text in texts:
            for value, matched, _, _ in terms.sleeve.find(text):
                if value != sleeve and value not in seen:
                    seen.add(value)
                    reasons.append(f"sleeve: says {value} ({field}: '{matched}'), row sleeve is {sleeve}")

    garment = _known(row.get("garment_type"))
    seen = set()
    for field, text in _field_texts(row, GARMENT_FIELDS):
        for value, matched, _, _ in terms.garment.find(text):
            if value in seen:
                continue
            if value.startswith("non-top:"):
                seen.add(value)
                reasons.append(f"garment: says {value[8:]} ({field}: '{matched}'), not a top")
            elif garment and value != garment and value not in GENERIC_GARMENTS \
                    and frozenset((value, garment)) not in COMPATIBLE_GARMENTS:
                seen.add(value)
                reasons.append(f"garment: says {value} ({field}: '{matched}'), row garment type is {garment}")

    gender = _known(row.get("gender"))
    if gender is None or gender in ("women", "woman", "female", "ladies", "womens", "women's"):
        for field, text in texts:
            m = terms.gender.search(text)
            if m:
                reasons.append(f"gender: says '{m.group(0)}' ({field}) for a women's item")
                break
    return reasons


def unsupported_claims(row: dict, terms: Terms) -> list[str]:
    """Facts the copy asserts that its attributes do not support: a colour, sleeve
    length or material named while that attribute is unknown (or absent). These are
    invented, not contradicted, so contradictions() cannot see them."""
    reasons = []
    texts = _field_texts(row, TEXT_FIELDS)
    for attribute, termset in (("color", terms.colour), ("sleeve", terms.sleeve), ("fabric", terms.fabric)):
        if _known(row.get(attribute)) is not None:
            continue
        for field, text in texts:
            found = next(iter(termset.find(text)), None)
            if found:
                reasons.append(f"{attribute}: names {found[0]} ({field}: '{found[1]}') but {attribute} is not known")
                break
    return reasons


def copy_check(config: Config):
    """The same rules as a gate for fresh copy (copywriter.describe(check=...)):
    contradictions of the attributes and facts they do not give."""
    terms = build_terms(config)

    def check(attributes: dict, copy) -> tuple[list[str], list[str]]:
        row = {**attributes, **copy.model_dump()}
        return contradictions(row, terms), unsupported_claims(row, terms)

    return check


# --------------------------------------------------------------------------- reading outputs


class CopyQualityError(ValueError):
    """An output file cannot be assessed; the message names the file and what to do."""


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
    invented, invented_kinds = flag(unsupported_claims)

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
        "unsupported_claims": {"rows": len(invented), "share": _share(len(invented), m),
                               "by_kind": {k: invented_kinds.get(k, 0) for k in ("color", "sleeve", "fabric")},
                               "rows_flagged": invented},
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
        ("names unknown attribute", lambda r: r["unsupported_claims"]["share"], "pct"),
        ("  colour", lambda r: r["unsupported_claims"]["by_kind"]["color"], "raw"),
        ("  sleeve", lambda r: r["unsupported_claims"]["by_kind"]["sleeve"], "raw"),
        ("  fabric", lambda r: r["unsupported_claims"]["by_kind"]["fabric"], "raw"),
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
    return "\n".join(lines)
