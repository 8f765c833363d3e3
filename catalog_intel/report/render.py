"""The review report: OUT/report/index.html, one static page that opens from disk, and one
product detail page per card (OUT/report/products/).

No server, no CDN: CSS and JS are inline (allowed by a Content-Security-Policy that
admits only those exact inline blocks and local images), thumbnails are small JPEG files
in report/thumbs/. The pages are Jinja2 templates (templates/) with autoescape on: catalog
text, generated copy included, is escaped by construction.

This module computes what the pages show (review flags, card and product views); the
templates lay it out; templates/report.js runs the filters and the review (edits,
approvals, progress, the edits CSV)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import polars as pl

from catalog_intel.errors import ImageRejected
from catalog_intel.io.filesystem import (atomic_write_bytes, atomic_write_text, basename, exists, isfile, list_dir,
                                         location, read_bytes, relpath, remove_files)
from catalog_intel.io.images import load_rgb
from catalog_intel.io.layout import OutputLayout
from catalog_intel.io.thumbnails import cached_thumbnails, report_thumb_sizes, thumbnail_store
from catalog_intel.schemas import ATTRIBUTE_ORDER, UNKNOWN
from catalog_intel.settings import Config
from catalog_intel.text import slug

THUMBS_DIR = "thumbs"


def attribute_names(table: pl.DataFrame, config: Config) -> list[str]:
    names = [a for a in ATTRIBUTE_ORDER if a in config.attributes] + [a for a in config.attributes if a not in ATTRIBUTE_ORDER]
    return [a for a in names if a in table.columns and f"{a}_confidence" in table.columns]


def review_rows(table: pl.DataFrame, rejects: pl.DataFrame, config: Config, with_copy: bool) -> pl.DataFrame:
    """Every image that was classified (catalog rows and those rejected later; with the
    similar/group columns where it has them), plus the review flags:

    - `unknown_attributes`: attributes that abstained;
    - `low_attributes`: confidence below the attribute's min_confidence + report.low_confidence_margin;
    - `copy_failed`: the LLM gave no usable copy (when copy was asked for);
    - `copy_warnings`: what the copy gate removed from the copy;
    - `conflicts`: a catalog fact and a confident model disagree (facts.py);
    - `reject_reason`: why the row is not in the catalog;
    - `needs_review`: any of these."""
    margin = config.report.low_confidence_margin
    names = attribute_names(table, config)
    rows = table
    for column, dtype in (("similar_images", pl.List(pl.Utf8)), ("similar_scores", pl.List(pl.Float32)),
                          ("group_id", pl.Utf8), ("group_size", pl.UInt32), ("duplicate_of", pl.Utf8),
                          ("copy_error", pl.Utf8), ("copy_warnings", pl.List(pl.Utf8)), ("title", pl.Utf8),
                          ("conflicts", pl.List(pl.Utf8)),
                          ("sha256", pl.Utf8), ("path", pl.Utf8)):
        if column not in rows.columns:
            rows = rows.with_columns(pl.lit(None, dtype=dtype).alias(column))
    rows = rows.join(rejects.select("image", pl.col("reason").alias("reject_reason")), on="image", how="left")

    def listed(flags: list[tuple[str, pl.Expr]]) -> pl.Expr:
        if not flags:
            return pl.lit([], dtype=pl.List(pl.Utf8))
        return pl.concat_list([pl.when(cond).then(pl.lit(name)).otherwise(None) for name, cond in flags]).list.drop_nulls()

    unknown = [(a, pl.col(a) == UNKNOWN) for a in names]
    low = [(a, (pl.col(a) != UNKNOWN) & (pl.col(f"{a}_confidence") < config.attributes[a].min_confidence + margin))
           for a in names]
    copy_failed = pl.col("copy_error").is_not_null()
    if with_copy:
        copy_failed = copy_failed | pl.col("title").is_null()
    rows = rows.with_columns(
        listed(unknown).alias("unknown_attributes"),
        listed(low).alias("low_attributes"),
        copy_failed.fill_null(False).alias("copy_failed"),
    )
    return rows.with_columns(
        ((pl.col("unknown_attributes").list.len() > 0) | (pl.col("low_attributes").list.len() > 0)
         | pl.col("copy_failed") | (pl.col("copy_warnings").list.len().fill_null(0) > 0)
         | (pl.col("conflicts").list.len().fill_null(0) > 0)  # a catalog fact and a confident model disagree
         | pl.col("reject_reason").is_not_null()).alias("needs_review")
    ).sort(["needs_review", "image"], descending=[True, False])


# --- thumbnails ----------------------------------------------------------------------------

def thumb_name(sha256: str) -> str:
    return f"{sha256[:24]}.jpg"


def _thumbnails(path: str, targets: list[tuple[Path, int]], max_pixels: int) -> bool:
    """Every (file, longest side) of `targets` from one decode of `path`, largest first (each
    smaller one is made from the one before, not decoded again)."""
    try:
        img = load_rgb(path, max_pixels, min_side=max(size for _, size in targets))
    except ImageRejected:
        return False
    for target, size in sorted(targets, key=lambda t: -t[1]):
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=82, optimize=True)
        atomic_write_bytes(target, buf.getvalue())
    return True


def _from_cache(missing: dict[str, list[tuple[Path, int]]], config: Config) -> set[str]:
    """Write the wanted thumbnails the cache holds; returns the hashes that got every one they wanted."""
    sizes = report_thumb_sizes(config)
    store = thumbnail_store(config.paths.cache_path, sizes)
    wanted = {size for targets in missing.values() for _, size in targets}
    if not missing or not wanted <= set(sizes):
        return set()
    found = {size: cached_thumbnails(store, list(missing), size) for size in wanted}
    done = {sha for sha, targets in missing.items() if all(sha in found[size] for _, size in targets)}
    for sha in done:
        for target, size in missing[sha]:
            atomic_write_bytes(target, found[size][sha])
    return done


def make_thumbnails(targets: dict[Path, tuple[pl.DataFrame, int]], max_pixels: int,
                    progress=None, config: Config | None = None) -> dict[Path, set[str]]:
    """JPEG thumbnails: for each folder of `targets`, one per image of its items[sha256, path]
    at its longest side, named by content hash; existing ones are kept (a re-run makes only new
    ones), unused ones removed. With `config`, the thumbnails the enrich stage's decodes made
    (io/thumbnails.py) are copied from the cache; an image found in neither is decoded, once
    however many folders want it. Returns, per folder, the hashes that have a thumbnail there."""
    done: dict[Path, set[str]] = {}
    wanted_in: dict[Path, set[str]] = {}
    missing: dict[str, list[tuple[Path, int]]] = {}  # sha256 -> the (file, size) it still needs
    paths: dict[str, str | None] = {}
    for key, (items, size) in targets.items():
        wanted = {thumb_name(s): s for s in items["sha256"].unique().to_list()}
        wanted_in[key] = set(wanted.values())
        paths.update(zip(items["sha256"], items["path"]))
        folder = location(key)
        present = {basename(p): p for p in list_dir(folder, suffix=".jpg")}
        remove_files(p for name, p in present.items() if name not in wanted)
        done[key] = {sha for name, sha in wanted.items() if name in present}
        for name, sha in wanted.items():
            if name not in present:
                missing.setdefault(sha, []).append((folder / name, size))
    made = _from_cache(missing, config) if config is not None else set()
    if progress is not None:
        progress.update(len(paths) - len(missing) + len(made))
    for sha in made:
        del missing[sha]

    def one(sha: str) -> tuple[str, bool]:
        ok = paths[sha] is not None and _thumbnails(paths[sha], missing[sha], max_pixels)
        if progress is not None:
            progress.update(1)
        return sha, ok

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        made |= {sha for sha, ok in pool.map(one, sorted(missing)) if ok}
    for key, shas in wanted_in.items():
        done[key] |= made & shas
    return done


# --- data quality --------------------------------------------------------------------------

def expectation_rows(result: dict | None) -> list[dict]:
    """The checks of a Great Expectations result JSON: expectation, column, success, unexpected count."""
    rows = []
    for item in (result or {}).get("results", []):
        cfg = item.get("expectation_config") or {}
        kwargs = cfg.get("kwargs") or {}
        res = item.get("result") or {}
        rows.append({
            "expectation": cfg.get("type") or cfg.get("expectation_type") or "?",
            "column": kwargs.get("column") or ", ".join(kwargs.get("column_list") or []) or "",
            "success": bool(item.get("success")),
            "unexpected": res.get("unexpected_count"),
        })
    return sorted(rows, key=lambda r: (r["success"], r["column"], r["expectation"]))


def _read_json(path: str | None) -> dict | None:
    if not path or not isfile(path):
        return None
    try:
        return json.loads(read_bytes(path))
    except (OSError, ValueError):
        return None


# --- rendering (Jinja2 templates, autoescape on) ----------------------------------------------

TEMPLATES = Path(__file__).resolve().parent / "templates"
PRODUCTS_DIR = "products"
COPY_FIELDS = ("title", "bullet_points", "description", "style_summary", "seo_tags")
LIST_SEPARATOR = "; "


@lru_cache(maxsize=1)
def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=False, lstrip_blocks=False)


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _csp(css: str, script: str | None) -> str:
    return (f"default-src 'none'; img-src 'self' data:; style-src {_digest(css)}; "
            f"script-src {_digest(script) if script else chr(39) + 'none' + chr(39)}; form-action 'none'; base-uri 'none'")


def render_page(template: str, *, title: str, script: str | None = None, run_id: str | None = None, **context) -> str:
    """A page from `template` (extends base.html): inline CSS and JS, admitted by a CSP with their hashes.
    Every value in `context` is escaped by the template engine."""
    from markupsafe import Markup

    css = _asset("report.css")
    return _env().get_template(template).render(
        title=title, css=Markup(css), script=Markup(script) if script else None, csp=_csp(css, script),
        run_id=run_id or "", **context)


def _rel_link(target: str | None, report_dir: Path) -> str | None:
    if not target or not exists(target):
        return None
    return quote(relpath(target, report_dir))


def _fmt(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def product_page_name(image: str) -> str:
    """File name of an image's product detail page (stable, safe for any image id)."""
    return hashlib.sha1(image.encode()).hexdigest()[:16] + ".html"


