"""The pipeline's copy gate: claims plus form of fresh copy, feedback for another attempt, and the
repair that removes what is still wrong at the last attempt (never published)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from catalog_intel.copywriting.grounding.claims import Claim, _known_with_implied, claims, facts_text
from catalog_intel.copywriting.grounding.form import (form_problems, instruction_runs, norm_text, summary_repeats,
                                                      truncated)
from catalog_intel.copywriting.grounding.phrases import borrowed, sentences
from catalog_intel.copywriting.grounding.terms import Terms, build_terms, split_sentences
from catalog_intel.settings import Config, ValidationConfig


# --------------------------------------------------------------------------- repair



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
    """A summary from the attribute values alone ("Pink striped t-shirt: v-neck, short sleeve."):
    every run of it names the product, so it is never a stock phrase (the old "... that is easy to
    style every day" was in 1 of 3 rebuilt rows, #20)."""
    words = [known.get("color") if known.get("color") != "multicolor" else None,
             known.get("pattern") if known.get("pattern") != "solid" else None, known.get("garment_type") or "top"]
    head = " ".join(w for w in words if w)
    tail = ", ".join(known[a] for a in ("neckline", "sleeve", "fabric", "fit") if known.get(a))
    return head[:1].upper() + head[1:] + (f": {tail}" if tail else "") + "."


def _without(text: str, sentences: set[str]) -> str:
    return " ".join(x for x in split_sentences(text) if x not in sentences).strip()


@dataclass(frozen=True)
class Rebuilt:
    """What repair puts in place of a title or summary that cannot stand, or adds to too few bullets
    and tags: the facts, stated plainly in the copy's language."""

    title: str
    bullets: list[str]
    tags: list[str]
    summary: str


def attribute_copy(known: dict) -> Rebuilt:
    """The English rebuilds, from the known attribute values (vocabulary words)."""
    return Rebuilt(attribute_title(known), attribute_bullets(known), attribute_tags(known), attribute_summary(known))


def repair(copy: dict, problems: list[Claim], row: dict, limits: ValidationConfig,
           rebuilt: Rebuilt | None = None) -> tuple[dict | None, list[str]]:
    """Copy with every offending sentence, bullet or tag removed (never published), and what was
    removed; None when too little remains to meet the schema. A title or style summary that
    cannot stand is rebuilt from the known attributes (`rebuilt`: in another language)."""
    known = {k: v for k, v in _known_with_implied(row).items() if v}
    rebuilt = rebuilt or attribute_copy(known)
    bad: dict[tuple[str, int | None], set[str]] = {}
    for p in problems:
        bad.setdefault((p.field, p.item), set()).add(p.sentence)
    removed = [f"removed {p.field}{'' if p.item is None else f' {p.item + 1}'}: '{p.sentence}' ({p.reason})"
               for p in problems]
    out = dict(copy)
    if ("title", None) in bad:
        out["title"] = rebuilt.title
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
    for bullet in rebuilt.bullets:  # too few left: the known attributes, stated plainly
        if len(out["bullet_points"]) >= limits.bullets_min or not out["bullet_points"]:
            break
        if norm_text(bullet) not in {norm_text(b) for b in out["bullet_points"]}:
            out["bullet_points"].append(bullet)
            removed.append(f"added bullet '{bullet}' from the attributes")
    if len(out["bullet_points"]) < limits.bullets_min:
        return None, removed + [f"fewer than {limits.bullets_min} bullet points remain"]
    for tag in rebuilt.tags:
        if len(out["seo_tags"]) >= limits.seo_tags_min:
            break
        if norm_text(tag) not in {norm_text(t) for t in out["seo_tags"]}:
            out["seo_tags"].append(tag)
            removed.append(f"added seo tag '{tag}' from the attributes")
    out["seo_tags"] = out["seo_tags"][:limits.seo_tags_max]
    summary = _without(copy["style_summary"], bad.get(("style_summary", None), set()))
    summary = (split_sentences(summary) or [""])[0]
    if not summary or summary_repeats(summary, out["description"]) or truncated(summary, True):
        summary = rebuilt.summary
    out["style_summary"] = summary
    return out, removed


def repair_until_clean(copy: dict, problems: list[Claim], check: Callable[[dict], list[Claim]], row: dict,
                       limits: ValidationConfig, rebuilt: Rebuilt | None = None) -> tuple[dict | None, list[str]]:
    """repair, then `check` the result again, up to three times: a removal can expose another problem
    (the row's colour named only in the removed sentence)."""
    removed: list[str] = []
    for _ in range(3):
        copy, more = repair(copy, problems, row, limits, rebuilt)
        removed += more
        if copy is None:
            return None, removed
        problems = check(copy)
        if not problems:
            return copy, removed
    return None, removed + ["copy still has problems after repair"]


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
    example: dict | None = None  # the worked example's answer: no sentence may borrow from it

    def problems(self, attributes: dict, copy: dict) -> list[Claim]:
        row = {**attributes, **copy}
        return (claims(row, self.terms, facts_text(attributes)) + form_problems(copy, self.limits, self.instructions)
                + self.borrowed(copy))

    def borrowed(self, copy: dict) -> list[Claim]:
        """Sentences equal to the worked example's, or sharing a 6-word run with it."""
        if not self.example:
            return []
        out = []
        for sentence in borrowed(copy, self.example):
            field = next(f for f, s in sentences(copy) if s == sentence)
            out.append(Claim("borrowed", field, None, sentence, sentence, "form",
                             f"borrowed: copies the worked example, write it in other words ({field}: '{sentence[-40:]}')"))
        return out

    def repair(self, attributes: dict, copy: dict, problems: list[Claim]) -> tuple[dict | None, list[str]]:
        return repair_until_clean(copy, problems, lambda fixed: self.problems(attributes, fixed), attributes,
                                  self.limits)


def copy_check(config: Config) -> CopyGate:
    llm = config.llm
    return CopyGate(build_terms(config), config.validation,
                    instruction_runs(llm.system_prompt, llm.user_prompt, *llm.field_prompts.values()),
                    llm.example.answer if llm.example.enabled else None)
