"""Copy in several languages (`llm.languages`).

English is the catalog's own language: its copy stays in `title`, `bullet_points`, ...
Every other language gets its own copy columns (`title_de`, ...) and `catalog.<lang>.csv`.
For a language, the attribute values that reach the LLM are translated by the config's
`[languages.<lang>.words]` table (first word of each list), the prompt asks for that
language, and the copy is cached per language (the prompt and prompt version differ).
The grounding checker runs per language with term lists from the same table, so colour,
garment type, sleeve, pattern, fabric, neckline and fit claims are checked in that language, and
copy that is in English instead is caught too.

A language's copy never rejects a product: where it fails, its columns stay empty and
`copy_error_<lang>` says why."""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from catalog_intel.copywriting import templates
from catalog_intel.copywriting.copywriter import CopyCheck
from catalog_intel.copywriting.grounding import (Claim, Rebuilt, TermSet, Terms, build_terms, claims, copy_check,
                                                 facts_text, form_problems, repair_until_clean)
from catalog_intel.copywriting.grounding.claims import _units
from catalog_intel.schemas import ATTRIBUTE_ORDER, COPY_COLUMNS, UNKNOWN
from catalog_intel.settings import Config, CopyTemplates, LLMConfig, LLMExample, LanguageConfig, ValidationConfig

BASE = "en"
# English words that no German or French copy needs: a small model often answers in English, or takes a name
# from the prompt's (English) attribute keys ("une pattern uni").
ENGLISH_MARKERS = re.compile(r"(?<![\w\-])(?:the|and|with|this|your|for|from|made|perfect|features?|sleeves?"
                             r"|neckline|women's|woman's|stylish|comfortable|versatile|patterns?|colou?rs?|fabrics?)"
                             r"(?![\w\-])", re.IGNORECASE)
LANGUAGE_COPY = (*COPY_COLUMNS, "copy_warnings", "copy_error")


def extra_languages(config: Config) -> list[str]:
    return [lang for lang in config.llm.languages if lang != BASE]


def suffixed(column: str, lang: str) -> str:
    return column if lang == BASE else f"{column}_{lang}"


def copy_languages(table: pl.DataFrame) -> list[str]:
    """Languages whose copy columns the table has, besides English."""
    return [c[len("title_"):] for c in table.columns if re.fullmatch(r"title_[a-z]{2}(?:-[a-z]{2})?", c)]


# --------------------------------------------------------------------------- what the LLM is given


def translate(attribute: str, value: object, spec: LanguageConfig) -> object:
    """The language's word for a vocabulary value (first of its list); other values unchanged."""
    if value in (None, "", UNKNOWN):
        return value
    words = spec.words.get(attribute, {}).get(str(value))
    return words[0] if words else value


def translate_attributes(attributes: pl.DataFrame, config: Config, lang: str) -> pl.DataFrame:
    spec = config.languages[lang]
    return attributes.with_columns(
        pl.col(a).map_elements(lambda v, a=a: translate(a, v, spec), return_dtype=pl.Utf8)
        for a in ATTRIBUTE_ORDER if a in attributes.columns
    )


def language_llm(llm: LLMConfig, lang: str, spec: LanguageConfig) -> LLMConfig:
    """The prompts for one language; its copy is cached apart (prompt and prompt version differ)."""
    product = f' Every product is a "{spec.product}".' if spec.product else ""
    return llm.model_copy(update={
        "system_prompt": f"{llm.system_prompt}\nWrite every field in {spec.name} only (title, bullet points, "
                         f"description, style summary and SEO tags).{product} The attribute values are given in "
                         f"{spec.name}.",
        "prompt_version": f"{llm.prompt_version}+{lang}",
        "example": LLMExample(),  # the worked example is English copy
        "templates": spec.templates,
    })


# --------------------------------------------------------------------------- the checker, per language


def _word_regex(term: str, endings: tuple[str, ...]) -> str:
    words = [re.escape(w) for w in re.split(r"[\s\-]+", term.strip()) if w]
    tail = "(?:" + "|".join(re.escape(e) for e in endings) + ")?" if endings else ""
    return r"(?<![\w\-])" + r"[\s\-]*".join(words) + tail + r"(?![\w\-])"


def _termset(entries: dict[str, tuple[str, ...]], endings: tuple[str, ...]) -> TermSet:
    return TermSet(tuple((re.compile(_word_regex(w, endings), re.IGNORECASE), value)
                         for value, words in entries.items() for w in words))


def _any_of(words: tuple[str, ...], endings: tuple[str, ...]) -> re.Pattern:
    if not words:
        return re.compile(r"(?!x)x")  # matches nothing
    return re.compile("|".join(_word_regex(w, endings) for w in words), re.IGNORECASE)


def language_terms(config: Config, lang: str) -> Terms:
    """grounding.Terms whose words are the language's, values the vocabulary's (English)."""
    spec = config.languages[lang]

    def entries(attribute: str) -> dict[str, tuple[str, ...]]:
        return {v: tuple(w) for v, w in spec.words.get(attribute, {}).items()}

    garment = {**entries("garment_type"), **{f"non-top:{w}": (w,) for w in spec.non_top}}
    styling = "|".join(re.escape(w) for w in spec.styling_words) or r"(?!x)x"
    return Terms(
        colour=_termset(entries("color"), spec.endings), sleeve=_termset(entries("sleeve"), spec.endings),
        fabric=_termset(entries("fabric"), spec.endings), garment=_termset(garment, spec.endings),
        gender=_any_of(spec.gender_terms, ()),
        styling_after=re.compile(r"^[\s\-]+(?:[\w\-]+\s+)?(?:" + styling + r")\b", re.IGNORECASE),
        neckline=_termset(entries("neckline"), spec.endings), pattern=_termset(entries("pattern"), spec.endings),
        fit=_termset(entries("fit"), spec.endings),
    )


