"""The data-quality contract of the final catalog table (Great Expectations 1.x).

Built from the configuration so the allowed values are the vocabulary itself.
Every row-level expectation carries meta["reason"]: the text a rejected row
gets in rejects.csv. The derived columns *_count / title_word_count are added
by catalog_intel.quality.validation before validation (GX has no list-length checks)."""

from __future__ import annotations

import great_expectations as gx

from catalog_intel.inference.heads import published_values
from catalog_intel.schemas import UNKNOWN
from catalog_intel.settings import Config

SUITE_NAME = "catalog_rows"


def build_suite(config: Config, with_copy: bool) -> gx.ExpectationSuite:
    E = gx.expectations
    v = config.validation
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    required = ["image", "sha256", *config.attributes]
    if with_copy:
        required += ["title", "description", "style_summary", "bullet_count", "seo_tag_count", "title_word_count"]
    for column in required:
        suite.add_expectation(E.ExpectColumnToExist(column=column))
        suite.add_expectation(E.ExpectColumnValuesToNotBeNull(column=column, meta={"reason": f"{column} is missing"}))
    suite.add_expectation(E.ExpectColumnValuesToBeUnique(column="image", meta={"reason": "image id is not unique"}))
    for name, spec in config.attributes.items():
        suite.add_expectation(E.ExpectColumnValuesToBeInSet(
            column=name, value_set=[*published_values(spec), UNKNOWN],  # a trained head's classes where it has one
            meta={"reason": f"{name} value is outside the vocabulary"}))
        suite.add_expectation(E.ExpectColumnValuesToBeBetween(
            column=f"{name}_confidence", min_value=0.0, max_value=1.0,
            meta={"reason": f"{name}_confidence is outside [0, 1]"}))
    if with_copy:
        suite.add_expectation(E.ExpectColumnValuesToBeBetween(
            column="title_word_count", min_value=1, max_value=v.title_max_words,
            meta={"reason": f"title is empty or longer than {v.title_max_words} words"}))
        suite.add_expectation(E.ExpectColumnValuesToBeBetween(
            column="bullet_count", min_value=v.bullets_min, max_value=v.bullets_max,
            meta={"reason": f"needs {v.bullets_min}-{v.bullets_max} bullet points"}))
        suite.add_expectation(E.ExpectColumnValuesToBeBetween(
            column="seo_tag_count", min_value=v.seo_tags_min, max_value=v.seo_tags_max,
            meta={"reason": f"needs {v.seo_tags_min}-{v.seo_tags_max} SEO tags"}))
    return suite
