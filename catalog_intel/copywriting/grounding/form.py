"""Well-formed copy: cut mid-sentence, duplicate tags or bullets, a style summary that repeats the
description, text that echoes the instructions, fields longer than asked for."""

from __future__ import annotations

import re

from catalog_intel.copywriting.grounding.claims import Claim
from catalog_intel.copywriting.grounding.terms import split_sentences
from catalog_intel.settings import ValidationConfig

_FUNCTION_WORDS = frozenset("a an the to and or of with for in on at your its their this that as by from into "
                            "is are be but so than".split())
_TERMINAL = re.compile(r"[.!?…][\"'”’)\]]*$")
FORM_KINDS = ("truncated", "duplicate_tag", "duplicate_bullet", "summary_repeats", "summary_sentences", "too_long",
              "echo", "borrowed")
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
        parts = [str(copy.get(field) or "")] if field == "title" else split_sentences(copy.get(field))
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
            last = split_sentences(text)[-1]
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
        sentences = split_sentences(copy.get("description"))
        for x in sentences[limits.description_max_sentences:]:
            add("too_long", "description", None, x, f"over {limits.description_max_sentences} sentences")
    summary, description = copy.get("style_summary") or "", copy.get("description") or ""
    if summary and len(split_sentences(summary)) > 1:
        add("summary_sentences", "style_summary", None, summary, "more than one sentence")
    if summary and description and summary_repeats(summary, description):
        add("summary_repeats", "style_summary", None, summary, "repeats the description")
    return out

