"""The review report: OUT/report/index.html, one static page that opens from disk.

No server, no CDN: CSS and JS are inline (allowed by a Content-Security-Policy that
admits only those exact inline blocks and local images), thumbnails are small JPEG files
in report/thumbs/. All text from the catalog is escaped: generated copy is untrusted.

It shows the run summary and the data-quality results, a gallery (thumbnail,
attributes with confidences, generated copy, similar products, group) with filters
by attribute value and by "needs review", and the rejects with their reasons."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from html import escape
from pathlib import Path
from urllib.parse import quote

import polars as pl

from .config import ATTRIBUTE_ORDER, UNKNOWN, Config
from .images import ImageRejected, load_rgb
from .storage import atomic_write_bytes, atomic_write_text, read_bytes, remove_files

REPORT_DIR = "report"
THUMBS_DIR = "thumbs"


def e(value) -> str:
    """Escaped text for HTML content and attribute values."""
    return escape("" if value is None else str(value), quote=True)


def _slug(name: str) -> str:
    """An attribute name as a data-* attribute name."""
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower())


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


def _thumbnail(path: str, target: Path, size: int, max_pixels: int) -> bool:
    try:
        img = load_rgb(path, max_pixels, min_side=size)
    except ImageRejected:
        return False
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=82, optimize=True)
    atomic_write_bytes(target, buf.getvalue())
    return True


def make_thumbnails(items: pl.DataFrame, folder: Path, size: int, max_pixels: int, progress=None) -> set[str]:
    """JPEG thumbnails for items[sha256, path] in `folder`, named by content hash; existing
    ones are kept (a re-run makes only new ones), unused ones removed. Returns the hashes
    that have a thumbnail."""
    items = items.unique(subset="sha256", keep="first").sort("sha256")
    wanted = {thumb_name(s): (s, p) for s, p in zip(items["sha256"], items["path"])}
    if folder.is_dir():
        remove_files(p for p in folder.glob("*.jpg") if p.name not in wanted)
    done = {s for name, (s, _) in wanted.items() if (folder / name).is_file()}
    todo = [(s, p) for name, (s, p) in wanted.items() if s not in done]
    if progress is not None:
        progress.update(len(done))

    def one(item):
        sha, path = item
        ok = path is not None and os.path.isfile(path) and _thumbnail(path, folder / thumb_name(sha), size, max_pixels)
        if progress is not None:
            progress.update(1)
        return sha, ok

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        done |= {sha for sha, ok in pool.map(one, todo) if ok}
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
    if not path or not os.path.isfile(path):
        return None
    try:
        return json.loads(read_bytes(path))
    except (OSError, ValueError):
        return None


# --- rendering -----------------------------------------------------------------------------

CSS = """
:root{--fg:#1d2228;--muted:#5d6873;--line:#dde2e7;--bg:#f6f7f9;--card:#fff;--bad:#b42318;--badbg:#fde8e6;
--warn:#8a5300;--warnbg:#fff3d6;--ok:#146c2e;--okbg:#e3f4e8;--accent:#2458b8}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header,section{padding:12px 24px}header{background:#fff;border-bottom:1px solid var(--line)}
h1{font-size:22px;margin:4px 0}h2{font-size:18px;margin:8px 0}h3{font-size:14px;margin:0 0 4px;word-break:break-all}
.muted{color:var(--muted)}table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
.kv th{font-weight:600;color:var(--muted)}.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;margin:1px 2px 1px 0;background:#eef1f5}
.pill.bad{background:var(--badbg);color:var(--bad)}.pill.warn{background:var(--warnbg);color:var(--warn)}.pill.ok{background:var(--okbg);color:var(--ok)}
.status{font-weight:600;padding:6px 10px;border-radius:6px;display:inline-block}.status.ok{background:var(--okbg);color:var(--ok)}.status.bad{background:var(--badbg);color:var(--bad)}
#filters{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px;margin-bottom:12px;position:sticky;top:0;z-index:2}
#filters label{display:flex;gap:4px;align-items:center}#filters select,#filters input[type=search]{font:inherit;padding:2px 4px}
#shown{font-weight:600;margin-left:auto}
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px;display:flex;flex-direction:column;gap:6px}
.card[hidden]{display:none!important}.card.review{border-color:#e7b4ae;box-shadow:inset 3px 0 0 var(--bad)}
.card .top{display:flex;gap:10px}.thumb{width:120px;height:120px;object-fit:contain;background:#f0f2f4;border-radius:6px;flex:none}
.noimg{width:120px;height:120px;display:flex;align-items:center;justify-content:center;background:#f0f2f4;border-radius:6px;color:var(--muted);flex:none}
.attrs td,.attrs th{padding:1px 6px;font-size:12.5px}.attrs th{color:var(--muted);font-weight:500}
.attrs tr.unknown td{background:var(--badbg);color:var(--bad)}.attrs tr.borderline td{background:var(--warnbg);color:var(--warn)}
.copy h4{margin:2px 0;font-size:14px}.copy ul{margin:2px 0 2px 18px;padding:0}.copy p{margin:2px 0}.copy .error{color:var(--bad)}
.similar .row{display:flex;flex-wrap:wrap;gap:6px;margin-top:2px}.similar a{display:flex;flex-direction:column;align-items:center;width:64px;font-size:11px;color:var(--accent);text-decoration:none;word-break:break-all}
.similar img{width:56px;height:56px;object-fit:contain;background:#f0f2f4;border-radius:4px}
#rejects td:first-child{word-break:break-all}
"""

SCRIPT = """
(function () {
  var form = document.getElementById('filters');
  var cards = Array.prototype.slice.call(document.querySelectorAll('#cards .card'));
  var shown = document.getElementById('shown');
  function apply() {
    var chosen = Array.prototype.slice.call(form.querySelectorAll('select[data-attr]'))
      .filter(function (s) { return s.value !== ''; });
    var review = form.elements.review.checked, grouped = form.elements.grouped.checked;
    var text = form.elements.q.value.trim().toLowerCase();
    var n = 0;
    cards.forEach(function (card) {
      var ok = chosen.every(function (s) { return card.getAttribute('data-' + s.getAttribute('data-attr')) === s.value; });
      if (ok && review) ok = card.getAttribute('data-review') === '1';
      if (ok && grouped) ok = card.getAttribute('data-grouped') === '1';
      if (ok && text) ok = card.getAttribute('data-text').indexOf(text) !== -1;
      card.hidden = !ok;
      if (ok) n++;
    });
    shown.textContent = n + ' of ' + cards.length + ' shown';
  }
  form.addEventListener('input', apply);
  form.addEventListener('change', apply);
  form.addEventListener('submit', function (ev) { ev.preventDefault(); });
  apply();
})();
"""


def _csp() -> str:
    digest = lambda text: "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"  # noqa: E731
    return (f"default-src 'none'; img-src 'self' data:; style-src {digest(CSS)}; script-src {digest(SCRIPT)}; "
            "form-action 'none'; base-uri 'none'")


def _rel_link(target: str | None, report_dir: Path) -> str | None:
    if not target or not os.path.exists(target):
        return None
    return quote(os.path.relpath(os.path.abspath(target), os.path.abspath(report_dir)).replace(os.sep, "/"))


def _fmt(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _summary_section(run: dict, meta: dict, report_dir: Path) -> str:
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
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    files = " ".join(f'<a href="{e(href)}">{e(Path(path).name)}</a>' for path in (run.get("outputs") or {}).values()
                     if (href := _rel_link(path, report_dir)))
    return (f'<section id="summary"><h2>Run summary</h2><table class="kv">{body}</table>'
            f'<p class="muted">Outputs: {files or "none"}</p></section>')


def _quality_section(validation: dict, checks: list[dict], report_dir: Path) -> str:
    if not validation:
        return '<section id="quality"><h2>Data quality</h2><p class="muted">No validation ran (no usable rows).</p></section>'
    ok = bool(validation.get("success"))
    passed, total = validation.get("successful_expectations", 0), validation.get("evaluated_expectations", 0)
    failed = validation.get("failed_expectations") or []
    docs, result = _rel_link(validation.get("data_docs"), report_dir), _rel_link(validation.get("result_file"), report_dir)
    links = " · ".join(x for x in (
        f'<a href="{e(docs)}">Data Docs</a>' if docs else "",
        f'<a href="{e(result)}">validation_result.json</a>' if result else "") if x)
    rows = "".join(
        f'<tr class="{"ok" if c["success"] else "bad"}"><td><span class="pill {"ok" if c["success"] else "bad"}">'
        f'{"pass" if c["success"] else "fail"}</span></td><td>{e(c["column"])}</td><td>{e(c["expectation"])}</td>'
        f'<td>{e(c["unexpected"] if c["unexpected"] is not None else "")}</td></tr>' for c in checks)
    table = (f'<details{" open" if not ok else ""}><summary>{len(checks)} checks</summary><table id="checks">'
             f'<thead><tr><th></th><th>column</th><th>expectation</th><th>unexpected</th></tr></thead>'
             f'<tbody>{rows}</tbody></table></details>') if checks else ""
    failing = (f'<p>Failed: {", ".join(e(f) for f in failed)}; {validation.get("rows_failing", 0)} rows rejected by the checks.</p>'
               if failed else "")
    return (f'<section id="quality"><h2>Data quality</h2><p><span class="status {"ok" if ok else "bad"}">'
            f'{passed} of {total} checks passed</span> {links}</p>{failing}{table}</section>')


def _filters(rows: pl.DataFrame, names: list[str]) -> str:
    selects = []
    for a in names:
        counts = rows.group_by(a).len().sort(["len", a], descending=[True, False])
        options = "".join(f'<option value="{e(v)}">{e(v)} ({n})</option>' for v, n in counts.iter_rows() if v is not None)
        selects.append(f'<label>{e(a.replace("_", " "))} <select name="{e(a)}" data-attr="{_slug(a)}">'
                       f'<option value="">any</option>{options}</select></label>')
    return ('<form id="filters" autocomplete="off">' + "".join(selects)
            + '<label><input type="checkbox" name="review"> needs review only</label>'
            + '<label><input type="checkbox" name="grouped"> in a product group</label>'
            + '<label><input type="search" name="q" placeholder="image or title"></label>'
            + '<output id="shown"></output></form>')


def _card(row: dict, names: list[str], config: Config, card_ids: dict, thumbs: dict, sha_of: dict) -> str:
    margin = config.report.low_confidence_margin
    image = row["image"]
    attrs, data = [], []
    for a in names:
        value, conf, threshold = row.get(a), row.get(f"{a}_confidence"), config.attributes[a].min_confidence
        klass = "unknown" if value == UNKNOWN else ("borderline" if conf is not None and conf < threshold + margin else "")
        attrs.append(f'<tr class="{klass}" title="confidence {_fmt(conf)}, threshold {threshold:.2f}">'
                     f'<th>{e(a.replace("_", " "))}</th><td>{e(value)}</td><td>{_fmt(conf)}</td></tr>')
        data.append(f'data-{_slug(a)}="{e(value)}"')
    flags = []
    if row.get("reject_reason"):
        flags.append(f'<span class="pill bad">rejected: {e(row["reject_reason"])}</span>')
    if row["unknown_attributes"]:
        flags.append(f'<span class="pill bad">unknown: {e(", ".join(row["unknown_attributes"]))}</span>')
    if row["low_attributes"]:
        flags.append(f'<span class="pill warn">low confidence: {e(", ".join(row["low_attributes"]))}</span>')
    if row["copy_failed"]:
        flags.append('<span class="pill bad">copy failed</span>')
    if row.get("copy_warnings"):
        flags.append(f'<span class="pill warn">check copy: {e("; ".join(row["copy_warnings"]))}</span>')
    if row.get("conflicts"):
        flags.append(f'<span class="pill warn">fact conflict: {e("; ".join(row["conflicts"]))}</span>')
    if row.get("duplicate_of"):
        flags.append(f'<span class="pill">exact duplicate of {e(row["duplicate_of"])}</span>')
    if (row.get("group_size") or 0) > 1:
        flags.append(f'<span class="pill">group {e(row["group_id"])} ({row["group_size"]} images)</span>')

    if row.get("copy_error"):
        copy = f'<p class="error">Copy failed: {e(row["copy_error"])}</p>'
    elif row.get("title"):
        bullets = "".join(f"<li>{e(b)}</li>" for b in (row.get("bullet_points") or []))
        tags = "".join(f'<span class="pill">{e(t)}</span>' for t in (row.get("seo_tags") or []))
        copy = (f'<h4>{e(row["title"])}</h4>{f"<ul>{bullets}</ul>" if bullets else ""}'
                f'<p>{e(row.get("description"))}</p><p><em>{e(row.get("style_summary"))}</em></p><p>{tags}</p>')
    else:
        copy = '<p class="muted">No generated copy.</p>'

    similar = []
    for other, score in zip(row.get("similar_images") or [], row.get("similar_scores") or []):
        sha = sha_of.get(other)
        img = f'<img src="{THUMBS_DIR}/{thumb_name(sha)}" alt="" loading="lazy">' if sha in thumbs else ""
        target = f' href="#{card_ids[other]}"' if other in card_ids else ""
        similar.append(f'<a{target} title="{e(other)} (similarity {score:.3f})">{img}<span>{e(other)}</span>'
                       f'<span class="muted">{score:.2f}</span></a>')
    sha = row.get("sha256")
    thumb = (f'<img class="thumb" src="{THUMBS_DIR}/{thumb_name(sha)}" alt="{e(image)}" loading="lazy">' if sha in thumbs
             else '<div class="noimg">no preview</div>')
    text = " ".join(str(x) for x in (image, row.get("title") or "", row.get("product_id") or "")).lower()
    review = "1" if row["needs_review"] else "0"
    grouped = "1" if (row.get("group_size") or 0) > 1 else "0"
    return (
        f'<article class="card{" review" if row["needs_review"] else ""}" id="{card_ids[image]}" data-review="{review}" '
        f'data-grouped="{grouped}" data-text="{e(text)}" {" ".join(data)}>'
        f'<div class="top">{thumb}<div><h3>{e(image)}</h3><div>{"".join(flags)}</div>'
        f'<table class="attrs"><tbody>{"".join(attrs)}</tbody></table></div></div>'
        f'<div class="copy">{copy}</div>'
        + (f'<div class="similar"><span class="muted">Similar products</span><div class="row">{"".join(similar)}</div></div>'
           if similar else "")
        + "</article>"
    )


def _rejects_section(rejects: pl.DataFrame) -> str:
    rows = "".join(f"<tr><td>{e(i)}</td><td>{e(r)}</td></tr>" for i, r in rejects.select("image", "reason").iter_rows())
    body = (f'<table id="rejects-table"><thead><tr><th>image</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>'
            if rejects.height else '<p class="muted">No rejects.</p>')
    return f'<section id="rejects"><h2>Rejects ({rejects.height})</h2>{body}</section>'


def render_report(review: pl.DataFrame, rejects: pl.DataFrame, run: dict, config: Config, report_dir: Path,
                  thumbs: set[str], checks: list[dict]) -> str:
    """The whole page. `review` comes from review_rows (already ordered, needs-review first)."""
    names = attribute_names(review, config)
    shown = review.head(config.report.max_cards)
    card_ids = {img: f"c{i}" for i, img in enumerate(shown["image"].to_list())}
    sha_of = dict(zip(review["image"].to_list(), review["sha256"].to_list())) if review.height else {}
    first = review.row(0, named=True) if review.height else {}
    meta = {"run id": first.get("run_id"), "processed at": first.get("processed_at"),
            "CLIP model": first.get("clip_model_id"), "LLM model": first.get("llm_model"),
            "prompt version": first.get("prompt_version")}
    cards = "".join(_card(r, names, config, card_ids, thumbs, sha_of) for r in shown.iter_rows(named=True))
    needs = int(review["needs_review"].sum()) if review.height else 0
    more = (f'<p class="muted">Showing the first {shown.height} of {review.height} rows (needs review first; '
            f'report.max_cards={config.report.max_cards}). All rows are in catalog.parquet.</p>'
            if review.height > shown.height else "")
    gallery = (f'<section id="gallery"><h2>Gallery ({review.height} images, {needs} need review)</h2>{more}'
               f'{_filters(shown, names)}<div id="cards">{cards}</div></section>')
    title = f"catalog-intel review: {run.get('rows', 0)} rows, {run.get('rejects', 0)} rejects"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_csp()}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>{e(title)}</title><style>{CSS}</style></head><body>'
        f'<header><h1>Catalog review</h1><p class="muted">{e(title)}</p></header>'
        + _summary_section(run, meta, report_dir)
        + _quality_section(run.get("validation") or {}, checks, report_dir)
        + gallery + _rejects_section(rejects)
        + f"<script>{SCRIPT}</script></body></html>"
    )


def write_report(review: pl.DataFrame, rejects: pl.DataFrame, run: dict, config: Config, out_dir: Path,
                 progress=None) -> Path:
    """OUT/report/index.html plus its thumbnails; returns the page's path."""
    report_dir = Path(out_dir) / REPORT_DIR
    shown = review.head(config.report.max_cards)
    wanted = set(shown["image"].to_list()) | {s for lst in shown["similar_images"].to_list() for s in (lst or [])}
    items = review.filter(pl.col("image").is_in(list(wanted))).select("sha256", "path") if review.height else \
        pl.DataFrame(schema={"sha256": pl.Utf8, "path": pl.Utf8})
    if progress is not None:
        progress.reset(total=items["sha256"].n_unique())
    thumbs = make_thumbnails(items, report_dir / THUMBS_DIR, config.report.thumb_size, config.run.max_image_pixels,
                             progress)
    checks = expectation_rows(_read_json((run.get("validation") or {}).get("result_file")))
    page = report_dir / "index.html"
    atomic_write_text(page, render_report(review, rejects, run, config, report_dir, thumbs, checks))
    return page
