"""Copy at half the cost (#20): structured fields from templates, the note read as facts, part
materials, stock phrases and the worked example kept out of the copy; the flow asks the LLM only
for the fields that need language."""

import json

import polars as pl
import pytest

from catalog_intel.schemas import ATTRIBUTE_ORDER
from catalog_intel.settings import load_config
from catalog_intel.copywriting import templates
from catalog_intel.copywriting.copywriter import llm_fields, prompt_attributes, response_schema, with_structured
from catalog_intel.copywriting.grounding import build_terms, claims, copy_check
from catalog_intel.copywriting.grounding.notes import note_values, without_parts
from catalog_intel.copywriting.grounding.phrases import StockPhrases, borrowed, stock_figures
from catalog_intel.pipeline.facts import merge_facts
from conftest import make_source, run_catalog

CFG = load_config()
TERMS = build_terms(CFG)
CHIFFON = "Short-sleeved blouse in plumeti chiffon with a round neckline and a frill trim. Jersey lining."
FITTED = "Fitted, long-sleeved top in soft ribbed jersey."


# --------------------------------------------------------------------------- templates


def test_title_tags_and_bullets_come_from_the_facts_in_merchant_center_order():
    attrs = {"color": "navy", "sleeve": "long sleeve", "pattern": "striped", "garment_type": "t-shirt",
             "facts": {"brand": "Acme", "material": "100% cotton"}}
    fixed = templates.structured(attrs, CFG.llm.templates, tags_max=5)
    assert fixed["title"] == "Acme Women's Long-Sleeve T-Shirt, Navy Striped"  # brand, product type, attributes
    assert fixed["bullet_points"] == ["Colour: navy.", "Sleeves: long sleeve.", "Pattern: striped.",
                                      "Material: 100% cotton."]
    assert fixed["seo_tags"] == ["navy t-shirt", "striped t-shirt", "long sleeve t-shirt", "100% cotton t-shirt",
                                 "women's t-shirt"]
    # unknown values leave their part out; a solid pattern says nothing in the title
    few = templates.structured({"color": "black", "pattern": "solid", "garment_type": "top"}, CFG.llm.templates, 5)
    assert few["title"] == "Women's Top, Black"
    assert few["bullet_points"] == ["Colour: black.", "Pattern: solid."]
    assert few["seo_tags"] == ["black top", "solid top", "women's top", "women's black top", "women's fashion"]


@pytest.mark.parametrize("lang, attrs, title, tags", [
    ("de", {"color": "marineblau", "sleeve": "langarm", "pattern": "einfarbig", "garment_type": "Bluse"},
     "Damen-Bluse langarm, marineblau", ["bluse marineblau", "bluse einfarbig", "bluse langarm", "damen bluse",
                                         "damen bluse marineblau"]),
    ("fr", {"color": "noir", "sleeve": "manches courtes", "pattern": "rayé", "garment_type": "t-shirt"},
     "T-shirt femme, noir rayé manches courtes", ["t-shirt noir", "t-shirt rayé", "t-shirt manches courtes",
                                                  "t-shirt femme", "t-shirt femme noir"]),
])
def test_every_language_has_its_templates(lang, attrs, title, tags):
    spec = CFG.languages[lang].templates
    fixed = templates.structured(attrs, spec, 5)
    assert fixed["title"] == title and fixed["seo_tags"] == tags
    assert all(not b.startswith(("Colour", "Sleeves")) for b in fixed["bullet_points"])


def test_the_llm_is_asked_only_for_the_fields_that_need_language():
    bare = prompt_attributes({"sha256": "x", "color": "black", "garment_type": "top"})
    noted = prompt_attributes({"sha256": "x", "color": "black", "garment_type": "top",
                               "facts_json": json.dumps({"details": FITTED})})
    assert llm_fields(bare, CFG.llm) == ("style_summary", "description")
    assert llm_fields(noted, CFG.llm) == ("style_summary", "description", "features")
    titled = CFG.llm.model_copy(update={"title": "llm"})
    assert llm_fields(bare, titled) == ("title", "style_summary", "description")
    assert set(response_schema(llm_fields(noted, CFG.llm))["properties"]) == {"style_summary", "description",
                                                                              "features"}
    # the note's features come first, at most two; the facts' bullets follow
    copy = with_structured({"style_summary": "S.", "description": "D.", "features": ["a", "b", "c"],
                            "title": "Ignored Title"}, noted, CFG.llm, CFG.validation)
    assert copy["bullet_points"] == ["a", "b", "Colour: black."] and copy["title"] == "Women's Top, Black"


# --------------------------------------------------------------------------- the note as facts