@dataclass(frozen=True)
class LanguageGate:
    """The copy gate for one language: attributes arrive translated (as the LLM saw them) and are
    read back into the vocabulary, so grounding's rules (shades, compatible garments) apply.
    Repair rebuilds a title or summary, and pads bullets and tags, from the language's templates."""

    terms: Terms
    limits: ValidationConfig
    back: dict[str, dict[str, str]]  # attribute -> the language's word -> vocabulary value
    name: str
    english_colours: TermSet
    templates: CopyTemplates

    def _vocabulary(self, attributes: dict) -> dict:
        return {k: self.back.get(k, {}).get(v, v) if isinstance(v, str) else v for k, v in attributes.items()}

    def problems(self, attributes: dict, copy: dict) -> list:
        row = {**self._vocabulary(attributes), **copy}
        return claims(row, self.terms, facts_text(attributes)) + self.english(copy) + form_problems(copy)

    def english(self, copy: dict) -> list[Claim]:
        """Copy written in English instead: English function words, or English colour words that
        are not also words of this language ("pink" is German too)."""
        out = []
        for field, item, sentence in _units(copy):
            found = [m.group(0) for m in ENGLISH_MARKERS.finditer(sentence)]
            found += [matched for _, matched, _, _ in self.english_colours.find(sentence)
                      if not self.terms.colour.find(matched)]
            if found:
                out.append(Claim("language", field, item, sentence, found[0], "ungrounded",
                                 f"language: English '{found[0]}' in {self.name} copy ({field}: '{found[0]}')"))
        return out

    def rebuilt(self, attributes: dict) -> Rebuilt:
        """The language's templates over the translated attributes: what repair puts in place of a title
        or summary that cannot stand, and adds to too few bullets or tags."""
        t = self.templates
        return Rebuilt(templates.title(attributes, t), templates.bullets(attributes, t),
                       templates.seo_tags(attributes, t, self.limits.seo_tags_max), templates.summary(attributes, t))

    def repair(self, attributes: dict, copy: dict, problems: list) -> tuple[dict | None, list[str]]:
        return repair_until_clean(copy, problems, lambda fixed: self.problems(attributes, fixed),
                                  self._vocabulary(attributes), self.limits, self.rebuilt(attributes))


def language_gate(config: Config, lang: str) -> CopyCheck:
    if lang == BASE:
        return copy_check(config)
    spec = config.languages[lang]
    back = {a: {w[0]: v for v, w in values.items() if w} for a, values in spec.words.items()}
    return LanguageGate(language_terms(config, lang), config.validation, back, spec.name, build_terms(config).colour,
                        spec.templates)


# --------------------------------------------------------------------------- the pipeline step


def describe_languages(attributes: pl.DataFrame, config: Config, describe, **kwargs) -> tuple[pl.DataFrame, list]:
    """Copy in every language besides English, as suffixed columns keyed by sha256, and the
    call stats per language. `describe` is copywriter.describe (kwargs: throttle, progress...)."""
    out = attributes.select("sha256")
    stats = []
    for lang in extra_languages(config):
        copy, lang_stats = describe(translate_attributes(attributes, config, lang),
                                    language_llm(config.llm, lang, config.languages[lang]), config.validation,
                                    config.paths.cache_path, check=language_gate(config, lang), **kwargs)
        out = out.join(copy.select("sha256", *[pl.col(c).alias(suffixed(c, lang)) for c in LANGUAGE_COPY]),
                       on="sha256", how="left")
        stats.append(lang_stats)
    return out, stats


# --------------------------------------------------------------------------- outputs


def language_view(table: pl.DataFrame, lang: str) -> pl.DataFrame:
    """The table with one language's copy in the copy columns: what catalog.<lang>.csv is
    written from (attribute values stay the vocabulary's, the same ids in every language)."""
    return table.with_columns(pl.col(suffixed(c, lang)).alias(c) for c in COPY_COLUMNS)


def language_pass_rate(table: pl.DataFrame, config: Config, lang: str) -> dict:
    """Share of rows with copy in `lang` that the checker finds nothing wrong with."""
    gate = language_gate(config, lang)
    rows = [r for r in language_view(table, lang).iter_rows(named=True) if r.get("title")]
    attrs = [{a: r.get(a) for a in ATTRIBUTE_ORDER} for r in rows]
    if lang != BASE:
        spec = config.languages[lang]
        attrs = [{a: translate(a, v, spec) for a, v in x.items()} for x in attrs]
    failed = [r["image"] for r, a in zip(rows, attrs) if gate.problems(a, {c: r[c] for c in COPY_COLUMNS})]
    return {"language": lang, "rows": len(rows), "passed": len(rows) - len(failed),
            "pass_rate": (len(rows) - len(failed)) / len(rows) if rows else None, "failed": failed}
