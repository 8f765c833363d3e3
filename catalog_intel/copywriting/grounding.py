"""Grounding: every claim the copy makes must be backed by a known attribute or a catalog fact.

One checker, used by the pipeline's copy gate (copywriter.describe(check=...)) and by
`catalog-intel copy-quality`. :func:`claims` finds, sentence by sentence, what the copy asserts
(colour, garment type, sleeve, neckline, pattern, material/fabric, fit, sizes, seasons and
weather, care, brand, price, gender, and words in another script) and returns the ones that
contradict the row's attributes or that nothing given supports. :func:`form_problems` finds copy
that is not well formed (cut mid-sentence, duplicate tags or bullets, a style summary that
repeats the description). :func:`repair` removes what is still wrong at the last attempt.

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

from catalog_intel.schemas import UNKNOWN
from catalog_intel.settings import Config, ValidationConfig

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
    "cotton": ("cotton", "cotton-blend", "cotton-rich"), "polyester": ("polyester", "poly"),
    "denim": ("denim", "chambray"), "silk": ("silk", "silky", "satin"),
    "knit": ("knit", "knitted", "jersey", "rib-knit", "ribbed", "rib", "fine-knit", "fine knit", "chunky knit",
             "knitwear", "sweatshirt fabric", "terry", "french terry"),
    "linen": ("linen",), "chiffon": ("chiffon",),
}
#: materials outside the vocabulary: a claim like any other (grounded only by a fact that names them)
OTHER_FABRICS: tuple[str, ...] = (
    "wool", "woollen", "merino", "cashmere", "viscose", "rayon", "modal", "lyocell", "tencel", "elastane", "spandex",
    "lycra", "nylon", "polyamide", "acrylic", "fleece", "velvet", "mesh", "crepe", "poplin", "twill", "corduroy",
    "leather", "suede", "muslin", "organza", "tulle", "bamboo", "hemp", "sequins", "sequin", "organic cotton",
    "recycled polyester", "cotton-polyester", "polyester-cotton", "poly-cotton", "cotton-linen", "linen-cotton",
    "cotton-elastane", "cotton-modal", "viscose-blend", "wool-blend", "linen-blend",
)
#: what a material claim may say without naming a fibre; grounded only by a fact that says so
FABRIC_PROPERTIES: tuple[str, ...] = (
    "breathable", "stretchy", "stretch", "moisture-wicking", "lightweight", "heavyweight", "thermal", "insulating",
    "organic", "recycled", "sustainable", "eco-friendly", "durable", "long-lasting", "waterproof", "water-resistant",
    "quick-dry", "quick-drying", "high-quality fabric", "high-quality material", "premium fabric",
    "premium material", "high-quality materials", "premium materials", "quality fabric", "quality fabrics",
    "quality materials", "fabric blend", "blended fabric", "blend fabric", "blended",
)
NECKLINE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "round neck": ("round neck", "round neckline", "round-neck", "crew neck", "crewneck", "crew-neck",
                   "crew neckline", "scoop neck", "scoop neckline", "round crew neckline"),
    "v-neck": ("v-neck", "v neck", "v-neckline", "v-necked", "v neckline", "deep v"),
    "collared": ("collar", "collared", "shirt collar", "polo collar", "button-down collar", "lapel"),
    "hooded": ("hood", "hooded", "drawstring hood"),
    "high neck": ("high neck", "high-neck", "turtleneck", "turtle neck", "turtle-neck", "mock neck", "funnel neck",
                  "polo neck", "high collar", "high turtle neck"),
    "square neck": ("square neck", "square neckline", "square-neck"),
    "off-shoulder": ("off-shoulder", "off-the-shoulder", "off the shoulder", "bardot", "off-shoulder neckline"),
}
OTHER_NECKLINES: tuple[str, ...] = ("halter neck", "halterneck", "halter", "boat neck", "bateau", "sweetheart neckline",
                                    "cowl neck", "one-shoulder", "keyhole", "henley", "wrap neckline")
PATTERN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "solid": ("solid colour", "solid color", "solid-colour", "solid-color", "solid-coloured", "solid-colored",
              "plain solid-colour", "block colour"),
    "striped": ("stripe", "stripes", "striped", "pinstripe", "pinstriped", "breton"),
    "printed": ("print", "printed", "graphic print", "animal print", "leopard print", "logo print"),
    "floral": ("floral", "flower", "flowers", "flowery", "botanical"),
    "checked": ("checked", "checks", "check pattern", "plaid", "gingham", "tartan", "checked plaid"),
    "polka dot": ("polka dot", "polka dots", "polka-dot", "polka-dotted", "dotted", "spotted"),
    "lace": ("lace", "lacy", "lace trim", "lace detail"),
}
OTHER_PATTERNS: tuple[str, ...] = ("embroidered", "embroidery", "tie-dye", "colour block", "color block",
                                   "colour-block", "color-block", "camouflage", "camo", "paisley", "houndstooth",
                                   "sequinned", "sequined")
#: pattern values that include one another ("a floral print" is floral)
COMPATIBLE_PATTERNS: frozenset[frozenset[str]] = frozenset(
    frozenset(p) for p in [("printed", "floral"), ("printed", "polka dot")])
FIT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "slim": ("slim", "slim-fit", "slim fit", "slim-fitting", "fitted", "form-fitting", "figure-hugging",
             "body-hugging", "bodycon", "tight", "tight-fitting", "skinny", "snug", "close-fitting", "tailored"),
    "loose": ("loose", "loose-fit", "loose-fitting", "relaxed", "relaxed-fit", "oversized", "oversize", "boxy",
              "roomy", "flowy", "baggy", "slouchy"),
    "regular": ("regular fit", "regular-fit", "classic fit", "straight fit", "straight-cut", "true to size"),
}
#: fit words about length or cut: grounded only by a fact that says so
OTHER_FITS: tuple[str, ...] = ("cropped", "crop top", "crop", "longline", "tunic-length", "high-waisted", "petite fit")
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
    fabric: TermSet  # vocabulary values + "other:<fibre>" + "property:<word>"
    garment: TermSet  # values of the vocabulary + "non-top:<word>"
    gender: re.Pattern
    styling_after: re.Pattern  # "<colour> [word] jeans": a styling suggestion
    neckline: TermSet | None = None  # vocabulary values + "other:<neckline>"
    pattern: TermSet | None = None
    fit: TermSet | None = None


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

    def with_others(attribute, synonyms, *groups):
        out = entries(attribute, synonyms)
        for prefix, words in groups:
            out.update({f"{prefix}:{w}": {w} for w in words})
        return out

    fabric = with_others("fabric", FABRIC_SYNONYMS, ("other", OTHER_FABRICS), ("property", FABRIC_PROPERTIES))
    pattern = with_others("pattern", PATTERN_SYNONYMS, ("other", OTHER_PATTERNS))
    pattern_set = TermSet(tuple(  # "lace-up" is a fastening, not lace
        (re.compile(rx.pattern + r"(?![\s\-]+up\b)", re.IGNORECASE), v) for rx, v in _termset(pattern, False).patterns))
    return Terms(
        colour=_termset(colour, plural=False),
        sleeve=_termset(entries("sleeve", SLEEVE_SYNONYMS), plural=True),
        fabric=_termset(fabric, plural=False),
        neckline=_termset(with_others("neckline", NECKLINE_SYNONYMS, ("other", OTHER_NECKLINES)), plural=True),
        pattern=pattern_set,
        fit=_termset(with_others("fit", FIT_SYNONYMS, ("other", OTHER_FITS)), plural=False),
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
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_SUBJECT_BEFORE = re.compile(r"(?:\b(?:this|the|our|a|an)\s+(?:[\w\-]+\s+){0,3})$", re.IGNORECASE)
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
            sentences = [text] if field in ("title", "seo_tags") else [x for x in _SENTENCE.split(text) if x.strip()]
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
            _vocabulary_claims(kind, sentence, known.get(attribute), attribute, termset, compatible, facts, add,
                               terms.styling_after if kind in ("pattern", "fabric", "fit") else None)
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


def _vocabulary_claims(kind, sentence, own, attribute, termset, compatible, facts, add, styling=None) -> None:
    """A vocabulary value (or a word outside the vocabulary: "other:", "property:") named in the
    sentence. `compatible` None: never a contradiction (a fibre and a knit can both be true).
    `styling`: words directly before another garment ("high-waisted jeans") describe that garment."""
    for value, matched, _, end in termset.find(sentence):
        if _in_facts(matched, facts) or (own and (value == own or frozenset((value, own)) in (compatible or ()))):
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
    ("this cropped sweater"), not a styling suggestion ("worn with jeans or skirts")."""
    for value, matched, start, _ in terms.garment.find(sentence):
        if field not in ("title", "seo_tags"):
            subject = _SUBJECT_BEFORE.search(sentence[:start])
            if not subject:
                continue
            # the clause before "a denim skirt": "pair it with" makes it a styling suggestion
            lead = re.split(r"[,;:]", sentence[:subject.start()])[-1]
            if _PAIRING.search(lead + " " + subject.group(0)):
                continue
        if _in_facts(matched, facts):
            continue
        if value.startswith("non-top:"):
            add("garment", matched, "contradicts", f"says {value[8:]}, not a top")
        elif value in GENERIC_GARMENTS:
            continue
        elif own is None:
            if has_column:  # an output without a garment_type column cannot say
                add("garment", matched, "ungrounded", f"says '{matched}' but no fact gives the garment type")
        elif value != own and frozenset((value, own)) not in COMPATIBLE_GARMENTS:
            add("garment", matched, "contradicts", f"says {value}, garment type is {own}")