def test_note_states_attribute_values_but_not_a_parts_material():
    assert note_values(FITTED, TERMS) == {"sleeve": "long sleeve", "fabric": "knit", "fit": "slim"}
    assert note_values(CHIFFON, TERMS) == {"neckline": "round neck", "sleeve": "short sleeve", "fabric": "chiffon"}
    # a collar and a V-neck: the neckline is not stated; "a soft, loose knit" is the fabric, not the fit
    assert "neckline" not in note_values("Blouse in a crêpe weave with a collar, V-neck and yoke.", TERMS)
    assert note_values("Cardigan in a soft, loose knit. The polyester content is recycled.", TERMS) == \
        {"fabric": "knit"}
    assert "jersey" not in without_parts("details: " + CHIFFON.lower(), TERMS)


def _merged(model: dict, note: str, policy: str = "trust_facts") -> dict:
    cfg = load_config(None, {"facts.default_policy": policy})
    row = {"sha256": "s1"}
    for a in ATTRIBUTE_ORDER:
        row[a], row[f"{a}_confidence"] = model.get(a, ("unknown", 0.1))
    facts = pl.DataFrame({"sha256": ["s1"], "details": [note]})
    return merge_facts(pl.DataFrame([row]), facts, cfg).to_dicts()[0]


def test_a_note_fills_blanks_as_a_fact_and_a_confident_model_that_disagrees_is_a_conflict():
    blank = _merged({}, FITTED)
    assert (blank["sleeve"], blank["sleeve_source"], blank["fit"], blank["fit_source"]) == \
        ("long sleeve", "note", "slim", "note")
    assert blank["conflicts"] == [] and json.loads(blank["facts_json"]) == {"details": FITTED}
    confident = _merged({"sleeve": ("sleeveless", 0.9)}, FITTED)
    assert (confident["sleeve"], confident["sleeve_source"]) == ("long sleeve", "note")
    assert confident["conflicts"] == ["sleeve: note says long sleeve, clip says sleeveless (0.90)"]
    kept = _merged({"sleeve": ("sleeveless", 0.9)}, FITTED, policy="trust_model")
    assert kept["sleeve"] == "sleeveless" and kept["conflicts"][0].startswith("sleeve: note says long sleeve")
    assert _merged({}, CHIFFON)["fabric"] == "chiffon"  # the lining's jersey is not the blouse's


def test_the_gate_keeps_the_row_and_its_copy_in_agreement_and_reads_part_materials():
    facts = "details: " + FITTED.lower()
    # the row kept the model's sleeveless (trust_model): copy saying long-sleeved contradicts it, note or not
    row = {"color": "black", "garment_type": "top", "sleeve": "sleeveless",
           "description": "A long-sleeved top in soft ribbed jersey. It is fitted."}
    assert [c.reason.split(" (")[0] for c in claims(row, TERMS, facts)] == \
        ["sleeve: says long sleeve, sleeve is sleeveless"]
    # with no sleeve on the row, the note grounds it
    assert claims({**row, "sleeve": None}, TERMS, facts) == []
    chiffon = "details: " + CHIFFON.lower()
    row = {"color": "white", "garment_type": "blouse", "fabric": "chiffon",
           "description": "A chiffon blouse with a jersey lining. The blouse is made of jersey lining."}
    found = claims(row, TERMS, chiffon)
    assert [(c.kind, c.sentence) for c in found] == [("fabric", "The blouse is made of jersey lining.")]
    assert claims({**row, "fabric": None, "description": "The blouse is made of jersey."}, TERMS, chiffon)[0].kind \
        == "fabric"
    # a lace trim the note names is a part, not a lace pattern of a solid top
    vest = {"color": "white", "garment_type": "tank top", "pattern": "solid", "bullet_points": ["Lace trims"],
            "description": "A white vest top with lace trims around the neckline."}
    assert claims(vest, TERMS, "details: vest top in soft cotton jersey with lace trims around the neckline.") == []
    assert claims({**vest, "description": "A white lace vest top."}, TERMS, "details: lace trims.")[0].kind == "pattern"


def test_a_note_that_names_another_garment_never_puts_it_in_what_the_product_is():
    from catalog_intel.copywriting.grounding import contradictions

    note = "details: sleeveless blouse in airy chiffon with a collar."
    row = {"color": "blue", "garment_type": "top", "description": "This blouse has a collar. Wear it with jeans.",
           "style_summary": "A sleeveless blouse for the office.", "title": "Women's Sleeveless Top, Blue"}
    found = claims(row, TERMS, note)
    # the prose may follow the note; the summary says what the product is, and the row says top
    assert [(c.kind, c.field, c.problem) for c in found] == [("garment", "style_summary", "contradicts")]
    assert contradictions(row, TERMS) and not contradictions({**row, "style_summary": "Crisp and light."}, TERMS)
    assert claims({**row, "style_summary": "Crisp and light."}, TERMS, note) == []
    # seen in the bench (0631418001): a summary whose garment word follows adjectives with a comma
    airy = {**row, "style_summary": "A soft, airy blouse in chiffon with a collar."}
    assert [c.field for c in claims(airy, TERMS, note)] == ["style_summary"] and contradictions(airy, TERMS)


