"""Claims: every claim the copy makes must be backed by a known attribute or a catalog fact.

:func:`claims` finds, sentence by sentence, what the copy asserts
(colour, garment type, sleeve, neckline, pattern, material/fabric, fit, sizes, seasons and
weather, care, brand, price, gender, and words in another script) and returns the ones that
contradict the row's attributes or that nothing given supports.

Contradiction rules of the copy-quality figure (:func:`contradictions`), all with word-boundary
regexes, longest term first so that "navy blue" is navy (not blue), "t-shirt" is not "shirt" and "tank top" is
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

import re
import unicodedata
from dataclasses import dataclass

from catalog_intel.copywriting.grounding.notes import is_part, without_parts
from catalog_intel.copywriting.grounding.terms import (COMPATIBLE_GARMENTS, COMPATIBLE_PATTERNS, GARMENT_FIELDS,
                                                       GENERIC_GARMENTS, NEAR_COLOURS, TEXT_FIELDS, Terms, _term_regex,
                                                       split_sentences)
from catalog_intel.schemas import UNKNOWN

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


# --------------------------------------------------------------------------- grounding

CLAIM_KINDS = ("colour", "garment", "sleeve", "neckline", "pattern", "fabric", "fit", "size", "season", "care",
               "brand", "price", "gender", "script")

_SIZE = re.compile(
    r"(?<![\w\-])(?:sizes?|sizing|one[- ]size|plus[- ]size|petite|all body types|every body type|any body type"
    r"|all body shapes|every figure|all figures)(?![\w\-])", re.IGNORECASE)
_SIZE_LETTERS = r"(?:XXS|XS|S|M|L|XL|XXL|XXXL|2XL|3XL)"
#: a list of letter sizes, upper case only ("s, m" in running text is no size list)
_SIZE_LIST = re.compile(rf"(?<![\w\-]){_SIZE_LETTERS}(?:\s*(?:,|/|-|–|to|and|or)\s*{_SIZE_LETTERS})+(?![\w\-])")
_SEASON = re.compile(
    r"(?<![\w\-])(?:summer|winter|spring|autumn|summertime|springtime|wintertime|summery|wintery|wintry"
    r"|all[- ]seasons?|all[- ]seasonal|any season|every season|four seasons|seasonless|transitional (?:weather|seasons?)"
    r"|year[- ]round|all year(?: round| long)?|(?:cold|cool|cooler|colder|warm|warmer|hot|hotter|mild) (?:weather|days|nights"
    r"|evenings|mornings|months|temperatures|climates?)|chilly|sunny|rainy|breezy|windy|frosty|snowy|heatwave"
    r"|keeps? you (?:warm|cool|cosy|cozy|toasty)|layering season|beach|poolside"
    r"|(?:for|this|in|early|late|and|or|crisp) fall|fall (?:season|days|wardrobe|weather|months|evenings|nights"
    r"|fashion|looks?|collection|layering))(?![\w\-])", re.IGNORECASE)
_CARE = re.compile(
    r"(?<![\w\-])(?:machine[- ]wash(?:able|ed)?|hand[- ]wash(?:able|ed)?|dry[- ]clean(?:ing|ed)?(?: only)?"
    r"|tumble[- ]dr(?:y|ied|yer)|easy[- ]care|easy to (?:care for|wash|clean|maintain|launder|iron)|low[- ]maintenance"
    r"|washable|wash(?:es|ed)? (?:well|easily|beautifully)|wash after wash|no[- ]iron|non[- ]iron|iron[- ]free"
    r"|wrinkle[- ](?:free|resistant)|crease[- ](?:free|resistant)|care instructions?|cold wash|colou?r[- ]?fast"
    r"|shrink[- ](?:proof|resistant)|pre[- ]shrunk|fade[- ]resistant)(?![\w\-])", re.IGNORECASE)
_BRANDS = ("H&M", "Zara", "Uniqlo", "Nike", "Adidas", "Gap", "Mango", "Shein", "Levi's", "Gucci", "Prada",
           "Calvin Klein", "Tommy Hilfiger", "Ralph Lauren", "Lacoste", "Puma", "Forever 21", "Primark", "ASOS",
           "Topshop", "Everlane", "Patagonia", "Hollister", "Abercrombie")
_BRAND = re.compile(r"[™®]|(?<![\w\-])(?:" + "|".join(re.escape(b) for b in _BRANDS)
                    + r"|brand|branded|designer label)(?![\w\-])", re.IGNORECASE)
_PRICE = re.compile(
    r"[$€£¥]\s?\d|\d+(?:[.,]\d+)?\s?(?:USD|EUR|GBP|dollars|euros|pounds)\b|(?<![\w\-])(?:affordabl[ey]|affordably"
    r"|budget[- ]friendly|inexpensive|cheap|bargain|on sale|discount(?:ed)?|great value|value for money|low[- ]priced?"
    r"|prices?|priced|pricing|best[- ]?sellers?|best[- ]selling|limited edition|free shipping|free returns)(?![\w\-])",
    re.IGNORECASE)
#: other colours or shades on offer: nothing given says so
_COLOURWAYS = re.compile(r"(?<![\w\-])(?:available|comes?|offered) in (?:a (?:variety|range) of |multiple |several |many "
                         r"|different |various |other |more |a choice of )(?:\w+ )?(?:colou?rs|shades|colou?rways|hues)"
                         r"(?![\w\-])", re.IGNORECASE)
# adjectives may have commas between them: "a soft, airy blouse" (seen in the bench, #20)
_SUBJECT_BEFORE = re.compile(r"(?:\b(?:this|the|our|a|an)\s+(?:[\w\-]+,?\s+){0,3})$", re.IGNORECASE)
_PAIRING = re.compile(r"\b(?:pair|paired|pairs|pairing|wear(?:ing)? (?:it )?with|style(?:d)? (?:it )?with|team|tuck"
                      r"|under|over|layer|layered|layering|match|goes with|complement|with|alongside|into)\b",
                      re.IGNORECASE)
#: what a garment type or pattern says about another attribute ("hoodie" -> hooded)
IMPLIED: dict[tuple[str, str], tuple[str, str]] = {
    ("garment_type", "hoodie"): ("neckline", "hooded"),
    ("garment_type", "tank top"): ("sleeve", "sleeveless"),
    ("garment_type", "polo shirt"): ("neckline", "collared"),
    ("garment_type", "shirt"): ("neckline", "collared"),
    ("pattern", "lace"): ("fabric", "lace"),
}
_WOMEN = ("women", "woman", "female", "ladies", "womens", "women's", "ladieswear")


@dataclass(frozen=True)
class Claim:
    """One thing the copy asserts that is not backed: `problem` is "contradicts" (a known
    attribute says otherwise) or "ungrounded" (nothing given says so)."""

    kind: str
    field: str
    item: int | None  # index in a list field (bullet_points, seo_tags)
    sentence: str  # the sentence (or list item) that makes the claim: what repair removes
    text: str  # the words that make it
    problem: str
    reason: str


def facts_text(row: dict, free_fact_columns=()) -> str:
    """Free-text catalog facts as one lower-case text: a claim they name is grounded."""
    parts = []
    facts = row.get("facts")
    if isinstance(facts, dict):
        parts.extend(f"{k}: {v}" for k, v in facts.items() if v not in (None, ""))
    for c in free_fact_columns:
        v = row.get(c)
        if v not in (None, "") and not (isinstance(v, float) and v != v):
            parts.append(f"{c}: {v}")
    return " | ".join(parts).lower()


_GENERIC_WORDS = frozenset({"blend", "rich", "fabric", "material", "fine", "high", "quality", "premium", "fit"})


def _in_facts(words: str, facts: str) -> bool:
    """The facts name these words: the phrase, or each of its specific words ("cotton blend")."""
    if not facts:
        return False
    if re.search(_term_regex(words, plural=True), facts, re.IGNORECASE):
        return True
    specific = [w for w in re.split(r"[\s\-]+", words.lower()) if w and w not in _GENERIC_WORDS]
    return bool(specific) and len(specific) < len(re.split(r"[\s\-]+", words.strip())) and all(
        re.search(_term_regex(w, plural=True), facts, re.IGNORECASE) for w in specific)


def _units(row: dict) -> list[tuple[str, int | None, str]]:
    """(field, item index, sentence): what a claim lives in, and what repair can remove."""
    out = []
    for field in TEXT_FIELDS:
        v = row.get(field)
        if v is None:
            continue
        items = list(enumerate(v)) if isinstance(v, (list, tuple)) else [(None, v)]
        for i, text in items:
            if text is None:
                continue
            text = str(text)
            sentences = [text] if field in ("title", "seo_tags") else split_sentences(text)
            out.extend((field, i, sentence) for sentence in sentences)
    return out


def _other_script(text: str) -> str | None:
    for ch in text:
        if ch.isalpha() and ord(ch) > 0x24F and not unicodedata.name(ch, "LATIN").startswith("LATIN"):
            start = text.index(ch)
            return text[max(0, start - 10):start + 10]
    return None


def _known_with_implied(row: dict) -> dict[str, str | None]:
    known = {a: _known(row.get(a)) for a in ("color", "neckline", "sleeve", "pattern", "fabric", "fit",
                                             "garment_type")}
    for (attr, value), (other, implied) in IMPLIED.items():
        if known.get(attr) == value and known.get(other) is None:
            known[other] = implied
    return known


def claims(row: dict, terms: Terms, facts: str = "") -> list[Claim]:
    """Every claim in the row's copy that its attributes and facts do not back (empty: grounded).

    `row`: attribute values (a missing or "unknown" attribute is not known) and the copy
    fields; `facts`: free-text catalog facts (:func:`facts_text`), which ground any claim
    whose words they contain."""
    known = _known_with_implied(row)
    out: list[Claim] = []
    units = _units(row)
    garment_facts = without_parts(facts, terms) if facts else facts  # a lining's jersey is not the top's
    colour_named = {v for _, _, s in units for v, *_ in terms.colour.find(s)}
    gender = _known(row.get("gender"))

    for field, item, sentence in units:
        def add(kind, text, problem, reason):
            out.append(Claim(kind, field, item, sentence, text, problem, f"{kind}: {reason} ({field}: '{text}')"))

        _colour_claims(sentence, known, colour_named, terms, facts, add)
        for kind, attribute, termset, compatible in (
                ("sleeve", "sleeve", terms.sleeve, frozenset()), ("neckline", "neckline", terms.neckline, frozenset()),
                ("pattern", "pattern", terms.pattern, COMPATIBLE_PATTERNS), ("fabric", "fabric", terms.fabric, None),
                ("fit", "fit", terms.fit, frozenset())):
            _vocabulary_claims(kind, sentence, known.get(attribute), attribute, termset, compatible,
                               garment_facts if kind == "fabric" else facts, add,
                               terms.styling_after if kind in ("pattern", "fabric", "fit") else None,
                               facts if kind in ("fabric", "pattern") else None)
        _garment_claims(field, sentence, known["garment_type"], "garment_type" in row, terms, facts, add)
        for kind, rx in (("colour", _COLOURWAYS), ("size", _SIZE), ("size", _SIZE_LIST), ("season", _SEASON),
                         ("care", _CARE), ("brand", _BRAND), ("price", _PRICE)):
            for m in rx.finditer(sentence):
                text = m.group(0)
                # a fact of this kind ("sizes: XS-XL", "care: machine wash") grounds claims of the kind
                if not _in_facts(text, facts) and not (kind != "season"
                                                       and re.search(rf"(?<![a-z]){kind}[a-z_ ]*:", facts)):
                    add(kind, text, "ungrounded", f"says '{text}' but no fact says so")
        if gender is None or gender in _WOMEN:
            m = terms.gender.search(sentence)
            if m:
                add("gender", m.group(0), "contradicts", "a women's item")
        script = _other_script(sentence)
        if script:
            add("script", script, "ungrounded", "words in another script")
    return out


def _colour_claims(sentence, known, colour_named, terms, facts, add) -> None:
    """Styling suggestions ("with white jeans") and, on a patterned row that names its own colour,
    secondary colours ("white with navy stripes") are fine."""
    own = known["color"]
    patterned = known["pattern"] not in (None, "solid")
    for value, matched, _, end in terms.colour.find(sentence):
        if terms.styling_after.match(sentence[end:]) or _in_facts(matched, facts):
            continue
        if own is None:
            add("colour", matched, "ungrounded", f"says '{matched}' but no fact gives the colour")
        elif own == "multicolor" or value == own or frozenset((value, own)) in NEAR_COLOURS or value == "multicolor":
            continue
        elif patterned and (own in colour_named or any(frozenset((v, own)) in NEAR_COLOURS for v in colour_named)):
            continue
        else:
            add("colour", matched, "contradicts", f"says {value}, colour is {own}")


def _vocabulary_claims(kind, sentence, own, attribute, termset, compatible, facts, add, styling=None,
                       part_facts=None) -> None:
    """A vocabulary value (or a word outside the vocabulary: "other:", "property:") named in the
    sentence. `compatible` None: never a contradiction (a fibre and a knit can both be true).
    `styling`: words directly before another garment ("high-waisted jeans") describe that garment.
    A fact grounds a value other than the row's own only where the row has none (the row and
    its copy never disagree). `part_facts`: the whole facts, which ground a part's material
    ("a jersey lining"); `facts` then grounds only the garment's own."""
    for value, matched, start, end in termset.find(sentence):
        if own and (value == own or frozenset((value, own)) in (compatible or ())):
            continue
        if _in_facts(matched, facts) and (own is None or compatible is None or ":" in value):
            continue
        if part_facts is not None and is_part(sentence, start, end) and _in_facts(matched, part_facts):
            continue
        if styling is not None and styling.match(sentence[end:]):
            continue
        if value.startswith("property:") and "blend" in value and re.search(r"%|\bblend", facts):
            continue  # "95% cotton, 5% elastane" is a blend
        if ":" in value or own is None or compatible is None:
            add(kind, matched, "ungrounded",
                f"says '{matched}' but {'no fact says so' if own is None or ':' in value else f'{attribute} is {own}'}")
        else:
            add(kind, matched, "contradicts", f"says {value}, {attribute} is {own}")


