"""The claim checker: hand-written sentences that must and must not be flagged."""

import pytest

from catalog_intel.copywriting.grounding import build_terms, claims, copy_check, facts_text, form_problems, repair
from catalog_intel.settings import load_config

ROW = {"color": "pink", "sleeve": "short sleeve", "neckline": "v-neck", "pattern": "solid", "fabric": None,
       "fit": None, "garment_type": "t-shirt"}


@pytest.fixture(scope="module")
def terms():
    return build_terms(load_config())


def _kinds(sentence, terms, row=ROW, facts="", field="description"):
    copy = {"title": "", "bullet_points": [], "description": "", "style_summary": "", "seo_tags": []}
    copy[field] = [sentence] if field in ("bullet_points", "seo_tags") else sentence
    return sorted({(c.kind, c.problem) for c in claims({**row, **copy}, terms, facts)})


MUST_FLAG = [
    # (sentence, kind, problem)
    ("Perfect for all seasons.", "season", "ungrounded"),
    ("A cosy layer for chilly evenings.", "season", "ungrounded"),
    ("Keeps you warm in winter.", "season", "ungrounded"),
    ("Light enough for warm weather.", "season", "ungrounded"),
    ("A must-have for this fall.", "season", "ungrounded"),
    ("Wear it year-round.", "season", "ungrounded"),
    ("Available in sizes S, M, L and XL.", "size", "ungrounded"),
    ("Also available in a variety of colours.", "colour", "ungrounded"),
    ("Comes in XS-XL.", "size", "ungrounded"),
    ("Flattering on all body types.", "size", "ungrounded"),
    ("Made from high-quality cotton.", "fabric", "ungrounded"),
    ("A soft cotton-polyester blend.", "fabric", "ungrounded"),
    ("Made from a soft fabric blend.", "fabric", "ungrounded"),
    ("Crafted in fine knit.", "fabric", "ungrounded"),
    ("Breathable and lightweight.", "fabric", "ungrounded"),
    ("Features a touch of elastane.", "fabric", "ungrounded"),
    ("A relaxed fit for easy days.", "fit", "ungrounded"),
    ("Its oversized silhouette drapes well.", "fit", "ungrounded"),
    ("A slim-fit cut.", "fit", "ungrounded"),
    ("The cropped length shows off high waists.", "fit", "ungrounded"),
    ("Machine washable for easy care.", "care", "ungrounded"),
    ("Dry clean only.", "care", "ungrounded"),
    ("A classic from H&M.", "brand", "ungrounded"),
    ("Only $19.99.", "price", "ungrounded"),
    ("An affordable wardrobe staple.", "price", "ungrounded"),
    ("A classic men's cut.", "gender", "contradicts"),
    ("This blue t-shirt is a staple.", "colour", "contradicts"),
    ("With long sleeves for cover.", "sleeve", "contradicts"),
    ("A round crew neckline.", "neckline", "contradicts"),
    ("Bold stripes all over.", "pattern", "contradicts"),
    ("This pretty dress flatters.", "garment", "contradicts"),
    ("Wear it with jeans, t-shirts, or even as a dress.", "garment", "contradicts"),
    ("A relaxed fit to wear with jeans.", "fit", "ungrounded"),  # the product's fit, jeans only follow
    ("Floral and easy with denim shorts.", "pattern", "contradicts"),
    ("Allows for a放松 feel.", "script", "ungrounded"),
    ("Мягкая ткань.", "script", "ungrounded"),
]


@pytest.mark.parametrize("sentence,kind,problem", MUST_FLAG)
def test_must_flag(terms, sentence, kind, problem):
    assert (kind, problem) in _kinds(sentence, terms)


MUST_NOT_FLAG = [
    "A pink t-shirt with a v-neck and short sleeves.",
    "Short-sleeved and easy to wear.",
    "Pair it with white jeans or a black skirt.",  # styling suggestions
    "Dress it up or down.",
    "Tuck it into your favourite trousers.",
    "A comfortable fit for everyday wear.",
    "The v-neckline frames the face.",
    "A versatile wardrobe staple for work or weekend.",
    "Soft to the touch.",
    "Simple, clean lines for an effortless look.",
    "A solid choice for casual days.",
    "Perfect for layering under a jacket.",
    "A timeless piece for any occasion.",
    "Easy to style with accessories.",
    "Women's pink t-shirt.",
    "A unique blend of style and comfort.",
    # what to wear it with: the words describe the other garment
    "Tuck it into high-waisted jeans or a leather skirt.",
    "Wear it with relaxed linen trousers and white sneakers.",
    "Pair it with a floral skirt or slim black jeans.",
]
MUST_NOT_FLAG_SUMMARY = ["A sweater that can be worn with jeans or skirts for a casual look.",
                         "Layer it under a blazer for the office."]