def _summary_rows(run: dict, meta: dict) -> list[tuple[str, str]]:
    rows = [
        ("inputs", f"{run.get('inputs', 0)} = {run.get('rows', 0)} catalog rows + {run.get('rejects', 0)} rejects"),
        ("embeddings computed / cached", f"{run.get('embeddings_computed', 0)} / {run.get('embeddings_cached', 0)}"),
        ("LLM calls / cached / failed / retries",
         f"{run.get('llm_calls', 0)} / {run.get('llm_cached', 0)} / {run.get('llm_failed', 0)} / {run.get('llm_retries', 0)}"),
        ("abstentions (unknown)", ", ".join(f"{k} {v}" for k, v in (run.get("abstentions") or {}).items()) or "none"),
    ]
    if any((v.get("input") or 0) > 0 for v in (run.get("completeness") or {}).values()):  # catalog facts given
        rows.append(("known in input -> output", ", ".join(
            f"{a} {v['input']:.0%} -> {v['output']:.0%}" for a, v in run["completeness"].items() if v["output"] is not None)))
    search = run.get("search") or {}
    if search:
        rows.append(("search index", f"{search.get('kind', '?')}, {search.get('size', 0)} distinct images "
                                     f"({search.get('added', 0)} added this run{', rebuilt: ' + search['reason'] if search.get('rebuilt') else ''})"))
        rows.append(("product groups", f"{search.get('groups', 0)} with 2+ images ({search.get('grouped_images', 0)} images), "
                                       f"{search.get('exact_duplicates', 0)} exact duplicates"))
    rows += [(k, v) for k, v in meta.items() if v]
    rows.append(("wall time", f"{run.get('seconds', 0.0):.1f} s"))
    return rows


