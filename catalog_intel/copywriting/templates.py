"""Structured copy fields from the facts alone: the title, SEO tags and bullets (#20).

The facts already say what these fields say, so a template writes them in any language
(CopyTemplates per language) and the LLM writes only what needs language: the description, the
style summary and up to two bullets from a supplier note. `attributes` are the prompt attributes
(copywriter.prompt_attributes: known values, already in the copy's language, and ``facts``).
"""

from __future__ import annotations

import re
import string

from catalog_intel.schemas import UNKNOWN
from catalog_intel.settings import CopyTemplates

#: template placeholder -> prompt attribute
_ATTRIBUTE = {"color": "color", "garment": "garment_type", "sleeve": "sleeve", "neckline": "neckline",
              "pattern": "pattern", "fabric": "fabric", "fit": "fit"}
#: template placeholder -> fact keys that give it (first found)
_FACT = {"brand": ("brand",), "material": ("material", "material_composition", "composition")}


def values(attributes: dict, t: CopyTemplates) -> dict[str, str]:
    """The known values a template may name (a blank or multicolour value names nothing; a garment of
    unknown type is the language's `unknown_garment`)."""
    facts = attributes.get("facts") or {}
    out = {k: str(attributes[a]) for k, a in _ATTRIBUTE.items() if attributes.get(a) not in (None, "", UNKNOWN)}
    out.setdefault("garment", t.unknown_garment)
    for k, keys in _FACT.items():
        found = next((str(facts[f]).strip() for f in keys if facts.get(f)), None)
        if found:
            out[k] = found
    if "material" not in out and "fabric" in out:
        out["material"] = out["fabric"]
    if out.get("color") in ("multicolor",):
        del out["color"]
    return out


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _fill(template: str, known: dict[str, str]) -> str | None:
    """The template with every field known, else None."""
    if any(f not in known for f in _fields(template)):
        return None
    return _squeeze(template.format(**known))


def _partial(template: str, known: dict[str, str]) -> str:
    """The template with what is known; unknown fields empty."""
    return _squeeze(template.format_map({f: known.get(f, "") for f in _fields(template)}))


def _squeeze(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.:;])", r"\1", text)
    return re.sub(r"^[\s,;:–-]+|[\s,;:–-]+$", "", text).strip()


def _title_case(text: str) -> str:
    words = []
    for w in text.split(" "):
        words.append("-".join(p[:1].upper() + p[1:] for p in w.split("-")) if w[:1].isalpha() else w)
    return " ".join(words).replace("T-shirt", "T-Shirt")


def title(attributes: dict, t: CopyTemplates) -> str:
    """The title template with what is known; unknown parts and `title_skip` values left out."""
    known = {k: v for k, v in values(attributes, t).items() if v not in t.title_skip}
    text = _partial(t.title, known)
    text = re.sub(r",\s*(?=,|$)", "", text).strip(" ,")
    if known.get("sleeve") and t.title_case:  # "Long Sleeve" -> "Long-Sleeve" before a noun
        text = text.replace(known["sleeve"], known["sleeve"].replace(" ", "-"))
    text = _title_case(text) if t.title_case else text[:1].upper() + text[1:]
    return text


def bullets(attributes: dict, t: CopyTemplates) -> list[str]:
    known = values(attributes, t)
    return [b for b in (_fill(x, known) for x in t.bullets) if b]


def product_bullet(attributes: dict, t: CopyTemplates) -> str:
    """The padding bullet in the templates' language ("Women's top.", "Damen-Bluse.")."""
    text = _partial(t.product_bullet, values(attributes, t))
    return text[:1].upper() + text[1:]


def summary(attributes: dict, t: CopyTemplates) -> str:
    """The summary template with what is known ("Pullover langarm, schwarz: V-Ausschnitt."): unknown
    parts and `title_skip` values left out, with the commas and colon they leave behind."""
    known = {k: v for k, v in values(attributes, t).items() if v not in t.title_skip}
    text = _partial(t.summary, known)
    # separators an unknown value left side by side: ", :" -> ":", ": ," -> ":", ", ," -> ","
    text = re.sub(r"[,:](?:\s*[,:])+", lambda m: ":" if ":" in m.group(0) else ",", text)
    text = re.sub(r"\s*[,:]\s*(?=[.!]?$)", "", text).strip(" ,:")  # "a: ." -> "a."
    if text and text[-1] not in ".!":
        text += "."
    return text[:1].upper() + text[1:]


def seo_tags(attributes: dict, t: CopyTemplates, most: int) -> list[str]:
    known = values(attributes, t)
    out: list[str] = []
    for x in t.seo_tags:
        tag = _fill(x, known)
        if tag and tag.lower() not in out:
            out.append(tag.lower())
    return out[:most]


def structured(attributes: dict, t: CopyTemplates, tags_max: int) -> dict:
    """title, bullet_points and seo_tags composed from the facts."""
    return {"title": title(attributes, t), "bullet_points": bullets(attributes, t),
            "seo_tags": seo_tags(attributes, t, tags_max)}