@pytest.mark.parametrize("sentence", MUST_NOT_FLAG)
def test_must_not_flag(terms, sentence):
    assert _kinds(sentence, terms) == []


@pytest.mark.parametrize("sentence", MUST_NOT_FLAG_SUMMARY)
def test_styling_suggestions_in_the_style_summary_are_not_garment_claims(terms, sentence):
    row = {**ROW, "garment_type": "sweater"}
    assert _kinds(sentence, terms, row, field="style_summary") == []
    assert ("garment", "contradicts") in _kinds("This dress is easy to wear.", terms, row, field="style_summary")


def test_facts_ground_claims(terms):
    facts = facts_text({"facts": {"material": "95% cotton, 5% elastane", "care": "machine wash 30°C",
                                  "sizes": "XS-XL", "brand": "Acme"}})
    for sentence in ("Made from soft cotton.", "Machine washable.", "Available in sizes XS to XL.", "By Acme.",
                     "A cotton blend with elastane."):
        assert _kinds(sentence, terms, facts=facts) == [], sentence
    assert ("season", "ungrounded") in _kinds("Made for summer.", terms, facts=facts)
    assert ("fabric", "ungrounded") in _kinds("Pure silk.", terms, facts=facts)
    # a free fact column of a catalog row counts the same way
    assert facts_text({"material": "linen", "brand": None}, ["material", "brand"]) == "material: linen"


def test_known_attributes_ground_claims(terms):
    row = {**ROW, "fabric": "knit", "fit": "slim", "pattern": "striped", "color": "white"}
    assert _kinds("A fitted, knitted white top with navy stripes.", terms, row) == []  # a secondary colour on stripes
    assert _kinds("Slim fit, jersey knit.", terms, row) == []
    assert ("fit", "contradicts") in _kinds("A relaxed, boxy shape.", terms, row)
    hoodie = {**ROW, "garment_type": "hoodie", "neckline": None}
    assert _kinds("A cosy hood with drawstrings.", terms, hoodie) == []  # a hoodie is hooded
    assert ("neckline", "ungrounded") in _kinds("A round crew neck.", terms, {**ROW, "neckline": None})
    assert ("colour", "ungrounded") in _kinds("In soft pink.", terms, {**ROW, "color": None})


def test_form_problems_and_repair():
    copy = {"title": "Pink V-Neck T-Shirt",
            "bullet_points": ["Short sleeves.", "Available in sizes S to XL.", "Short sleeves", "easy to move in and"],
            "description": "A pink v-neck t-shirt. Perfect for all seasons. It adds a touch of style to an",
            "style_summary": "A pink v-neck t-shirt.",
            "seo_tags": ["pink v-neck shirt", "Pink V-Neck  Shirt", "pink-v-neck shirt", "pink tee"]}
    kinds = sorted(p.kind for p in form_problems(copy))
    assert kinds == ["duplicate_bullet", "duplicate_tag", "duplicate_tag", "summary_repeats", "truncated", "truncated"]
    # a catalog that wants at least 2 bullets and 3 tags (the defaults ask for what the facts give)
    config = load_config(None, {"validation.bullets_min": 2, "validation.seo_tags_min": 3})
    gate = copy_check(config)
    attrs = {"product": "women's top", **{k: v for k, v in ROW.items() if v}}
    problems = gate.problems(attrs, copy)
    # one bullet would remain: the known attributes fill the list up to the minimum
    fixed, removed = gate.repair(attrs, copy, problems)
    assert fixed["bullet_points"] == ["Short sleeves.", "Colour: pink."] and "added bullet 'Colour: pink.'" in " ".join(removed)
    # ... but with every bullet removed, too little of the model's copy remains: no copy (rejected)
    assert repair({**copy, "bullet_points": ["Available in sizes S to XL."]}, gate.problems(
        attrs, {**copy, "bullet_points": ["Available in sizes S to XL."]}), attrs, config.validation)[0] is None
    # ... unless enough remain; tags are de-duplicated and topped up from the attributes
    copy["bullet_points"].append("A classic v-neck.")
    fixed, removed = repair(copy, gate.problems(attrs, copy), attrs, config.validation)
    assert fixed["description"] == "A pink v-neck t-shirt."
    assert fixed["bullet_points"] == ["Short sleeves.", "A classic v-neck."]
    assert fixed["seo_tags"] == ["pink tee", "pink t-shirt", "solid t-shirt"]
    assert fixed["style_summary"] == "Pink t-shirt: v-neck, short sleeve."  # product words only: never stock
    assert any(r.startswith("removed description: 'Perfect for all seasons.' (season:") for r in removed)
    assert gate.problems(attrs, fixed) == []