def _validation_view(validation: dict, report_dir: Path) -> dict | None:
    if not validation:
        return None
    links = [(name, href) for name, href in (("Data Docs", _rel_link(validation.get("data_docs"), report_dir)),
                                             ("validation_result.json", _rel_link(validation.get("result_file"), report_dir)))
             if href]
    return {"success": bool(validation.get("success")), "passed": validation.get("successful_expectations", 0),
            "total": validation.get("evaluated_expectations", 0), "failed": validation.get("failed_expectations") or [],
            "rows_failing": validation.get("rows_failing", 0), "links": links}


def _attr_views(row: dict, names: list[str], config: Config) -> list[dict]:
    margin, views = config.report.low_confidence_margin, []
    for a in names:
        value, conf, threshold = row.get(a), row.get(f"{a}_confidence"), config.attributes[a].min_confidence
        klass = "unknown" if value == UNKNOWN else ("borderline" if conf is not None and conf < threshold + margin else "")
        views.append({"name": a, "label": a.replace("_", " "), "value": "" if value is None else value,
                      "conf": _fmt(conf), "threshold": f"{threshold:.2f}", "klass": klass})
    return views


def _copy_view(row: dict) -> dict:
    return {"error": row.get("copy_error"), "title": row.get("title"), "bullet_points": row.get("bullet_points") or [],
            "description": row.get("description") or "", "style_summary": row.get("style_summary") or "",
            "seo_tags": row.get("seo_tags") or []}


