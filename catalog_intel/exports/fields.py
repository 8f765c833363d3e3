"""Values every shop export shares: the product handle, links built from the
`[exports]` config, one-line text, and the record of values nobody supplied.

Nothing here invents a value: a link, price or vendor that the config and the
manifest do not give stays empty, and `Missing` says once which key fills it."""

from __future__ import annotations

import re
from urllib.parse import quote

import polars as pl

from catalog_intel.schemas import UNKNOWN
from catalog_intel.settings import ExportsConfig
from catalog_intel.text import slug

_LINE_BREAKS = re.compile(r"[\t\r\n\v\f\x85\u2028\u2029]+")


class Missing:
    """Config keys whose value an export needed and did not have; each is reported once per run."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}
        self._skipped: dict[str, str] = {}

    def skipped(self, export: str, why: str) -> None:
        self._skipped.setdefault(export, why)

    def note(self, key: str, what: str) -> None:
        self._seen.setdefault(key, what)

    def warnings(self) -> list[str]:
        return [f"exports: {what} left empty: set {key} in the config's [exports] section"
                for key, what in self._seen.items()] + [f"exports: {name} skipped: {why}"
                                                        for name, why in self._skipped.items()]


def handles(table: pl.DataFrame) -> list[str]:
    """One shop handle per row: the product_id (rows of one product share it), else the
    image name without extension. Different products whose slugs collide get a suffix."""
    ids = table["product_id"].to_list() if "product_id" in table.columns else [None] * table.height
    keys = [pid if pid not in (None, "") else f"image:{img}" for pid, img in zip(ids, table["image"].to_list())]
    out, owner = [], {}
    for key in keys:
        base = slug(key.split(":", 1)[1].rsplit(".", 1)[0] if key.startswith("image:") else key) or "product"
        handle, n = base, 1
        while owner.setdefault(handle, key) != key:
            n += 1
            handle = f"{base}-{n}"
        out.append(handle)
    return out


def one_line(text: object) -> str:
    """Text for a one-value-per-line format: tabs and line breaks become spaces."""
    if text is None:
        return ""
    return _LINE_BREAKS.sub(" ", str(text)).strip()


def attribute(value: object) -> str:
    """An attribute value as published; `unknown` is no value."""
    return "" if value in (None, UNKNOWN) else str(value)


def image_url(image: str, cfg: ExportsConfig, missing: Missing) -> str:
    if not cfg.image_base_url:
        missing.note("exports.image_base_url", "image links (Image Src, image_link)")
        return ""
    return cfg.image_base_url.rstrip("/") + "/" + quote(image.replace("\\", "/"))


def product_url(handle: str, cfg: ExportsConfig, missing: Missing) -> str:
    if not cfg.product_url:
        missing.note("exports.product_url", "product page links (link)")
        return ""
    return cfg.product_url.replace("{handle}", quote(handle))


def prices(table: pl.DataFrame, cfg: ExportsConfig, missing: Missing) -> list[str]:
    """The manifest's price column as given (blank where blank), per row."""
    if cfg.price_column not in table.columns:
        missing.note("exports.price_column", f"prices (no manifest column '{cfg.price_column}')")
        return [""] * table.height
    return [one_line(v) for v in table[cfg.price_column].to_list()]


def text_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(";") if v.strip()]
    return [str(v) for v in value if v is not None]
