"""Review report cost at catalog scale (not a test): template render time, page size, product
pages, and the page's load in headless Chromium (filters + review state for every card).

Synthetic rows (vocabulary values, copy of realistic length, 3 similar products each), no
thumbnails. The page holds at most report.max_cards cards (2000 by default).

    .venv/bin/python bench/report_render.py                 # 500 and 2000 cards
    .venv/bin/python bench/report_render.py --sizes 2000 --no-browser
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from catalog_intel.schemas import ATTRIBUTE_ORDER
from catalog_intel.settings import resolve_settings  # noqa: E402
from catalog_intel.report.render import render_report, review_rows, write_product_pages  # noqa: E402
from bench.harness import add_report_args, report  # noqa: E402


def synthetic(n: int, config) -> pl.DataFrame:
    rows = []
    for i in range(n):
        image = f"img-{i:06d}.jpg"
        row = {"image": image, "sha256": hashlib.sha256(image.encode()).hexdigest(), "path": None, "product_id": f"p{i}"}
        for a in ATTRIBUTE_ORDER:
            values = config.attributes[a].values
            row[a], row[f"{a}_confidence"] = values[i % len(values)], 0.3 + (i % 7) / 10
        row.update(title=f"Soft floral blouse number {i}", description="A relaxed top in a light fabric. " * 4,
                   style_summary="Easy everyday style.", bullet_points=["Soft", "Relaxed fit", "Floral print"],
                   seo_tags=["blouse", "floral", "top"], similar_images=[f"img-{(i + k) % n:06d}.jpg" for k in (1, 2, 3)],
                   similar_scores=[0.9, 0.8, 0.7], copy_error=None)
        rows.append(row)
    return pl.DataFrame(rows).with_columns(pl.col("similar_scores").cast(pl.List(pl.Float32)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--no-browser", action="store_true")
    add_report_args(parser, "report_render")
    args = parser.parse_args()
    config = resolve_settings()
    figures = []
    rejects = pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8})
    for n in args.sizes:
        table = synthetic(n, config)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            review = review_rows(table, rejects, config, with_copy=True)
            t = time.perf_counter()
            html = render_report(review, rejects, {"rows": n, "inputs": n}, config, folder / "report", set(), [],
                                 pdp=True)
            render_s = time.perf_counter() - t
            page = folder / "report" / "index.html"
            page.parent.mkdir(parents=True)
            page.write_text(html)
            t = time.perf_counter()
            write_product_pages(table, config, folder / "report" / "products")
            pdp_s = time.perf_counter() - t
            row = {"cards": n, "render_s": round(render_s, 2), "page_mb": round(len(html.encode()) / 1e6, 2),
                   "product_pages_s": round(pdp_s, 2)}
            line = (f"{n} cards: render {render_s:.2f} s, page {len(html.encode()) / 1e6:.1f} MB; "
                    f"{n} product pages {pdp_s:.2f} s")
            if not args.no_browser:
                from cdp import CHROMIUM, Browser

                if CHROMIUM:
                    with Browser(folder / "profile") as browser:
                        t = time.perf_counter()
                        browser.open(page.resolve().as_uri())
                        load_s = time.perf_counter() - t
                        t = time.perf_counter()
                        browser.evaluate("document.getElementById('approve-shown').click()")
                        bulk_s = time.perf_counter() - t
                        assert browser.evaluate("document.getElementById('n-approved').textContent") == str(n)
                    row.update(chromium_load_s=round(load_s, 2), approve_all_s=round(bulk_s, 2))
                    line += f"; chromium load {load_s:.2f} s, approve all {bulk_s:.2f} s"
            print(line, flush=True)
            figures.append(row)
    report("report_render", figures, args.json)


if __name__ == "__main__":
    main()