def _copy_fields(row: dict) -> list[dict]:
    out = []
    for name in COPY_FIELDS:
        value = row.get(name)
        value = LIST_SEPARATOR.join(value) if isinstance(value, list) else ("" if value is None else str(value))
        out.append({"name": name, "label": name.replace("_", " "), "value": value,
                    "long": name in ("description", "bullet_points")})
    return out


def _flags(row: dict) -> list[tuple[str, str]]:
    flags = []
    if row.get("reject_reason"):
        flags.append(("bad", f"rejected: {row['reject_reason']}"))
    if row["unknown_attributes"]:
        flags.append(("bad", f"unknown: {', '.join(row['unknown_attributes'])}"))
    if row["low_attributes"]:
        flags.append(("warn", f"low confidence: {', '.join(row['low_attributes'])}"))
    if row["copy_failed"]:
        flags.append(("bad", "copy failed"))
    if row.get("copy_warnings"):
        flags.append(("warn", f"check copy: {'; '.join(row['copy_warnings'])}"))
    if row.get("conflicts"):
        flags.append(("warn", f"fact conflict: {'; '.join(row['conflicts'])}"))
    if row.get("duplicate_of"):
        flags.append(("", f"exact duplicate of {row['duplicate_of']}"))
    if (row.get("group_size") or 0) > 1:
        flags.append(("", f"group {row['group_id']} ({row['group_size']} images)"))
    if row.get("review_status") in ("approved", "edited"):
        flags.append(("ok", f"reviewed earlier: {row['review_status']}"))
    return flags


def _similar_view(row: dict, href_of, thumb_of) -> list[dict]:
    return [{"image": other, "score2": f"{score:.2f}", "score3": f"{score:.3f}", "href": href_of(other),
             "thumb": thumb_of(other)}
            for other, score in zip(row.get("similar_images") or [], row.get("similar_scores") or [])]


