"""A supplier's note read as facts (#20): the attribute values it states, and the materials it
gives for a part.

"Fitted, long-sleeved top in soft ribbed jersey." states sleeve = long sleeve, fit = slim and
fabric = knit. A material named for a part ("Jersey lining.", "lace trims", "cuffs in rib knit")
is that part's, not the garment's: "Blouse in plumeti chiffon ... Jersey lining." is chiffon.
"""

from __future__ import annotations

import re

from catalog_intel.copywriting.grounding.terms import Terms, TermSet

NOTE_FACT = "details"  # the free-text fact column that holds the supplier's note
#: attributes a note may state; colour and garment type come from the labels, not from prose
NOTE_ATTRIBUTES = ("neckline", "sleeve", "pattern", "fabric", "fit")
_PARTS = (r"(?:linings?|lined|trims?|trimmed|trimming|cuffs?|hems?|collars?|yokes?|panels?|insets?|sections?"
          r"|details?|edges?|straps?|frills?|ruffles?|flounces?|pockets?|hoods?|backs?|fronts?|piping|appliqués?"
          r"|sleeves?|shoulders?|waistbands?|ribbing|layers?|overlays?)")
_GLUE = r"(?:with|and|or|in|at|to|a|an|the|of|for|on)"
#: "<material> [one word] <part>": "jersey lining", "lace trims", "rib-knit cuffs"
_PART_AFTER = re.compile(rf"^[\s\-]+(?:(?!{_GLUE}\b)[\w\-]+\s+)?{_PARTS}\b", re.IGNORECASE)
#: "<part> in/of/made of [a] [up to two words] <material>": "lining in jersey", "cuffs in soft rib"
_PART_BEFORE = re.compile(rf"\b{_PARTS}\s+(?:in|of|made of|made from)\s+(?:(?:a|an|the)\s+)?(?:[\w\-]+,?\s+){{0,2}}$",
                          re.IGNORECASE)
#: a fit word before a fabric word describes the fabric ("a soft, loose knit")
_FABRIC_AFTER = re.compile(r"^[\s,\-]+(?:[\w\-]+\s+)?(?:knit|weave|jersey|fabric|crêpe|crepe|mesh|rib)\b", re.IGNORECASE)


#: "made of jersey lining": the garment said to be of the part's material
_MADE_OF = re.compile(r"\bmade (?:of|from|in)\s+(?:(?:a|an)\s+)?(?:[\w\-]+\s+)?$", re.IGNORECASE)


def is_part(text: str, start: int, end: int) -> bool:
    """The term at text[start:end] names a part's material ("jersey lining", "trims in lace"),
    not the garment's ("made of jersey lining" is a misreading: the garment's)."""
    if _MADE_OF.search(text[:start]):
        return False
    return bool(_PART_AFTER.match(text[end:]) or _PART_BEFORE.search(text[:start]))


def garment_mentions(termset: TermSet, text: str, attribute: str = "") -> list[tuple[str, str, int, int]]:
    """What the text says of the garment itself: termset matches that name no part's material."""
    out = []
    for value, matched, start, end in termset.find(text):
        if is_part(text, start, end):
            continue
        if attribute == "fit" and _FABRIC_AFTER.match(text[end:]):
            continue
        out.append((value, matched, start, end))
    return out


def note_values(note: str, terms: Terms) -> dict[str, str]:
    """Attribute -> vocabulary value that the note states of the garment. Several values of one
    attribute (a collar and a V-neck) state none; for the fabric the first named is the garment's
    ("Cardigan in a soft knit. The polyester content is recycled." is knit), a fibre outside the
    vocabulary ("viscose crêpe") included, which then fills nothing."""
    out: dict[str, str] = {}
    for attribute in NOTE_ATTRIBUTES:
        termset = getattr(terms, attribute)
        if termset is None:
            continue
        found = [v for v, *_ in garment_mentions(termset, note, attribute) if not v.startswith("property:")]
        if attribute == "fabric":
            found = found[:1]
        if found and len(set(found)) == 1 and ":" not in found[0]:
            out[attribute] = found[0]
    return out


def without_parts(facts: str, terms: Terms) -> str:
    """The facts text with every part's material blanked out: what grounds the garment's material."""
    spans = [(s, e) for _, _, s, e in terms.fabric.find(facts) if is_part(facts, s, e)]
    for s, e in sorted(spans, reverse=True):
        facts = facts[:s] + " " * (e - s) + facts[e:]
    return facts
