"""Term lists of the copy gate: what words name a colour, sleeve, neckline, pattern, fabric, fit or
garment, compiled from the configured vocabulary plus synonyms (longest match wins)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from catalog_intel.settings import Config

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

#: sentence boundary: what a claim lives in, and what repair removes
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


def split_sentences(text: object) -> list[str]:
    """The sentences of `text` (None or blank: none)."""
    return [x for x in SENTENCE.split(str(text or "")) if x.strip()]


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