def card_views(shown: pl.DataFrame, names: list[str], config: Config, thumbs: set[str], sha_of: dict,
               pdp: bool = False) -> list[dict]:
    """What each card shows (the review flags turned into labels); the template only lays it out."""
    card_ids = {img: f"c{i}" for i, img in enumerate(shown["image"].to_list())}

    def thumb_of(image):
        sha = sha_of.get(image)
        return f"{THUMBS_DIR}/{thumb_name(sha)}" if sha in thumbs else None

    cards = []
    for row in shown.iter_rows(named=True):
        image = row["image"]
        text = " ".join(str(x) for x in (image, row.get("title") or "", row.get("product_id") or "")).lower()
        cards.append({
            "id": card_ids[image], "image": image, "product_id": row.get("product_id") or "",
            "needs_review": bool(row["needs_review"]), "grouped": (row.get("group_size") or 0) > 1, "text": text,
            "data": [(slug(a), "" if row.get(a) is None else row.get(a)) for a in names],
            "thumb": thumb_of(image), "flags": _flags(row),
            "attrs": _attr_views(row, names, config), "content": _copy_view(row), "copy_fields": _copy_fields(row),
            "similar": _similar_view(row, lambda o: f"#{card_ids[o]}" if o in card_ids else None, thumb_of),
            "pdp": f"{PRODUCTS_DIR}/{product_page_name(image)}" if pdp else None,
        })
    return cards


def _filters(rows: pl.DataFrame, names: list[str]) -> list[dict]:
    filters = []
    for a in names:
        counts = rows.group_by(a).len().sort(["len", a], descending=[True, False])
        filters.append({"name": a, "label": a.replace("_", " "), "slug": slug(a),
                        "options": [(v, n) for v, n in counts.iter_rows() if v is not None]})
    return filters


def render_report(review: pl.DataFrame, rejects: pl.DataFrame, run: dict, config: Config, report_dir: Path,
                  thumbs: set[str], checks: list[dict], pdp: bool = False, trend: dict | None = None,
                  alerts: list[str] | None = None) -> str:
    """The whole page. `review` comes from review_rows (already ordered, needs-review first)."""
    names = attribute_names(review, config)
    shown = review.head(config.report.max_cards)
    sha_of = dict(zip(review["image"].to_list(), review["sha256"].to_list())) if review.height else {}
    first = review.row(0, named=True) if review.height else {}
    meta = {"run id": first.get("run_id"), "processed at": first.get("processed_at"),
            "CLIP model": first.get("clip_model_id"), "LLM model": first.get("llm_model"),
            "prompt version": first.get("prompt_version")}
    outputs = [(Path(path).name, href) for path in (run.get("outputs") or {}).values()
               if (href := _rel_link(path, report_dir))]
    title = f"catalog-intel review: {run.get('rows', 0)} rows, {run.get('rejects', 0)} rejects"
    return render_page(
        "report.html", title=title, script=_asset("report.js"), run_id=first.get("run_id"),
        alerts=alerts or [], summary_rows=_summary_rows(run, meta), outputs=outputs,
        validation=_validation_view(run.get("validation") or {}, report_dir), checks=checks, trend=trend,
        total=review.height, needs=int(review["needs_review"].sum()) if review.height else 0,
        max_cards=config.report.max_cards, attributes=names, filters=_filters(shown, names),
        vocabulary={a: [*config.attributes[a].values, UNKNOWN] for a in names},  # the editor's choices (report.js)
        cards=card_views(shown, names, config, thumbs, sha_of, pdp),
        rejects=list(rejects.select("image", "reason").iter_rows()),
    )


PDP_IMAGES = "images"


def product_views(table: pl.DataFrame, names: list[str], config: Config, images: set[str], back: str | None) -> list[dict]:
    """What each product detail page shows: its image, copy, attributes and similar products (linked to their pages)."""
    pages = set(table["image"].to_list())
    sha_of = dict(zip(table["image"].to_list(), table["sha256"].to_list()))

    def image_of(image):
        sha = sha_of.get(image)
        return f"{PDP_IMAGES}/{thumb_name(sha)}" if sha in images else None

    return [{"image": row["image"], "product_id": row.get("product_id") or "", "image_src": image_of(row["image"]),
             "content": _copy_view(row), "attrs": _attr_views(row, names, config),
             "similar": _similar_view(row, lambda o: product_page_name(o) if o in pages else None, image_of)}
            for row in table.iter_rows(named=True)]