def _garment_claims(field, sentence, own, has_column, terms, facts, add) -> None:
    """What the product is: any garment word in the title or tags; elsewhere only as the subject
    ("this cropped sweater", "a soft, airy blouse"), not a styling suggestion ("worn with jeans or skirts")."""
    for value, matched, start, _ in terms.garment.find(sentence):
        if field not in ("title", "seo_tags"):
            subject = _SUBJECT_BEFORE.search(sentence[:start])
            if not subject:
                continue
            # the clause before "a denim skirt": "pair it with" makes it a styling suggestion
            lead = re.split(r"[,;:]", sentence[:subject.start()])[-1]
            if _PAIRING.search(lead + " " + subject.group(0)):
                continue
        # A note may call the product otherwise ("Sleeveless blouse..." for a row whose garment type is
        # top): the note grounds the word in the prose, but what the product *is* (title, summary,
        # tags) must say what the row says, as copy-quality checks it (#20: 1 of 24 rows disagreed).
        if _in_facts(matched, facts) and field not in GARMENT_FIELDS:
            continue
        if value.startswith("non-top:"):
            add("garment", matched, "contradicts", f"says {value[8:]}, not a top")
        elif value in GENERIC_GARMENTS:
            continue
        elif own is None:
            if has_column and not _in_facts(matched, facts):  # an output without a garment_type column cannot say
                add("garment", matched, "ungrounded", f"says '{matched}' but no fact gives the garment type")
        elif value != own and frozenset((value, own)) not in COMPATIBLE_GARMENTS:
            add("garment", matched, "contradicts", f"says {value}, garment type is {own}")

