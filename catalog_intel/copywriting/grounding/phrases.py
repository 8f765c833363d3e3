"""Borrowed and stock phrases: copy that could be about any product.

A *stock phrase* is a run of :data:`RUN_WORDS` words with no product word in it (no attribute
value or synonym, nothing from the product's own facts) that :data:`STOCK_PRODUCTS` or more
products of one run share ("easy to style every day for any occasion"). A *borrowed* sentence
shares a run (or is equal to a sentence) of the worked example's answer.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable

from catalog_intel.copywriting.grounding import terms as T
from catalog_intel.copywriting.grounding.form import norm_text
from catalog_intel.copywriting.grounding.terms import split_sentences

RUN_WORDS = 6
STOCK_PRODUCTS = 3
#: the fields whose sentences are counted (titles, bullets and tags are lists of product words)
PROSE_FIELDS = ("description", "style_summary")
_NOT_PRODUCT = frozenset("a an the of and or in on with to for fabric material quality high premium fit blend "
                         "neck neckline length".split())


def vocabulary_words(values: Iterable[str] = ()) -> frozenset[str]:
    """Every word that names an attribute value or one of its synonyms (and plurals)."""
    phrases: list[str] = list(values)
    for table in (T.COLOUR_SYNONYMS, T.SLEEVE_SYNONYMS, T.FABRIC_SYNONYMS, T.NECKLINE_SYNONYMS, T.PATTERN_SYNONYMS,
                  T.FIT_SYNONYMS, T.GARMENT_SYNONYMS):
        for value, synonyms in table.items():
            phrases += [value, *synonyms]
    phrases += [*T.OTHER_FABRICS, *T.OTHER_NECKLINES, *T.OTHER_PATTERNS, *T.OTHER_FITS, *T.NON_TOP_GARMENTS,
                "sleeve", "sleeves", "sleeved"]
    words = {w for p in phrases for w in norm_text(p).split()} - _NOT_PRODUCT
    return frozenset(words | {w + "s" for w in words})


def sentences(copy: dict, fields: Iterable[str] = PROSE_FIELDS) -> list[tuple[str, str]]:
    """(field, sentence) of the prose fields."""
    return [(f, s) for f in fields for s in split_sentences(copy.get(f))]


def runs(text: str, n: int = RUN_WORDS) -> set[tuple[str, ...]]:
    words = norm_text(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def product_words(row: dict, vocabulary: frozenset[str]) -> frozenset[str]:
    """The vocabulary plus the words of this product's attribute values and facts."""
    own = " ".join(str(v) for k, v in row.items() if k not in (*PROSE_FIELDS, "title", "bullet_points", "seo_tags")
                   and isinstance(v, str))
    return vocabulary | {w for w in norm_text(own).split() if len(w) > 2} - _NOT_PRODUCT


def free_runs(sentence: str, words: frozenset[str]) -> set[tuple[str, ...]]:
    """The sentence's runs without a product word: what any product's copy could say."""
    return {r for r in runs(sentence) if not any(w in words for w in r)}


class StockPhrases:
    """Runs without a product word, and the products that wrote each: shared by one run's
    workers (a lock is the caller's), so the run can count and avoid them."""

    def __init__(self, vocabulary: frozenset[str] | None = None, min_products: int = STOCK_PRODUCTS):
        self.vocabulary = vocabulary if vocabulary is not None else vocabulary_words()
        self.min_products = min_products
        self.products: dict[tuple[str, ...], set[str]] = defaultdict(set)

    def add(self, key: str, row: dict) -> None:
        words = product_words(row, self.vocabulary)
        for _, s in sentences(row):
            for r in free_runs(s, words):
                self.products[r].add(key)

    def common(self, row: dict, others: int) -> list[tuple[str, str]]:
        """(field, sentence) of the row whose free runs `others` or more other products wrote already."""
        words = product_words(row, self.vocabulary)
        return [(f, s) for f, s in sentences(row)
                if any(len(self.products.get(r, ())) >= others for r in free_runs(s, words))]

    def frequent(self, min_products: int, most: int) -> tuple[str, ...]:
        """The runs `min_products` or more products wrote, most used first."""
        found = sorted(((len(p), r) for r, p in self.products.items() if len(p) >= min_products), reverse=True)
        return tuple(" ".join(r) for _, r in found[:most])

    def stock(self) -> dict[tuple[str, ...], int]:
        return {r: len(p) for r, p in self.products.items() if len(p) >= self.min_products}


def stock_figures(rows: list[dict], vocabulary: frozenset[str] | None = None) -> dict:
    """Sentences per description, and the share of prose sentences that carry a stock phrase."""
    counter = StockPhrases(vocabulary)
    for i, r in enumerate(rows):
        counter.add(str(i), r)
    stock = counter.stock()
    total = carrying = 0
    for r in rows:
        words = product_words(r, counter.vocabulary)
        for _, s in sentences(r):
            total += 1
            carrying += any(x in stock for x in free_runs(s, words))
    described = [r for r in rows if r.get("description")]
    return {
        "sentences": total, "stock_sentences": carrying, "stock_sentence_share": carrying / total if total else None,
        "sentences_per_description": (sum(len(sentences(r, ("description",))) for r in described) / len(described)
                                      if described else None),
        "stock_phrases": [" ".join(r) for r, _ in sorted(stock.items(), key=lambda x: -x[1])[:10]],
    }


def borrowed(copy: dict, example: dict) -> list[str]:
    """Sentences of the copy equal to one of the example's answer, or sharing a run of it."""
    theirs = [s for _, s in sentences(example)]
    whole = {norm_text(s) for s in theirs}
    their_runs = set().union(*(runs(s) for s in theirs)) if theirs else set()
    return [s for _, s in sentences(copy) if norm_text(s) in whole or runs(s) & their_runs]


_WORD = re.compile(r"[a-zà-ÿ]{4,}")
_FUNCTION = frozenset("with that this from into have your their which there front back at".split())


def uses_note(description: str, note: str, attributes: Iterable[str] = ()) -> bool:
    """The description says something only the note says: one of its words beyond the attributes."""
    given = {w for a in attributes for w in norm_text(a).split()}
    note_words = {w for w in _WORD.findall(note.lower())} - _FUNCTION - given - {"sleeves", "sleeved", "sleeve"}
    return bool(note_words & set(_WORD.findall(description.lower())))
