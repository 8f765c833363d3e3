"""Shop exports: each file is parsed back with the standard readers, with hostile copy."""

import csv
import html.parser
import json

import polars as pl
import pytest
from conftest import make_source, run_catalog

from catalog_intel.errors import ConfigError
from catalog_intel.settings import load_config
from catalog_intel.exports import write_exports
from catalog_intel.exports.merchant import COLUMNS as GMC_COLUMNS
from catalog_intel.exports.shopify import COLUMNS as SHOPIFY_COLUMNS

HOSTILE_TITLE = '=HYPERLINK("http://evil","x"), "quoted"\ttab\nline <script>alert(1)</script>'
HOSTILE_DESCRIPTION = 'Soft & light: "50%" cotton,\r\nno </p><script>x()</script> here\u2028end'
HOSTILE_BULLETS = ["<b>bold</b> & co", "+1 formula\tcell", "-minus, comma"]
HOSTILE_TAGS = ["red, top", "Red top", "@at"]


def _table() -> pl.DataFrame:
    return pl.DataFrame({
        "image": ["shots/Red Top 1.jpg", "shots/red-top-2.jpg", "blue.jpg"], "sha256": ["a" * 64, "b" * 64, "c" * 64],
        "product_id": ["SKU 7", "SKU 7", None],
        "color": ["red", "red", "unknown"], "pattern": ["solid", "solid", "striped"],
        "fabric": ["unknown", "unknown", "cotton"], "garment_type": ["blouse", "blouse", "unknown"],
        "title": [HOSTILE_TITLE, HOSTILE_TITLE, "Blue striped top"],
        "bullet_points": [HOSTILE_BULLETS, HOSTILE_BULLETS, ["Striped", "Cotton"]],
        "description": [HOSTILE_DESCRIPTION, HOSTILE_DESCRIPTION, "A blue top."],
        "style_summary": ["Easy.", "Easy.", "-Casual"],
        "seo_tags": [HOSTILE_TAGS, HOSTILE_TAGS, ["blue top", "striped", "cotton top"]],
        "price": ["19.90", "19.90", None],
    })


def _config(**exports):
    return load_config(overrides={"exports.formats": ["shopify", "gmc", "jsonl", "pdp"],
                                  **{f"exports.{k}": v for k, v in exports.items()}})