# --------------------------------------------------------------------------- well-formed copy

_FUNCTION_WORDS = frozenset("a an the to and or of with for in on at your its their this that as by from into "
                            "is are be but so than".split())
_TERMINAL = re.compile(r"[.!?…][\"'”’)\]]*$")
FORM_KINDS = ("truncated", "duplicate_tag", "duplicate_bullet", "summary_repeats", "summary_sentences", "too_long",
              "echo")
#: Words of the instructions that never belong in copy: the schema's field names, the prompt's placeholders.
_INSTRUCTION_WORDS = re.compile(r"\b(?:style_summary|seo_tags|bullet_points|do_not_mention)\b|\{\w+\}|"
                                r"\bproduct attributes \(json\)", re.I)
ECHO_WORDS = 5  # a run of this many words shared with the instructions is an echo, not copy


def norm_text(text: str) -> str:
    """Case, spacing, hyphens and punctuation ignored: how duplicates are compared."""
    return re.sub(r"[\s\-_]+", " ", re.sub(r"[^\w\s\-]", "", str(text).lower())).strip()


def _trigrams(text: str) -> set[tuple[str, ...]]:
    w = norm_text(text).split()
    return {tuple(w[i:i + 3]) for i in range(len(w) - 2)} or ({tuple(w)} if w else set())