def test_lengths_are_words_and_sentences_and_the_schema_has_no_character_cap():
    import json

    from catalog_intel.copywriting.copywriter import CatalogCopy, response_schema

    assert "maxLength" not in json.dumps(response_schema())
    limits = load_config().validation
    copy = {"title": "Pink Top", "bullet_points": ["Short.", " ".join(["word"] * 21) + "."],
            "description": "One. Two. Three. Four. Five. Six.", "style_summary": "Wear it with jeans.",
            "seo_tags": ["pink top", "a b c d e f g", "tee"]}
    problems = [(p.kind, p.field, p.item) for p in form_problems(copy, limits)]
    assert problems == [("too_long", "bullet_points", 1), ("too_long", "seo_tags", 1), ("too_long", "description", None)]
    # repeated tags and bullets are dropped before the counts are checked
    valid = CatalogCopy(title="Pink Top", bullet_points=["Soft.", "soft", "Light."], description="A pink top.",
                        style_summary="Wear it.", seo_tags=["pink top", "Pink  Top", "pink-top", "tee", "v-neck tee"])
    assert valid.seo_tags == ["pink top", "tee", "v-neck tee"] and valid.bullet_points == ["Soft.", "Light."]
    with pytest.raises(ValueError, match="at least 2 items"):
        CatalogCopy(title="Pink Top", bullet_points=["Soft.", "Light."], description="A pink top.",
                    style_summary="Wear it.", seo_tags=["pink top", "Pink Top", "pink-top"])


def test_copy_that_repeats_the_instructions_is_caught_and_repaired():
    """A small model may echo the prompt ("The product's name from its attributes, like")
    or the schema's field names: no claim in it, but nothing a shop can publish."""
    cfg = load_config()
    gate = copy_check(cfg)
    line = cfg.llm.field_prompts["title"]
    echoed = " ".join(line.removeprefix("- title:").split()[:7]).rstrip(",.")  # seven words of the prompt
    attrs = {"product": "women's top", **{k: v for k, v in ROW.items() if v}}
    copy = {"title": echoed.capitalize(),
            "bullet_points": ["Short sleeves.", "style_summary: wear it with jeans.", "A classic v-neck."],
            "description": f"A pink v-neck t-shirt with short sleeves. {echoed.capitalize()}.",
            "style_summary": "Wear it with jeans or a skirt.",
            "seo_tags": ["pink v-neck t-shirt", "pink t-shirt", "v-neck top"]}
    echoes = sorted((p.field, p.item) for p in gate.problems(attrs, copy) if p.kind == "echo")
    assert echoes == [("bullet_points", 1), ("description", None), ("title", None)]
    fixed, removed = gate.repair(attrs, copy, gate.problems(attrs, copy))
    assert fixed["title"] == "Pink Short-Sleeve T-Shirt"  # rebuilt from the attributes
    assert fixed["bullet_points"] == ["Short sleeves.", "A classic v-neck."]
    assert fixed["description"] == "A pink v-neck t-shirt with short sleeves."
    assert sum("repeats the instructions" in r for r in removed) == 3 and gate.problems(attrs, fixed) == []
    # ordinary copy, even with words the prompt also uses ("colour", "wear it with"), is not an echo
    plain = {**copy, "title": "Pink V-Neck T-Shirt", "bullet_points": ["Short sleeves.", "A classic v-neck."],
             "description": "A pink v-neck t-shirt. The solid colour is easy to wear it with jeans."}
    assert [p for p in form_problems(plain, cfg.validation, gate.instructions) if p.kind == "echo"] == []