class _Collect(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_shopify_csv_parses_back_with_escaped_html_and_neutralised_formulas(tmp_path):
    cfg = _config(vendor="Acme, \"Ltd\"", image_base_url="https://cdn.example/img/", currency="EUR")
    paths, warnings = write_exports(_table(), tmp_path, cfg)
    with open(paths["export_shopify"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == SHOPIFY_COLUMNS
    assert [r["Handle"] for r in rows] == ["sku-7", "sku-7", "blue"]
    first, second_image, blue = rows
    # The title keeps its text, on one line, behind a quote that stops the formula.
    assert first["Title"] == "'" + HOSTILE_TITLE.replace("\t", " ").replace("\n", " ")
    assert first["Vendor"] == 'Acme, "Ltd"' and first["Published"] == "FALSE" and first["Status"] == "draft"
    assert first["Type"] == "blouse" and blue["Type"] == ""  # unknown is no value
    assert first["Option1 Name"] == "Title" and first["Option1 Value"] == "Default Title"
    assert first["Variant Price"] == "19.90" and blue["Variant Price"] == ""
    assert first["Image Src"] == "https://cdn.example/img/shots/Red%20Top%201.jpg" and first["Image Position"] == "1"
    # A second image of the same product: only Handle and the image columns.
    assert second_image["Image Position"] == "2" and second_image["Image Src"].endswith("red-top-2.jpg")
    assert second_image["Title"] == "" and second_image["Body (HTML)"] == ""
    assert first["Tags"] == "red top, Red top, @at"  # commas inside a tag would split it
    # Body (HTML): the only tags are ours; the hostile markup arrives as text.
    parsed = _Collect()
    parsed.feed(first["Body (HTML)"])
    assert parsed.tags == ["p", "ul", "li", "li", "li"]
    assert "<script>x()</script>" in "".join(parsed.text) and "<b>bold</b> & co" in "".join(parsed.text)
    assert "&lt;script&gt;" in first["Body (HTML)"] and "\n" not in first["Body (HTML)"]
    assert blue["SEO Description"] == "'-Casual"
    assert not any("vendor" in w or "image_base_url" in w for w in warnings)


def test_merchant_feed_parses_back_one_item_per_product_with_structured_ai_text(tmp_path):
    cfg = _config(product_url="https://shop.example/p/{handle}", image_base_url="https://cdn.example",
                  currency="EUR", availability="in_stock", gender="female", age_group="adult", vendor="Acme")
    paths, warnings = write_exports(_table(), tmp_path, cfg)
    text = open(paths["export_gmc"], encoding="utf-8", newline="").read()
    assert text.count("\n") == 3 and "\r" not in text  # header + 2 products, no break inside a value
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert tuple(rows[0].keys()) == GMC_COLUMNS and [r["id"] for r in rows] == ["sku-7", "blue"]
    red, blue = rows
    assert all(len(line.split("\t")) == len(GMC_COLUMNS) for line in text.splitlines())
    assert red["title"] == "" and red["description"] == ""  # AI text only in the structured attributes
    flat = HOSTILE_TITLE.replace("\t", " ").replace("\n", " ")
    assert red["structured_title"] == 'trained_algorithmic_media:"' + flat.replace('"', '""') + '"'
    assert red["structured_description"].startswith('trained_algorithmic_media:"Soft & light: ""50%"" cotton, no')
    assert red["link"] == "https://shop.example/p/sku-7" and red["image_link"] == "https://cdn.example/shots/Red%20Top%201.jpg"
    assert red["price"] == "19.90 EUR" and blue["price"] == ""
    assert (red["color"], red["material"], blue["color"], blue["material"]) == ("red", "", "", "cotton")
    assert (red["availability"], red["gender"], red["age_group"], red["brand"]) == ("in_stock", "female", "adult", "Acme")
    assert warnings == []


def test_missing_shop_values_stay_empty_and_are_warned_once_by_key(tmp_path):
    table = _table().drop("price")
    paths, warnings = write_exports(table, tmp_path, _config())
    keys = [w.split("set ")[1].split(" ")[0] for w in warnings if "left empty" in w]
    assert sorted(keys) == sorted(["exports.vendor", "exports.image_base_url", "exports.price_column",
                                   "exports.product_url", "exports.availability", "exports.gender",
                                   "exports.age_group"])
    assert not any("pdp" in w for w in warnings)  # the pages need no shop values
    with open(paths["export_shopify"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["Vendor"] for r in rows} == {""} and {r["Image Src"] for r in rows} == {""}
    gmc = list(csv.DictReader(open(paths["export_gmc"]).read().splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert {r["link"] for r in gmc} == {""} and {r["price"] for r in gmc} == {""}


def test_jsonl_is_one_object_per_row_with_native_lists(tmp_path):
    table = _table().with_columns(pl.lit(float("nan")).alias("score"))
    paths, _ = write_exports(table, tmp_path, _config())
    raw = open(paths["export_jsonl"], encoding="utf-8").read()
    assert "\u2028" not in raw and raw.count("\n") == 3
    rows = [json.loads(line) for line in raw.splitlines()]
    assert [r["image"] for r in rows] == table["image"].to_list()
    assert rows[0]["title"] == HOSTILE_TITLE and rows[0]["description"] == HOSTILE_DESCRIPTION
    assert rows[0]["bullet_points"] == HOSTILE_BULLETS and rows[2]["product_id"] is None and rows[0]["score"] is None


def test_pdp_export_writes_one_escaped_product_page_per_row(tmp_path):
    cfg = _config()
    table = _table()
    paths, warnings = write_exports(table, tmp_path, cfg)
    folder = tmp_path / "exports" / "pdp"
    pages = sorted(folder.glob("*.html"))
    assert paths["export_pdp"] == str(folder) and not any("pdp" in w for w in warnings)
    assert len(pages) == table.height
    text = "".join(p.read_text(encoding="utf-8") for p in pages)
    assert "<script>" not in text and "&lt;script&gt;" in text  # hostile copy is escaped, never markup


def test_export_config_is_checked():
    from catalog_intel.settings import export_formats, resolve_settings

    assert export_formats("shopify, jsonl,,gmc") == ["shopify", "jsonl", "gmc"] and export_formats(None) is None
    assert resolve_settings(export="gmc,pdp").exports.formats == ("gmc", "pdp")
    with pytest.raises(ConfigError, match="unknown export"):
        load_config(overrides={"exports.formats": ["shopify", "amazon"]})
    with pytest.raises(ConfigError, match="handle"):
        load_config(overrides={"exports.product_url": "https://shop.example/p/"})
    with pytest.raises(ConfigError, match="availability"):
        load_config(overrides={"exports.availability": "yes"})


@pytest.mark.slow
def test_a_run_with_export_writes_the_shop_files_and_warns_once(prefect_server, tmp_path, config_file):
    from catalog_intel.cli import build_parser
    src = make_source(tmp_path / "src", 3)
    args = build_parser().parse_args(["run", str(src), "--out", "x", "--export", "shopify, jsonl,gmc"])
    assert args.export == "shopify, jsonl,gmc"
    out = tmp_path / "out"
    summary = run_catalog(src, out, config_file, no_llm=True, export=args.export)
    exports = out / "exports"
    assert summary["outputs"]["export_shopify"] == str(exports / "shopify_products.csv")
    assert sorted(p.name for p in exports.iterdir()) == ["catalog.jsonl", "google_merchant.tsv", "shopify_products.csv"]
    with open(exports / "shopify_products.csv", newline="") as fh:
        assert sorted(r["Handle"] for r in csv.DictReader(fh)) == sorted(p.stem.replace(" ", "-").replace("(", "")
                                                                        .replace(")", "") for p in src.iterdir())
    assert len((exports / "catalog.jsonl").read_text().splitlines()) == 3
    warned = [w for w in summary["export_warnings"] if "set exports.vendor in the config" in w]
    assert len(warned) == 1  # once per run, and in the run summary's notes
    from catalog_intel.pipeline.summary import RunSummary

    assert warned[0] in RunSummary(**summary).one_line()
