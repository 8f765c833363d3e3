"""Copy in several languages: translated attributes, per-language prompts and cache,
the grounding checker per language, suffixed columns and catalog.<lang>.csv."""

import csv

import polars as pl
import pytest
from conftest import make_source, run_catalog

from catalog_intel.errors import ConfigError
from catalog_intel.settings import load_config
from catalog_intel.copywriting.copywriter import build_messages, copy_key, describe, prompt_attributes
from catalog_intel.copywriting.languages import (describe_languages, language_gate, language_llm, language_pass_rate,
                                     translate_attributes)

ROW = {"color": "black", "neckline": "round neck", "sleeve": "short sleeve", "pattern": "striped",
       "fabric": "unknown", "fit": "unknown", "garment_type": "t-shirt"}


@pytest.fixture(scope="module")
def config():
    return load_config(overrides={"llm.languages": ["en", "de", "fr"]})


def _copy(title, description="Ein Oberteil für jeden Tag.", bullets=("Rundhals", "Gestreift"), tags=None):
    return {"title": title, "bullet_points": list(bullets), "description": description,
            "style_summary": "Schlicht und vielseitig.", "seo_tags": list(tags or ["t-shirt", "streifen", "basic"])}


def _translated(config, lang, row=ROW):
    frame = translate_attributes(pl.DataFrame([{"sha256": "a", **row}]), config, lang)
    return {k: v for k, v in frame.row(0, named=True).items() if k != "sha256"}


def test_the_llm_gets_the_attribute_words_and_the_prompt_in_its_language(config):
    de = _translated(config, "de")
    assert (de["color"], de["sleeve"], de["garment_type"], de["neckline"], de["fabric"]) == \
        ("schwarz", "kurzarm", "T-Shirt", "Rundhalsausschnitt", "unknown")
    llm = language_llm(config.llm, "de", config.languages["de"])
    messages = build_messages(prompt_attributes(de), llm)
    assert "Write every field in German only" in messages[0]["content"] and '"Damen-Oberteil"' in messages[0]["content"]
    assert len(messages) == 2 and '"color": "schwarz"' in messages[1]["content"]  # no English example
    fr = _translated(config, "fr")
    assert (fr["color"], fr["sleeve"], fr["garment_type"]) == ("noir", "manches courtes", "t-shirt")
    # Cached per language: the same product has a different copy key in each.
    keys = {copy_key(prompt_attributes(ROW), config.llm), copy_key(prompt_attributes(de), llm),
            copy_key(prompt_attributes(fr), language_llm(config.llm, "fr", config.languages["fr"]))}
    assert len(keys) == 3


@pytest.mark.parametrize("lang,title,kind", [
    ("de", "Schwarzes gestreiftes T-Shirt mit kurzen Ärmeln", None),
    ("de", "Rotes gestreiftes T-Shirt", "colour"),
    ("de", "Schwarzes T-Shirt mit langen Ärmeln", "sleeve"),
    ("de", "Schwarzes gestreiftes Kleid", "garment"),
    ("de", "Schwarze Bluse mit Streifen", "garment"),
    ("de", "Schwarzes T-Shirt für Herren", "gender"),
    ("fr", "T-shirt noir rayé à manches courtes", None),
    ("fr", "T-shirt blanc rayé", "colour"),
    ("fr", "T-shirt noir à manches longues", "sleeve"),
    ("fr", "Robe noire rayée", "garment"),
    ("de", "The Black T-Shirt", "language"),
    ("de", "Weißes T-Shirt", "colour"),
    ("fr", "T-shirt black", "language"),
    ("fr", "T-shirt noir rayé, une pattern rayée", "language"),
])
def test_the_checker_reads_colour_garment_and_sleeve_in_each_language(config, lang, title, kind):
    gate = language_gate(config, lang)
    copy = _copy(title, description="Schlicht." if lang == "de" else "Un basique.",
                 bullets=("Basic", "Bequem"), tags=["basic", "alltag", "shirt"])
    problems = gate.problems(_translated(config, lang), copy)
    assert [p.kind for p in problems if p.field == "title"] == ([kind] if kind else [])


