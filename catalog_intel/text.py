"""Small text helpers every layer may use. Ground level: imports nothing of catalog_intel."""

from __future__ import annotations

import re

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """`text` as a lowercase id of letters, digits and single dashes (a product handle, an HTML data-* name)."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-")
