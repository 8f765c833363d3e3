"""The review loop end to end: a real run, its report in headless Chromium (edit a colour and
a title, approve a row, edits survive a reload, download the edits CSV), then a second run
with `--facts edits.csv` against a counting LLM server: the edited values are in the catalog
and the report, and copy is requested only for the row whose attributes changed."""

from __future__ import annotations

import base64
import csv
import os
import time

import polars as pl
import pytest

from cdp import CHROMIUM, Browser
from conftest import make_source, run_catalog, write_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` is not installed (apt-get install chromium)")]

TITLE = 'Reviewer\'s "own" title, kept'


def _screenshot(browser: Browser, target: str) -> None:
    data = browser.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
    with open(target, "wb") as fh:
        fh.write(base64.b64decode(data))


def test_edits_in_the_report_are_honoured_by_the_next_run(prefect_server, tiny_clip, tmp_path):
    from llm_server import FakeLLMServer

    out, cache = tmp_path / "out", tmp_path / "cache"
    src = make_source(tmp_path / "src", 5)
    config = write_config(tmp_path / "c.toml", tiny_clip, {"search": {"top_k": 2}}, min_confidence=0.0)
    with FakeLLMServer() as llm:
        run_catalog(src, out, config, cache, llm_base_url=llm.base_url)
    first = pl.read_parquet(out / "catalog.parquet").sort("image")
    assert first.height == 5 and first["title"].null_count() == 0
    recolour, retitle, approve, reject, bulk = first["image"].to_list()
    new_color = next(c for c in ("turquoise", "purple", "orange", "yellow", "pink", "green")
                     if c not in first["color"].to_list())

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    page = (out / "report" / "index.html").resolve().as_uri()
    with Browser(tmp_path / "profile", height=1100) as browser:
        browser.open(page)
        ids = browser.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('#cards .card'))"
                               ".map(c => [c.dataset.image, c.id]))")
        # a colour from the vocabulary (opening the editor adds the choices)
        assert browser.evaluate(f"document.querySelectorAll('#{ids[recolour]} select[data-field=color] option').length") == 1
        browser.click(f"#{ids[recolour]} details.editor summary")
        assert browser.evaluate(f"document.querySelectorAll('#{ids[recolour]} select[data-field=color] option').length") \
            == 16  # 15 colours + unknown
        browser.evaluate(f"(() => {{ const s = document.querySelector('#{ids[recolour]} select[data-field=color]'); "
                         f"s.value = {new_color!r}; s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()")
        # a title, typed like a user: open the editor, select the field's text, type, leave the field
        browser.click(f"#{ids[retitle]} details.editor summary")
        browser.evaluate(f"(() => {{ const i = document.querySelector('#{ids[retitle]} input[data-field=title]'); "
                         "i.focus(); i.select(); })()")
        browser.send("Input.insertText", text=TITLE)
        browser.click(f"#{ids[retitle]} h3")
        browser.click(f"#{ids[approve]} button[data-act=approve]")
        browser.click(f"#{ids[reject]} input.reason")
        browser.send("Input.insertText", text="wrong product, shows a dress")
        browser.click(f"#{ids[reject]} button[data-act=reject]")
        # bulk: filter down to one card by text, approve all shown
        browser.click("#filters input[name=q]")
        browser.send("Input.insertText", text=bulk.lower())
        assert browser.evaluate("document.getElementById('shown').textContent") == "1 of 5 shown"
        browser.click("#approve-shown")

        def progress():
            return browser.evaluate("['approved','edited','rejected','pending'].map(k => "
                                    "document.getElementById('n-' + k).textContent)")

        assert progress() == ["2", "2", "1", "0"]
        acceptance = browser.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('#acceptance tbody tr'))"
                                      ".map(r => [r.dataset.attr, r.querySelector('td').textContent]))")
        assert acceptance["color"] == "75% (3 of 4)" and acceptance["fit"] == "100% (4 of 4)"
        assert browser.evaluate(f"document.querySelector('#{ids[recolour]} td[data-show=color]').textContent") == new_color
        assert browser.evaluate(f"document.querySelector('#{ids[retitle]} [data-show=title]').textContent") == TITLE
        shown_colors = browser.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('#cards .card'))"
                                        ".map(c => [c.dataset.image, c.querySelector('td[data-show=color]').textContent]))")
        assert shown_colors == {**dict(zip(first["image"], first["color"])), recolour: new_color}
        browser.evaluate("(() => { const q = document.querySelector('#filters input[name=q]'); q.value = ''; "
                         "q.dispatchEvent(new Event('input', {bubbles: true})); })()")
        assert browser.evaluate("document.getElementById('shown').textContent") == "5 of 5 shown"
        browser.evaluate(f"document.querySelector('#{ids[retitle]} details.editor').open = false")
        browser.evaluate("window.scrollTo(0, document.getElementById('gallery').offsetTop)")
        _screenshot(browser, os.environ.get("CATALOG_INTEL_REVIEW_SCREENSHOT", str(tmp_path / "report-review.png")))

        browser.open(page)  # edits survive a reload
        assert progress() == ["2", "2", "1", "0"]
        assert browser.evaluate(f"document.querySelector('#{ids[recolour]} select[data-field=color]').value") == new_color
        assert browser.evaluate(f"document.getElementById('{ids[recolour]}').dataset.status") == "edited"

        browser.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        browser.click("#download-edits")
        deadline = time.monotonic() + 30
        while not (downloads / "edits.csv").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (downloads / "edits.csv").is_file()
        assert (downloads / "edits.csv").read_bytes().decode() == browser.evaluate("window.catalogReviewEditsCsv()")

        pdp = browser.evaluate(f"document.querySelector('#{ids[retitle]} a.pdp').href")
        browser.open(pdp)
        assert browser.evaluate("document.querySelector('h1').textContent") == first["title"][1]
        assert browser.evaluate("document.querySelector('img.hero').naturalWidth") > 0
        assert len(browser.evaluate("Array.from(document.querySelectorAll('.similar a[href]'))")) == 2
        _screenshot(browser, os.environ.get("CATALOG_INTEL_PDP_SCREENSHOT", str(tmp_path / "pdp.png")))
        assert browser.console_errors() == []

    with open(downloads / "edits.csv", newline="") as fh:
        rows = {r["image"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {recolour, retitle, approve, reject, bulk}
    assert list(next(iter(rows.values()))) == ["image", "color", "title", "review_status", "review_reason"]
    assert rows[recolour] == {"image": recolour, "color": new_color, "title": "", "review_status": "edited",
                              "review_reason": ""}
    assert rows[retitle]["title"] == TITLE and rows[retitle]["color"] == ""
    assert rows[approve]["review_status"] == rows[bulk]["review_status"] == "approved"
    assert rows[reject]["review_status"] == "rejected" and rows[reject]["review_reason"] == "wrong product, shows a dress"

    with FakeLLMServer() as llm:
        run_catalog(src, out, config, cache, llm_base_url=llm.base_url, facts=str(downloads / "edits.csv"))
        asked = [entry["attrs"] for entry in llm.request_log]
    second = pl.read_parquet(out / "catalog.parquet").sort("image")
    assert len(asked) == 1 and asked[0]["color"] == new_color  # only the row whose attributes changed
    by_image = {r["image"]: r for r in second.iter_rows(named=True)}
    assert by_image[recolour]["color"] == new_color and by_image[recolour]["title"] != first["title"][0]
    assert by_image[recolour]["color_source"] == "facts" and by_image[recolour]["color_confidence"] == 1.0
    assert by_image[retitle]["title"] == TITLE
    assert by_image[retitle]["description"] == first["description"][1]
    assert by_image[approve]["title"] == first["title"][2]
    assert [by_image[i]["review_status"] for i in (recolour, retitle, approve)] == ["edited", "edited", "approved"]
    assert by_image[bulk]["title"] == first["title"][4]
    assert reject not in by_image
    rejects = dict(pl.read_csv(out / "rejects.csv").iter_rows())
    assert rejects == {reject: "rejected by reviewer: wrong product, shows a dress"}

    with Browser(tmp_path / "profile2") as browser:
        browser.open(page)
        ids = browser.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('#cards .card'))"
                               ".map(c => [c.dataset.image, c.id]))")
        assert browser.evaluate(f"document.getElementById('{ids[recolour]}').dataset.color") == new_color
        assert browser.evaluate(f"document.querySelector('#{ids[retitle]} [data-show=title]').textContent") == TITLE
        assert browser.evaluate("document.getElementById('n-pending').textContent") == "5"  # a new run: fresh review
        assert browser.evaluate(f"document.getElementById('{ids[reject]}').dataset.review") == "1"  # shown as rejected
        assert "reviewed earlier: approved" in browser.evaluate(f"document.getElementById('{ids[approve]}').textContent")
