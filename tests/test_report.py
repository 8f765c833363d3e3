"""The static review report: pure rendering (flags, escaping), then the real page of a
real run in headless Chromium (what it shows, filters, no console errors)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
from html.parser import HTMLParser

import polars as pl
import pytest

from catalog_intel.report.render import render_report, review_rows
from catalog_intel.schemas import ATTRIBUTE_ORDER
from catalog_intel.settings import load_config
from cdp import CHROMIUM, Browser, chromium_cli


class _Page(HTMLParser):
    """Tags, classes and text of a page, enough to count and read what it shows."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        (self.scripts if self._in_script else self.text).append(data)

    def find(self, tag: str, klass: str | None = None) -> list[dict]:
        return [a for t, a in self.tags if t == tag and (klass is None or klass in (a.get("class") or "").split())]


def _table(config):
    rows = []
    for image, conf, copy_error in (("ok.jpg", 0.9, None), ("low.jpg", None, None), ("fail.jpg", 0.9, "HTTP 500 <b>")):
        row = {"image": image, "sha256": hashlib.sha256(image.encode()).hexdigest(), "path": f"/nowhere/{image}",
               "product_id": None}
        for a in ATTRIBUTE_ORDER:
            row[a], row[f"{a}_confidence"] = config.attributes[a].values[0], conf or 0.9
        rows.append(row)
    low = rows[1]
    low["color_confidence"] = config.attributes["color"].min_confidence + 0.01  # just above: borderline
    low["neckline"], low["neckline_confidence"] = "unknown", 0.05
    table = pl.DataFrame(rows)
    return table.with_columns(
        pl.Series("title", ['Top <script>alert("x")</script> & "more"', "Plain top", None]),
        pl.Series("bullet_points", [["<img src=x onerror=alert(1)>"], ["soft"], None], dtype=pl.List(pl.Utf8)),
        pl.Series("description", ["</article><h1>injected</h1>", "d", None]),
        pl.Series("style_summary", ["s", "s", None]),
        pl.Series("seo_tags", [["a"], ["b"], None], dtype=pl.List(pl.Utf8)),
        pl.Series("copy_error", [None, None, "HTTP 500 <b>"], dtype=pl.Utf8),
        pl.Series("similar_images", [["low.jpg"], ["ok.jpg"], None], dtype=pl.List(pl.Utf8)),
        pl.Series("similar_scores", [[0.91], [0.91], None], dtype=pl.List(pl.Float32)),
        pl.Series("group_id", ["low.jpg", "low.jpg", None]),
        pl.Series("group_size", [2, 2, None], dtype=pl.UInt32),
        pl.Series("duplicate_of", [None, None, None], dtype=pl.Utf8),
    )


def test_review_flags_highlights_and_escaping(tmp_path):
    config = load_config(None, {"report.low_confidence_margin": 0.05})
    rejects = pl.DataFrame({"image": ["fail.jpg", "broken <i>.jpg"], "reason": ["LLM copy failed: HTTP 500 <b>", "empty file"]})
    review = review_rows(_table(config), rejects, config, with_copy=True)
    flags = {r["image"]: r for r in review.iter_rows(named=True)}
    assert not flags["ok.jpg"]["needs_review"]
    assert flags["low.jpg"]["needs_review"] and flags["low.jpg"]["low_attributes"] == ["color"]
    assert flags["low.jpg"]["unknown_attributes"] == ["neckline"]
    assert flags["fail.jpg"]["needs_review"] and flags["fail.jpg"]["copy_failed"]
    assert flags["fail.jpg"]["reject_reason"] == "LLM copy failed: HTTP 500 <b>"
    assert review["image"].to_list() == ["fail.jpg", "low.jpg", "ok.jpg"]  # review queue first

    html = render_report(review, rejects, {"rows": 2, "rejects": 2, "inputs": 4}, config, tmp_path, set(), [])
    page = _Page(html)
    cards = page.find("article", "card")
    assert [c["data-review"] for c in cards] == ["1", "1", "0"]
    assert [c["data-neckline"] for c in cards] == ["round neck", "unknown", "round neck"]
    assert len(page.scripts) == 1 and not page.find("img") and not page.find("h1")[1:]  # nothing injected
    assert 'Top <script>alert("x")</script> & "more"' in page.text  # shown as text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;more&#34;" in html
    assert "&lt;/article&gt;&lt;h1&gt;injected&lt;/h1&gt;" in html
    assert len(page.find("tr", "borderline")) == 1 and len(page.find("tr", "unknown")) == 1
    assert "broken <i>.jpg" in page.text and "Copy failed: HTTP 500 <b>" in page.text
    # The CSP admits exactly the inline script and style the page carries.
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