# --------------------------------------------------------------------------- stock and borrowed phrases


def test_stock_phrases_are_runs_without_product_words_that_three_products_share():
    stock = "It is easy to style every day and for any occasion."
    rows = [{"color": c, "garment_type": "top", "description": f"A {c} top with short sleeves. {stock}",
             "style_summary": "A calm look for work."} for c in ("black", "white", "red")]
    rows.append({"color": "pink", "garment_type": "top", "description": "A pink top. It is easy to style every day.",
                 "style_summary": "A bright pink top that is easy to style every day."})
    figures = stock_figures(rows)
    # the stock sentence in three products, and in the fourth's two sentences that share its run "is
    # easy to style every day"; "a calm look for work" has five words only; runs naming the
    # product ("a black top with short sleeves") never count
    assert figures["sentences"] == 12 and figures["stock_sentences"] == 5
    assert "it is easy to style every" in figures["stock_phrases"]
    assert figures["sentences_per_description"] == 2.0
    counter = StockPhrases()
    for i, r in enumerate(rows[:2]):
        counter.add(str(i), r)
    assert counter.frequent(2, 5)[0].startswith("is easy to style every day") or \
        "it is easy to style every" in counter.frequent(2, 5)
    assert counter.common(rows[2], others=2) == [("description", stock)]


def test_no_sentence_or_six_word_run_of_the_worked_example_is_published():
    example = {"description": "A green top with short sleeves. The solid colour keeps it simple and easy to combine.",
               "style_summary": "An easy, polished choice for everyday wear."}
    copy = {"description": "A navy top. The solid colour keeps it simple for work. Soft and light.",
            "style_summary": "An easy, polished choice for everyday wear."}
    assert borrowed(copy, example) == ["The solid colour keeps it simple for work.",
                                       "An easy, polished choice for everyday wear."]
    gate = copy_check(load_config(None, {"llm.example.enabled": True}))
    found = [p for p in gate.problems({"color": "navy", "garment_type": "top"}, copy) if p.kind == "borrowed"]
    assert [p.field for p in found] == ["description", "style_summary"]
    assert [p for p in copy_check(CFG).problems({}, copy) if p.kind == "borrowed"] == []  # no example by default


# --------------------------------------------------------------------------- the flow


def test_the_flow_asks_the_llm_only_for_language_and_reports_what_copy_costs(
        prefect_server, tmp_path, cache_dir, config_file, fake_llm):
    src = make_source(tmp_path / "src", 4)
    images = sorted(src.iterdir())
    pl.DataFrame({"image": [p.name for p in images], "color": ["black", "white", "red", "navy"],
                  "garment_type": ["top"] * 4, "brand": ["Acme"] * 4,
                  "details": [FITTED, CHIFFON, "", ""]}).write_csv(src / "manifest.csv")
    summary = run_catalog(src / "manifest.csv", tmp_path / "out", config_file, cache_dir,
                          llm_base_url=fake_llm.base_url)
    assert summary["rows"] == 4
    asked = [r["body"]["response_format"]["json_schema"]["schema"]["required"] for r in fake_llm.request_log]
    assert sorted(asked) == [["style_summary", "description"]] * 2 + [["style_summary", "description", "features"]] * 2
    table = {r["color"]: r for r in pl.read_parquet(tmp_path / "out" / "catalog.parquet").to_dicts()}
    assert table["black"]["title"] == "Acme Women's Long-Sleeve Top, Black"  # the note's sleeve, by template
    assert (table["black"]["sleeve"], table["black"]["sleeve_source"]) == ("long sleeve", "note")
    assert table["white"]["fabric"] == "chiffon" and "women's top" in table["navy"]["seo_tags"]
    assert summary["llm_described"] == len(fake_llm.request_log) - summary["llm_retries"] == 4
    assert summary["llm_completion_tokens"] > 0 and summary["llm_seconds"] > 0
    assert summary["llm_sentences"] > 0 and 0 <= summary["llm_stock_sentences"] <= summary["llm_sentences"]


@pytest.mark.parametrize("lang, garment, padding", [("en", "blouse", "Women's blouse."), ("de", "Bluse", "Damen-Bluse."),
                                                   ("fr", "chemisier", "Chemisier pour femme.")])
def test_too_few_bullets_are_padded_in_the_copys_language(lang, garment, padding):
    from catalog_intel.copywriting.languages import language_llm

    llm = CFG.llm if lang == "en" else language_llm(CFG.llm, lang, CFG.languages[lang])
    limits = CFG.validation.model_copy(update={"bullets_min": 2})
    copy = with_structured({"style_summary": "S.", "description": "D."}, {"garment_type": garment, "color": "x"},
                           llm, limits)
    assert copy["bullet_points"][-1] == padding and len(copy["bullet_points"]) == 2