def test_copy_in_english_instead_is_caught_but_shared_words_are_not(config):
    gate = language_gate(config, "de")
    attrs = {**_translated(config, "de"), "color": "rosa"}
    ok = _copy("Pinkes T-Shirt mit Streifen", description="Ein Top in Pink.", bullets=("Rundhals", "Gestreift"))
    assert gate.problems(attrs, ok) == []
    english = _copy("Rosa T-Shirt", description="Ein schlichtes Top mit Streifen. Perfect for the office.")
    [problem] = gate.problems(attrs, english)
    assert (problem.kind, problem.field, problem.sentence, problem.text) == \
        ("language", "description", "Perfect for the office.", "Perfect")
    fixed, _ = gate.repair(attrs, english, [problem])
    assert fixed["description"] == "Ein schlichtes Top mit Streifen."


def test_a_colour_before_trousers_is_a_styling_tip_not_a_claim(config):
    gate = language_gate(config, "de")
    copy = _copy("Schwarzes T-Shirt", description="Passt gut zu einer blauen Jeans.")
    assert gate.problems(_translated(config, "de"), copy) == []


def test_repair_rebuilds_a_title_summary_and_bullets_from_the_languages_templates(config):
    gate = language_gate(config, "de")
    attrs = _translated(config, "de")
    bad_title = _copy("Rotes T-Shirt")
    fixed, removed = gate.repair(attrs, bad_title, gate.problems(attrs, bad_title))
    assert fixed["title"] == "Damen-T-Shirt kurzarm, schwarz gestreift" and "Rotes T-Shirt" in removed[0]
    bad_bullet = _copy("Schwarzes T-Shirt", bullets=("Rundhals", "Gestreift", "Mit langen Ärmeln"))
    fixed, removed = gate.repair(attrs, bad_bullet, gate.problems(attrs, bad_bullet))
    assert fixed["bullet_points"] == ["Rundhals", "Gestreift"] and "Mit langen Ärmeln" in removed[0]
    # too few tags left (validation.seo_tags_min 2): padded in German, never in English ("black t-shirt")
    one_left = _copy("Schwarzes T-Shirt", tags=["basic", "kleid"])
    fixed, removed = gate.repair(attrs, one_left, gate.problems(attrs, one_left))
    assert fixed["seo_tags"] == ["basic", "t-shirt schwarz"] and gate.problems(attrs, fixed) == []


@pytest.mark.parametrize("lang,description,summary", [
    ("de", "Ein schwarzes T-Shirt mit Streifen und Rundhalsausschnitt. Es passt zu jedem Tag.",
     "T-Shirt kurzarm, schwarz gestreift: Rundhalsausschnitt."),
    ("fr", "Un t-shirt noir rayé à col rond. Il se porte tous les jours.",
     "T-shirt noir rayé: col rond, manches courtes."),
])
def test_a_summary_that_repeats_the_description_is_rebuilt_in_the_language(config, lang, description, summary):
    """With content_attempts = 1, the summary a small model copies from its description (16 of 20 German
    products were rejected for it, bench/copy_cost.py --languages) is the language's template instead."""
    gate = language_gate(config, lang)
    attrs = _translated(config, lang)
    copy = {**_copy("T-shirt", description=description, bullets=("Basic", "Bequem"), tags=["basic", "shirt", "top"]),
            "style_summary": description.split(". ")[0] + "."}
    problems = gate.problems(attrs, copy)
    assert [p.kind for p in problems] == ["summary_repeats"]
    fixed, removed = gate.repair(attrs, copy, problems)
    assert fixed["style_summary"] == summary and fixed["description"] == description
    assert gate.problems(attrs, fixed) == [] and "repeats the description" in removed[0]