def truncated(text: str, needs_stop: bool) -> bool:
    """Cut mid-sentence: ends on a function word ("to an"), or (a description) without a full stop."""
    text = str(text).strip()
    if not text:
        return False
    last = re.sub(r"[^\w']", "", text.split()[-1].lower())
    return last in _FUNCTION_WORDS or (needs_stop and not _TERMINAL.search(text)) or text.endswith("...")


def summary_repeats(summary: str, description: str) -> bool:
    """The style summary says again what the description says (half its word trigrams are there)."""
    s, d = _trigrams(summary), _trigrams(description)
    return bool(s) and len(s & d) / len(s) >= 0.5


def instruction_runs(*prompts: str) -> frozenset[tuple[str, ...]]:
    """Every run of ECHO_WORDS words in the prompts (placeholders left out): copy that shares one
    repeats the instructions ("The product's name from its attributes, like ...")."""
    runs = set()
    for prompt in prompts:
        words = norm_text(re.sub(r"\{\w+\}", " ", prompt)).split()
        runs.update(tuple(words[i:i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1))
    return frozenset(runs)


def _echoes(text: str, instructions: frozenset) -> bool:
    if _INSTRUCTION_WORDS.search(text):
        return True
    words = norm_text(text).split()
    return any(tuple(words[i:i + ECHO_WORDS]) in instructions for i in range(len(words) - ECHO_WORDS + 1))


def form_problems(copy: dict, limits: ValidationConfig | None = None,
                  instructions: frozenset = frozenset()) -> list[Claim]:
    """What makes copy unfit to publish besides its claims: a field cut mid-sentence, repeated
    SEO tags or bullets, a style summary of several sentences or one repeating the description,
    text that repeats the instructions (`instructions`: instruction_runs of the prompts; the
    schema's field names are caught without them), and (with `limits`) bullets, tags or
    descriptions longer than asked for."""
    out: list[Claim] = []

    def add(kind, field, item, sentence, reason):
        out.append(Claim(kind, field, item, sentence, sentence, "form", f"{kind}: {reason} ({field}: '{sentence[-40:]}')"))

    for field in ("title", "description", "style_summary"):  # per sentence: repair removes sentences
        parts = [str(copy.get(field) or "")] if field == "title" else \
            [x for x in _SENTENCE.split(str(copy.get(field) or "")) if x.strip()]
        for sentence in parts:
            if sentence.strip() and _echoes(sentence, instructions):
                add("echo", field, None, sentence, "repeats the instructions, not copy")
    for field in ("bullet_points", "seo_tags"):
        for i, x in enumerate(copy.get(field) or []):
            if _echoes(str(x), instructions):
                add("echo", field, i, str(x), "repeats the instructions, not copy")

    for field in ("title", "description", "style_summary"):
        if copy.get(field) and truncated(copy[field], needs_stop=field == "description"):
            text = str(copy[field])
            last = [x for x in _SENTENCE.split(text) if x.strip()][-1]
            add("truncated", field, None, last, "ends mid-sentence")
    for field, kind in (("bullet_points", "duplicate_bullet"), ("seo_tags", "duplicate_tag")):
        seen: set[str] = set()
        for i, x in enumerate(copy.get(field) or []):
            if field == "bullet_points" and truncated(x, needs_stop=False):
                add("truncated", field, i, str(x), "ends mid-sentence")
            key = norm_text(x)
            if key in seen:
                add(kind, field, i, str(x), "repeats an earlier one")
            seen.add(key)
    if limits is not None:
        for field, cap in (("bullet_points", limits.bullet_max_words), ("seo_tags", limits.seo_tag_max_words)):
            for i, x in enumerate(copy.get(field) or []):
                if len(str(x).split()) > cap:
                    add("too_long", field, i, str(x), f"over {cap} words")
        sentences = [x for x in _SENTENCE.split(str(copy.get("description") or "")) if x.strip()]
        for x in sentences[limits.description_max_sentences:]:
            add("too_long", "description", None, x, f"over {limits.description_max_sentences} sentences")
    summary, description = copy.get("style_summary") or "", copy.get("description") or ""
    if summary and len([x for x in _SENTENCE.split(summary.strip()) if x.strip()]) > 1:
        add("summary_sentences", "style_summary", None, summary, "more than one sentence")
    if summary and description and summary_repeats(summary, description):
        add("summary_repeats", "style_summary", None, summary, "repeats the description")
    return out


# --------------------------------------------------------------------------- repair


def _phrase(known: dict, attribute: str) -> str | None:
    return known.get(attribute)


def attribute_title(known: dict) -> str:
    """A plain title from the known attributes alone ("Navy Striped Long-Sleeve Top")."""
    words = [known.get("color"), known.get("pattern") if known.get("pattern") != "solid" else None,
             (known.get("sleeve") or "").replace(" ", "-") or None, known.get("garment_type") or "top"]
    return " ".join(w for w in words if w and w != "multicolor").title().replace("T-Shirt", "T-Shirt")


def attribute_tags(known: dict) -> list[str]:
    g = known.get("garment_type") or "top"
    parts = [known.get("color"), known.get("pattern"), known.get("sleeve"), known.get("neckline"), known.get("fit")]
    return [f"{p} {g}" for p in parts if p] + [f"women's {g}"]


def attribute_bullets(known: dict) -> list[str]:
    names = {"color": "Colour", "neckline": "Neckline", "sleeve": "Sleeves", "pattern": "Pattern", "fabric": "Fabric",
             "fit": "Fit"}
    return [f"{label}: {known[a]}." for a, label in names.items() if known.get(a)]


def attribute_summary(known: dict) -> str:
    g = known.get("garment_type") or "top"
    colour = known.get("color")
    return f"A {colour + ' ' if colour and colour != 'multicolor' else ''}{g} that is easy to style every day."


def _without(text: str, sentences: set[str]) -> str:
    return " ".join(x for x in _SENTENCE.split(str(text)) if x.strip() and x not in sentences).strip()


def repair(copy: dict, problems: list[Claim], row: dict, limits: ValidationConfig) -> tuple[dict | None, list[str]]:
    """Copy with every offending sentence, bullet or tag removed (never published), and what was
    removed; None when too little remains to meet the schema. A title or style summary that
    cannot stand is rebuilt from the known attributes."""
    known = {k: v for k, v in _known_with_implied(row).items() if v}
    bad: dict[tuple[str, int | None], set[str]] = {}
    for p in problems:
        bad.setdefault((p.field, p.item), set()).add(p.sentence)
    removed = [f"removed {p.field}{'' if p.item is None else f' {p.item + 1}'}: '{p.sentence}' ({p.reason})"
               for p in problems]
    out = dict(copy)
    if ("title", None) in bad:
        out["title"] = attribute_title(known)
    out["description"] = _without(copy["description"], bad.get(("description", None), set()))
    if len(out["description"]) < 10:
        return None, removed + ["too little of the description remains"]
    for field in ("bullet_points", "seo_tags"):
        kept, seen = [], set()
        for i, x in enumerate(copy[field]):
            x = _without(x, bad.get((field, i), set())) if field == "bullet_points" else \
                ("" if (field, i) in bad else x)
            if x and norm_text(x) not in seen:
                kept.append(x)
                seen.add(norm_text(x))
        out[field] = kept
    for bullet in attribute_bullets(known):  # too few left: the known attributes, stated plainly
        if len(out["bullet_points"]) >= limits.bullets_min or not out["bullet_points"]:
            break
        if norm_text(bullet) not in {norm_text(b) for b in out["bullet_points"]}:
            out["bullet_points"].append(bullet)
            removed.append(f"added bullet '{bullet}' from the attributes")
    if len(out["bullet_points"]) < limits.bullets_min:
        return None, removed + [f"fewer than {limits.bullets_min} bullet points remain"]
    for tag in attribute_tags(known):
        if len(out["seo_tags"]) >= limits.seo_tags_min:
            break
        if norm_text(tag) not in {norm_text(t) for t in out["seo_tags"]}:
            out["seo_tags"].append(tag)
            removed.append(f"added seo tag '{tag}' from the attributes")
    out["seo_tags"] = out["seo_tags"][:limits.seo_tags_max]
    summary = _without(copy["style_summary"], bad.get(("style_summary", None), set()))
    summary = ([x for x in _SENTENCE.split(summary) if x.strip()] or [""])[0]
    if not summary or summary_repeats(summary, out["description"]) or truncated(summary, True):
        summary = attribute_summary(known)
    out["style_summary"] = summary
    return out, removed


# --------------------------------------------------------------------------- the pipeline's gate


def feedback(problems: list[Claim]) -> str:
    """The problems, specific enough for a small model to fix them in one more attempt."""
    lines = []
    for p in problems[:10]:
        where = p.field.replace("_", " ") + ("" if p.item is None else f" {p.item + 1}")
        if p.problem == "form":
            lines.append(f"- {where}: {p.reason.split(' (')[0]}")
        else:
            lines.append(f"- {where}: '{p.text}' ({p.reason.split(' (')[0]}): leave it out")
    return ("That copy has problems:\n" + "\n".join(lines) + "\nWrite the whole JSON again, fixing only these. "
            "Use only the given attributes and facts; every sentence must end with a full stop.")


@dataclass(frozen=True)
class CopyGate:
    """What copywriter.describe() checks fresh copy with: the claims and the form."""

    terms: Terms
    limits: ValidationConfig
    instructions: frozenset = frozenset()  # instruction_runs of the prompts

    def problems(self, attributes: dict, copy: dict) -> list[Claim]:
        row = {**attributes, **copy}
        return claims(row, self.terms, facts_text(attributes)) + form_problems(copy, self.limits, self.instructions)

    def repair(self, attributes: dict, copy: dict, problems: list[Claim]) -> tuple[dict | None, list[str]]:
        removed: list[str] = []
        for _ in range(3):  # a removal can expose another problem (the row's colour named only there)
            copy, more = repair(copy, problems, attributes, self.limits)
            removed += more
            if copy is None:
                return None, removed
            problems = self.problems(attributes, copy)
            if not problems:
                return copy, removed
        return None, removed + ["copy still has problems after repair"]


def copy_check(config: Config) -> CopyGate:
    return CopyGate(build_terms(config), config.validation,
                    instruction_runs(config.llm.system_prompt, config.llm.user_prompt))