def pdp_image_size(config: Config) -> int:
    return report_thumb_sizes(config)[1]


def write_product_pages(table: pl.DataFrame, config: Config, folder: Path, back: str | None = None,
                        progress=None) -> list[Path]:
    """One static product detail page per row of `table` (image, title, bullets, description, attributes, similar
    products), written as folder/<product_page_name(image)> with the images in folder/images/ (made from the
    `path` column, longest side 2 x report.thumb_size). `back` is a link shown at the top (the report).
    Pages of images no longer in `table` are removed. Returns the pages' paths."""
    folder = location(folder)
    for column, dtype in (("similar_images", pl.List(pl.Utf8)), ("similar_scores", pl.List(pl.Float32)),
                          ("copy_error", pl.Utf8), ("path", pl.Utf8), ("product_id", pl.Utf8)):
        if column not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=dtype).alias(column))
    names = attribute_names(table, config)
    if table.height:
        wanted = set(table["image"].to_list()) | {s for lst in table["similar_images"].to_list() for s in (lst or [])}
        items = table.filter(pl.col("image").is_in(list(wanted))).select("sha256", "path")
    else:
        items = pl.DataFrame(schema={"sha256": pl.Utf8, "path": pl.Utf8})
    if progress is not None:
        progress.reset(total=items["sha256"].n_unique())
    images = make_thumbnails({folder / PDP_IMAGES: (items, pdp_image_size(config))}, config.run.max_image_pixels,
                             progress, config)[folder / PDP_IMAGES]
    keep = {product_page_name(i) for i in table["image"].to_list()}
    remove_files(p for p in list_dir(folder, suffix=".html") if basename(p) not in keep)
    pages = {folder / product_page_name(view["image"]):
             render_page("product.html", title=view["content"]["title"] or view["image"], p=view, back=back)
             for view in product_views(table, names, config, images, back)}

    def write(item):  # a re-run rewrites only the pages that changed
        path, text = item
        if not isfile(path) or read_bytes(path).decode("utf-8") != text:
            atomic_write_text(path, text)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(write, pages.items()))
    return list(pages)


def write_report(review: pl.DataFrame, rejects: pl.DataFrame, run: dict, config: Config, out_dir: Path,
                 progress=None, trend: dict | None = None, alerts: list[str] | None = None) -> Path:
    """OUT/report/index.html plus its thumbnails; returns the page's path."""
    report_dir = OutputLayout(out_dir).report
    shown = review.head(config.report.max_cards)
    wanted = set(shown["image"].to_list()) | {s for lst in shown["similar_images"].to_list() for s in (lst or [])}
    items = review.filter(pl.col("image").is_in(list(wanted))).select("sha256", "path") if review.height else \
        pl.DataFrame(schema={"sha256": pl.Utf8, "path": pl.Utf8})
    if progress is not None:
        progress.reset(total=items["sha256"].n_unique())
    # With the product pages' larger images, from the same decodes: write_product_pages then finds them made.
    pdp_items = items.filter(pl.col("sha256").is_in(shown["sha256"].implode()))
    thumbs = make_thumbnails({report_dir / THUMBS_DIR: (items, config.report.thumb_size),
                              report_dir / PRODUCTS_DIR / PDP_IMAGES: (pdp_items, pdp_image_size(config))},
                             config.run.max_image_pixels, progress, config)[report_dir / THUMBS_DIR]
    checks = expectation_rows(_read_json((run.get("validation") or {}).get("result_file")))
    write_product_pages(shown, config, report_dir / PRODUCTS_DIR, back="../index.html")
    page = report_dir / "index.html"
    atomic_write_text(page, render_report(review, rejects, run, config, report_dir, thumbs, checks, pdp=True,
                                          trend=trend, alerts=alerts))
    return page