def test_template_summaries_leave_out_what_is_not_known():
    from catalog_intel.copywriting import templates
    from catalog_intel.settings import CopyTemplates

    german = CopyTemplates(summary="{garment} {sleeve}, {color} {pattern}: {neckline}, {fabric}, {fit}.",
                           title_skip=("einfarbig",), unknown_garment="Oberteil")
    assert templates.summary({"garment_type": "Pullover", "sleeve": "langarm", "fit": "schmal"}, german) == \
        "Pullover langarm: schmal."
    assert templates.summary({"color": "rot", "pattern": "einfarbig"}, german) == "Oberteil, rot."
    assert templates.summary({}, german) == "Oberteil."
    assert templates.summary({"color": "multicolor", "neckline": "v-neck"}, CopyTemplates()) == "Top: v-neck."


def test_each_language_is_generated_once_and_then_cached(config, fake_llm, tmp_path):
    cfg = load_config(overrides={"llm.languages": ["en", "de", "fr"], "llm.base_url": fake_llm.base_url,
                                 "llm.requests_per_second": 50.0, "paths.cache_dir": str(tmp_path)})
    attributes = pl.DataFrame([{"sha256": "a", **ROW}, {"sha256": "b", **ROW, "color": "red"}])
    copy, stats = describe_languages(attributes, cfg, describe)
    assert fake_llm.requests == 4 and [s.calls for s in stats] == [2, 2]
    assert set(copy.columns) >= {"title_de", "bullet_points_de", "seo_tags_de", "copy_error_de", "title_fr"}
    # the language's title template, with the language's words
    assert copy.filter(pl.col("sha256") == "a")["title_de"][0] == "Damen-T-Shirt kurzarm, schwarz gestreift"
    assert copy.filter(pl.col("sha256") == "b")["title_fr"][0] == "T-shirt femme, rouge rayé manches courtes"
    again, stats = describe_languages(attributes, cfg, describe)
    assert fake_llm.requests == 4 and [s.cached for s in stats] == [2, 2]
    assert again.sort("sha256").equals(copy.sort("sha256"))


def test_language_config_is_checked():
    with pytest.raises(ConfigError, match=r"'it' without a \[languages.it\] table"):
        load_config(overrides={"llm.languages": ["en", "it"]})
    colours = ["black", "white", "grey", "beige", "brown", "red", "pink", "orange", "yellow", "green", "turquoise",
               "blue", "navy", "purple", "multicolor", "teal"]
    with pytest.raises(ConfigError, match=r"languages.de.words.color: no words for \['teal'\]"):
        load_config(overrides={"llm.languages": ["en", "de"], "attributes.color.values": colours})
    with pytest.raises(ConfigError, match=r"\['colour'\] are not attributes"):
        load_config(overrides={"llm.languages": ["en", "de"], "languages.de.words.colour.black": ["schwarz"]})
    with pytest.raises(ConfigError, match='must include "en"'):
        load_config(overrides={"llm.languages": ["de"]})
    # A smaller vocabulary is fine (extra words are ignored), and so is a table no run uses.
    load_config(overrides={"llm.languages": ["en", "de"], "attributes.color.values": ["black", "white"]})