# --- the real page in headless Chromium --------------------------------------------------------

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` is not installed: the report "
                                                             "is not rendered (apt-get install chromium)")


@needs_chromium
@pytest.mark.slow
def test_report_page_shows_the_run(catalog_run, tmp_path):
    page_path = catalog_run.out / "report" / "index.html"
    url = page_path.resolve().as_uri()
    png = tmp_path / "report.png"
    shot = chromium_cli(tmp_path / "profile", "--window-size=1280,1600", f"--screenshot={png}", url)
    assert png.is_file() and png.stat().st_size > 20_000, shot.stderr[-2000:]
    if os.environ.get("CATALOG_INTEL_REPORT_SCREENSHOT"):
        shutil.copyfile(png, os.environ["CATALOG_INTEL_REPORT_SCREENSHOT"])

    dom = chromium_cli(tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    page = _Page(dom.stdout)
    table = pl.read_parquet(catalog_run.out / "catalog.parquet")
    cards = page.find("article", "card")
    assert len(cards) == table.height == 13
    assert sorted(c["data-fit"] for c in cards) == sorted(table["fit"].to_list())
    assert {t for t in page.text if "=" in t} >= {"15 = 13 catalog rows + 2 rejects"}
    checks = re.search(r"(\d+) of (\d+) checks passed", " ".join(page.text))
    assert checks and checks.group(1) == checks.group(2) and int(checks.group(1)) > 40
    rejects = dom.stdout[dom.stdout.index('id="rejects-table"'):]
    cells = re.findall(r"<td>(.*?)</td>", rejects)
    assert dict(zip(cells[::2], cells[1::2])) == {"empty.jpg": "empty file (0 bytes)",
                                                 "readme.png": cells[3]} and cells[3].startswith("not an image")
    thumbs = {a["src"] for a in page.find("img", "thumb")}
    assert len(thumbs) == 12  # one per distinct content; the identical copy shares its twin's
    assert all((page_path.parent / src).is_file() for src in thumbs)
    assert not [line for line in dom.stderr.splitlines() if "Uncaught" in line or ":CONSOLE" in line]


@needs_chromium
@pytest.mark.slow
def test_report_filters_hide_non_matching_cards(catalog_run, tmp_path):
    table = pl.read_parquet(catalog_run.out / "catalog.parquet")
    abstained = table.filter(pl.col("fit") == "unknown")
    assert 0 < abstained.height < table.height  # fit's threshold is the median confidence
    sleeve = table["sleeve"].value_counts(sort=True)["sleeve"][0]

    visible = "Array.from(document.querySelectorAll('#cards .card')).filter(c => !c.hidden)"
    with Browser(tmp_path / "profile") as browser:
        browser.open((catalog_run.out / "report" / "index.html").resolve().as_uri())
        assert browser.evaluate(f"{visible}.length") == 13
        assert browser.evaluate("document.getElementById('shown').textContent") == "13 of 13 shown"

        browser.click("input[name=review]")  # "needs review only"
        shown = browser.evaluate(f"{visible}.map(c => [c.querySelector('h3').textContent, c.dataset.fit])")
        assert sorted(i for i, _ in shown) == sorted(abstained["image"].to_list())
        assert {f for _, f in shown} == {"unknown"}
        assert browser.evaluate("document.getElementById('shown').textContent") == f"{abstained.height} of 13 shown"

        browser.evaluate("(() => { const s = document.querySelector('select[data-attr=sleeve]'); "
                         f"s.value = {sleeve!r}; s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()")
        both = abstained.filter(pl.col("sleeve") == sleeve)["image"].to_list()
        assert sorted(browser.evaluate(f"{visible}.map(c => c.querySelector('h3').textContent)")) == sorted(both)
        browser.click("input[name=review]")
        only_sleeve = table.filter(pl.col("sleeve") == sleeve)["image"].to_list()
        assert sorted(browser.evaluate(f"{visible}.map(c => c.querySelector('h3').textContent)")) == sorted(only_sleeve)

        first = f"{visible}[0]"
        assert browser.evaluate(f"{first}.querySelector('img.thumb').naturalWidth") > 0  # thumbnail loaded from disk
        links = browser.evaluate(f"Array.from({first}.querySelectorAll('.similar a')).map(a => a.getAttribute('href'))")
        assert len(links) == 3 and all(browser.evaluate(f"!!document.querySelector('{h}')") for h in links)
        assert browser.console_errors() == []


def test_a_run_with_no_usable_images_still_gets_a_report(tmp_path):
    from catalog_intel.schemas import CSV_COLUMNS
    from catalog_intel.report.render import write_report

    config = load_config()
    empty = pl.DataFrame(schema={c: pl.Utf8 for c in CSV_COLUMNS})  # what the flow exports then
    rejects = pl.DataFrame({"image": ["a.jpg", "b.png"], "reason": ["empty file (0 bytes)", "not an image"]})
    run = {"inputs": 2, "rows": 0, "rejects": 2, "outputs": {"rejects_csv": str(tmp_path / "rejects.csv")}}
    (tmp_path / "rejects.csv").write_text("image,reason\n")
    page_path = write_report(review_rows(empty, rejects, config, with_copy=False), rejects, run, config, tmp_path)
    page = _Page(page_path.read_text())
    assert str(page_path) == str(tmp_path / "report" / "index.html")
    assert not page.find("article", "card")
    assert "2 = 0 catalog rows + 2 rejects" in page.text and "No validation ran (no usable rows)." in page.text
    assert [a["href"] for a in page.find("a")] == ["../rejects.csv"]
    assert "empty file (0 bytes)" in page.text and "Rejects (2)" in page.text


def test_product_pages_escape_link_similar_and_drop_stale(tmp_path):
    from catalog_intel.report.render import product_page_name, write_product_pages

    config = load_config()
    table = _table(config)
    (tmp_path / "stale.html").write_text("old")
    paths = write_product_pages(table, config, tmp_path, back="../index.html")
    assert sorted(p.name for p in paths) == sorted(product_page_name(i) for i in table["image"])
    assert not (tmp_path / "stale.html").exists()
    page = _Page((tmp_path / product_page_name("ok.jpg")).read_text())
    assert 'Top <script>alert("x")</script> & "more"' in page.text and not page.find("script")
    assert [t for t in page.find("h1")] and len(page.find("h1")) == 1  # the title only, nothing injected
    assert "<img src=x onerror=alert(1)>" in page.text and not page.find("img")  # no image file: no <img>
    assert [a["href"] for a in page.find("a")] == ["../index.html", product_page_name("low.jpg")]
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "script-src 'none'" in csp
    failed = _Page((tmp_path / product_page_name("fail.jpg")).read_text())
    assert "Copy failed: HTTP 500 <b>" in failed.text


def test_thumbnails_for_several_folders_decode_each_image_once_and_keep_each_folders_own(tmp_path, monkeypatch):
    from PIL import Image

    from catalog_intel.report import render

    sources = []
    for i, colour in enumerate(["red", "navy", "olive"]):
        path = tmp_path / "src" / f"{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (800, 1000), colour).save(path)
        sources.append(str(path))
    items = pl.DataFrame({"sha256": [hashlib.sha256(p.encode()).hexdigest() for p in sources], "path": sources})
    decoded = []
    real_load = render.load_rgb
    monkeypatch.setattr(render, "load_rgb", lambda path, *a, **k: decoded.append(path) or real_load(path, *a, **k))
    small, large = tmp_path / "thumbs", tmp_path / "pdp"
    (large).mkdir()
    (large / "0000unused.jpg").write_bytes(b"stale")
    targets = {small: (items, 192), large: (items.head(2), 384)}  # the larger ones only for the first two

    made = render.make_thumbnails(targets, 50_000_000)
    assert made == {small: set(items["sha256"]), large: set(items["sha256"].head(2))}
    assert sorted(decoded) == sorted(sources)  # once each, for both sizes
    assert sorted(Image.open(small / render.thumb_name(s)).size for s in items["sha256"]) == [(153, 192), (153, 192), (154, 192)]  # 2 made from the 384 ones
    assert sorted(Image.open(large / render.thumb_name(s)).size for s in items["sha256"].head(2)) == [(307, 384)] * 2
    assert sorted(p.name for p in large.iterdir()) == sorted(render.thumb_name(s) for s in items["sha256"].head(2))

    decoded.clear()
    assert render.make_thumbnails(targets, 50_000_000) == made and decoded == []  # a re-run makes none