def test_catalog_lang_csv_has_the_languages_copy_in_the_usual_columns(config, tmp_path):
    from catalog_intel.schemas import CSV_COLUMNS
    from catalog_intel.exports.tables import write_outputs

    table = pl.DataFrame([{"image": "a.jpg", "product_id": None, **ROW, "title": "Black tee",
                           "bullet_points": ["Black", "Tee"], "description": "A tee.", "style_summary": "Easy.",
                           "seo_tags": ["tee", "black", "top"], "title_de": "=Schwarzes T-Shirt",
                           "bullet_points_de": ["Schwarz", "Baumwolle; weich"], "description_de": "Ein Shirt.",
                           "style_summary_de": "Schlicht.", "seo_tags_de": ["t-shirt", "schwarz", "basic"]}])
    paths = write_outputs(table, pl.DataFrame(schema={"image": pl.Utf8, "reason": pl.Utf8}), tmp_path)
    assert paths["catalog_csv_de"] == str(tmp_path / "catalog.de.csv")
    with open(tmp_path / "catalog.de.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[0]["color"] == "black"
    assert rows[0]["title"] == "'=Schwarzes T-Shirt" and rows[0]["bullet_points"] == "Schwarz; Baumwolle; weich"
    assert next(csv.DictReader(open(tmp_path / "catalog.csv")))["title"] == "Black tee"


def test_pass_rate_per_language(config):
    good = {"image": "a.jpg", **ROW, "title_de": "Schwarzes T-Shirt", "bullet_points_de": ["Rundhals", "Basic"],
            "description_de": "Ein T-Shirt mit Streifen.", "style_summary_de": "Schlicht und klar.",
            "seo_tags_de": ["t-shirt", "schwarz", "streifen"]}
    bad = {**good, "image": "b.jpg", "title_de": "Rotes Kleid"}
    result = language_pass_rate(pl.DataFrame([good, bad]), config, "de")
    assert (result["rows"], result["passed"], result["failed"]) == (2, 1, ["b.jpg"])


@pytest.mark.slow
def test_a_two_language_run_writes_catalog_de_csv(prefect_server, tmp_path, config_file, fake_llm):
    src = make_source(tmp_path / "src", 3)
    config = tmp_path / "two-languages.toml"
    config.write_text(config_file.read_text().replace("[llm]\n", '[llm]\nlanguages = ["en", "de"]\n'))
    out = tmp_path / "out"
    summary = run_catalog(src, out, config, llm_base_url=fake_llm.base_url)
    assert summary["rows"] == 3 and summary["outputs"]["catalog_csv_de"] == str(out / "catalog.de.csv")
    table = pl.read_parquet(out / "catalog.parquet")
    assert table.schema["bullet_points_de"] == pl.List(pl.Utf8) and table["title_de"].null_count() == 0
    with open(out / "catalog.de.csv", newline="", encoding="utf-8") as fh:
        german = {r["image"]: r for r in csv.DictReader(fh)}
    with open(out / "catalog.csv", newline="", encoding="utf-8") as fh:
        english = {r["image"]: r for r in csv.DictReader(fh)}
    assert german.keys() == english.keys() == {p.name for p in src.iterdir()}
    words = load_config(config).languages["de"].words["color"]
    for row in table.iter_rows(named=True):
        assert german[row["image"]]["title"] == row["title_de"] != english[row["image"]]["title"]
        if row["color"] != "unknown":
            assert row["title_de"].lower().startswith("damen-") and words[row["color"]][0] in row["title_de"]
    calls = fake_llm.requests
    assert summary["llm_calls"] == calls
    again = run_catalog(src, out, config, llm_base_url=fake_llm.base_url)
    assert again["llm_calls"] == 0 and fake_llm.requests == calls


class _SummaryRepeatsOnce:
    """The German gate, and a first answer whose summary it finds repeating the description."""

    def __init__(self, config):
        from catalog_intel.copywriting.grounding import Claim

        self.gate, self.answers, self.Claim = language_gate(config, "de"), 0, Claim

    def problems(self, attributes, copy):
        self.answers += 1
        return [self.Claim("summary_repeats", "style_summary", None, copy["style_summary"], "", "form",
                           "summary_repeats: repeats the description")] if self.answers == 1 else []

    def repair(self, attributes, copy, problems):
        return self.gate.repair(attributes, copy, problems)


def test_copy_in_another_language_is_repaired_with_one_answer(config, fake_llm, tmp_path):
    """llm.content_attempts = 1 holds in every language: the German gate rebuilds the summary from the
    language's template, where it used to reject the copy or ask the model again."""
    llm = config.llm.model_copy(update={"base_url": fake_llm.base_url, "content_attempts": 1,
                                        "backoff_initial_s": 0.01, "timeout_s": 5.0})
    german = language_llm(llm, "de", config.languages["de"])
    assert german.content_attempts == 1
    attributes = translate_attributes(pl.DataFrame([{"sha256": "a", **ROW}]), config, "de")
    copy, stats = describe(attributes, german, config.validation, tmp_path, check=_SummaryRepeatsOnce(config))
    assert fake_llm.requests == 1 and stats.retries == 0
    assert copy["copy_error"][0] is None
    assert copy["style_summary"][0] == "T-Shirt kurzarm, schwarz gestreift: Rundhalsausschnitt."
