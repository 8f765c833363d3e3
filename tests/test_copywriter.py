"""The describe step against a real HTTP server speaking the OpenAI API."""

import json
import re
from types import SimpleNamespace

import polars as pl
import pytest

from catalog_intel.settings import load_config
from catalog_intel.copywriting.copywriter import InvalidCopy, copy_key, describe, parse_copy, prompt_attributes
from llm_server import FakeLLMServer, FaultPlan, build_copy

ATTRS = ["color", "neckline", "sleeve", "pattern", "fabric", "fit", "garment_type"]


def _frame(rows):
    return pl.DataFrame([{"sha256": f"sha{i}", **dict(zip(ATTRS, r))} for i, r in enumerate(rows)])


PRODUCTS = _frame([
    ("black", "v-neck", "sleeveless", "solid", "silk", "slim", "top"),
    ("red", "round neck", "short sleeve", "striped", "cotton", "regular", "t-shirt"),
    ("black", "v-neck", "sleeveless", "solid", "silk", "slim", "top"),  # same attributes as the first
    ("navy", "collared", "long sleeve", "unknown", "unknown", "loose", "shirt"),
])


def _llm(cfg, server, **kw):
    return cfg.llm.model_copy(update={"base_url": server.base_url, "backoff_initial_s": 0.01,
                                      "backoff_max_s": 0.2, "timeout_s": 2.0, **kw})


def test_copy_is_schema_valid_deduplicated_and_cached(tmp_path):
    cfg = load_config()
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS, _llm(cfg, server), cfg.validation, tmp_path)
        assert server.requests == 3  # four products, three distinct attribute sets
        assert stats.calls == 3 and stats.failed == 0 and stats.cached == 0
        assert copy["copy_error"].null_count() == 4
        assert copy["sha256"].to_list() == ["sha0", "sha1", "sha2", "sha3"]
        assert copy["title"][0] == copy["title"][2]
        assert all(2 <= len(b) <= 6 for b in copy["bullet_points"])
        assert all(3 <= len(t) <= 5 for t in copy["seo_tags"])
        assert "red" in copy["title"][1].lower() and "black" not in copy["title"][1].lower()
        # "unknown" is never sent to the model
        sent = [json.loads(m["content"][m["content"].index("{"):]) for r in server.request_log
                for m in r["body"]["messages"] if m["role"] == "user"]
        assert all("unknown" not in s.values() for s in sent)
        assert {"product": "women's top", "color": "navy", "neckline": "collared", "sleeve": "long sleeve",
                "fit": "loose", "garment_type": "shirt",
                "do_not_mention": ["pattern", "fabric or material"]} in sent

        again, stats2 = describe(PRODUCTS, _llm(cfg, server), cfg.validation, tmp_path)
        assert server.requests == 3 and stats2.calls == 0 and stats2.cached == 3
        assert again.drop("copy_key").equals(copy.drop("copy_key"))


def test_cache_key_changes_with_prompt_version_and_model():
    cfg = load_config()
    attrs = prompt_attributes(PRODUCTS.row(0, named=True))
    base = copy_key(attrs, cfg.llm)
    assert base == copy_key(dict(reversed(list(attrs.items()))), cfg.llm)
    assert base != copy_key(attrs, cfg.llm.model_copy(update={"prompt_version": "v2"}))
    assert base != copy_key(attrs, cfg.llm.model_copy(update={"model": "other"}))


def test_template_fields_added_later_keep_every_cached_copys_key():
    """A cache written before CopyTemplates had `summary` and `unknown_garment` keeps its keys under the defaults
    (else a night's copy is written again), and setting either one asks for new copy."""
    from catalog_intel.copywriting.copywriter import templates_key

    cfg = load_config()
    assert set(templates_key(cfg.llm.templates)) == {"title", "title_skip", "title_case", "bullets", "product_bullet",
                                                     "seo_tags"}  # the fields the keys were made of before
    attrs = prompt_attributes(PRODUCTS.row(0, named=True))
    base = copy_key(attrs, cfg.llm)
    for field, value in (("summary", "{garment}."), ("unknown_garment", "garment")):
        changed = cfg.llm.model_copy(update={"templates": cfg.llm.templates.model_copy(update={field: value})})
        assert copy_key(attrs, changed) != base
    german = cfg.languages["de"].templates
    assert templates_key(german)["summary"] and templates_key(german)["unknown_garment"] == "Oberteil"


@pytest.mark.parametrize("content, reason", [
    ("", "empty"), ('{"title": "Trunc', "not JSON"), ("[1, 2]", "not an object"),
    ('{"title": "A top", "description": "A fine top for all days.", "style_summary": "Easy."}', "bullet_points"),
])
def test_parse_copy_rejects_bad_content(content, reason):
    with pytest.raises(InvalidCopy, match=reason):
        parse_copy(content)


def test_parse_copy_strips_control_characters_and_enforces_title_words():
    cfg = load_config()
    raw = {"title": "Black\x00 Silk\u202e Top", "bullet_points": ["a\x07b", "c"], "description": "A black silk top.\x1b",
           "style_summary": "Chic.", "seo_tags": ["Black Top", "silk top", "women top"]}
    copy = parse_copy(json.dumps(raw), cfg.validation)
    assert copy.title == "Black Silk Top" and copy.bullet_points[0] == "ab" and copy.seo_tags[0] == "black top"
    raw["title"] = " ".join(["word"] * 13)
    with pytest.raises(InvalidCopy, match="13 words"):
        parse_copy(json.dumps(raw), cfg.validation)


def test_faulty_server_every_good_row_is_described(tmp_path):
    cfg = load_config()
    kinds = ["http_429", "http_500", "http_503", "hang", "drop", "invalid_json", "missing_fields", "overlong", "empty"]
    plan = FaultPlan.random(0.3, seed=7, kinds=kinds, retry_after="0", hang_s=5)
    rows = _frame([(c, "v-neck", s, "solid", "cotton", "regular", "top")
                   for c in ("black", "white", "red", "pink", "green") for s in ("sleeveless", "short sleeve", "long sleeve")])
    with FakeLLMServer(faults=plan) as server:
        # every field from the LLM (no templates): a fault in any of them is retried
        llm = _llm(cfg, server, timeout_s=0.5, max_attempts=8, format_attempts=8, concurrency=4, field_prompts={})
        copy, stats = describe(rows, llm, cfg.validation, tmp_path)
        applied = [f for f in server.faults_applied() if f]
    assert copy["copy_error"].null_count() == 15, copy["copy_error"].to_list()
    assert len(applied) >= 3 and stats.retries == len(applied)
    assert stats.calls == 15 + stats.retries


def test_per_product_copy_gives_identical_attribute_sets_their_own_request(tmp_path):
    cfg = load_config()
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS, _llm(cfg, server, per_product=True), cfg.validation, tmp_path)
        assert server.requests == 4 and stats.calls == 4 and copy["copy_key"].n_unique() == 4
        # the prompt is the same: only the cache key tells the products apart (the stock phrases that
        # earlier answers used, named to the model, depend on which answered first: left out)
        prompts = [re.sub(r"\n- Other products' copy already says these;[^\n]*", "", r["body"]["messages"][-1]["content"])
                   for r in server.request_log]
        assert len(set(prompts)) == 3 and len({r["body"]["seed"] for r in server.request_log}) == 4


def test_row_that_exhausts_retries_gets_the_last_error(tmp_path):
    cfg = load_config()
    plan = FaultPlan.fail_product(lambda a: a.get("color") == "red", kind="http_503")
    with FakeLLMServer(faults=plan) as server:
        copy, stats = describe(PRODUCTS, _llm(cfg, server, max_attempts=3), cfg.validation, tmp_path)
    errors = dict(zip(copy["sha256"], copy["copy_error"]))
    assert errors["sha1"].startswith("LLM server answered HTTP 503")
    assert errors["sha0"] is None and errors["sha3"] is None
    assert stats.failed == 1 and stats.retries == 2
    # the failure is not cached: a later run asks again
    with FakeLLMServer() as server:
        copy2, stats2 = describe(PRODUCTS, _llm(cfg, server), cfg.validation, tmp_path)
    assert server.requests == 1 and copy2["copy_error"].null_count() == 4


def test_retry_after_is_honoured_and_throttle_gates_every_attempt(tmp_path):
    cfg = load_config()
    plan = FaultPlan.fail_product(lambda a: a.get("color") == "red", kind="http_429", first_n=1, retry_after="1")
    gate = []
    with FakeLLMServer(faults=plan) as server:
        describe(PRODUCTS.slice(1, 1), _llm(cfg, server), cfg.validation, tmp_path, throttle=lambda: gate.append(1))
        times = [r["time"] for r in server.request_log]
    assert len(times) == 2 and len(gate) == 2
    assert times[1] - times[0] >= 0.95  # waited the server's Retry-After, not the 10 ms backoff


class _Gate:
    """The real gate, with scripted extra problems per answer (None: the real rules only)."""

    def __init__(self, cfg, extra):
        from catalog_intel.copywriting.grounding import Claim, copy_check

        self.real, self.extra, self.answers, self.Claim = copy_check(cfg), list(extra), 0, Claim

    def problems(self, attributes, copy):
        self.answers += 1
        kind = self.extra[self.answers - 1] if self.answers <= len(self.extra) else None
        added = []
        if kind == "men":
            added = [self.Claim("gender", "title", None, copy["title"], "men's", "contradicts",
                                "gender: a women's item (title: 'men's')")]
        elif kind == "bullet":
            b = copy["bullet_points"][0]
            added = [self.Claim("size", "bullet_points", 0, b, "sizes", "ungrounded",
                                "size: says 'sizes' but no fact says so (bullet_points: 'sizes')")]
        elif kind == "sentence":  # the description's first sentence
            added = [self.Claim("season", "description", None, copy["description"].split(". ")[0] + ".", "summer",
                                "ungrounded", "season: says 'summer'")]
        elif kind == "everything":
            added = [self.Claim("season", "description", None, copy["description"].split(". ")[0] + ".", "summer",
                                "ungrounded", "season: says 'summer'")]
            added += [self.Claim("size", "bullet_points", i, b, "sizes", "ungrounded", "size: says 'sizes'")
                      for i, b in enumerate(copy["bullet_points"])]
        return self.real.problems(attributes, copy) + added

    def repair(self, attributes, copy, problems):
        return self.real.repair(attributes, copy, problems)


def test_copy_with_problems_is_retried_with_feedback_then_repaired_or_rejected(tmp_path):
    # every field from the LLM (the prompts of old), so that its bullets can be wrong; at least 2 bullets
    cfg = load_config(None, {"validation.bullets_min": 2})
    cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"field_prompts": {}})})
    gate = _Gate(cfg, ["men"])
    with FakeLLMServer() as server:  # repair_max_removals=0: every problem is asked about again first
        copy, stats = describe(PRODUCTS.slice(0, 1), _llm(cfg, server, content_attempts=2, repair_max_removals=0),
                               cfg.validation, tmp_path, check=gate)
        second = server.request_log[1]["body"]["messages"]
    assert copy["copy_error"][0] is None and copy["copy_warnings"][0].to_list() == []
    assert stats.calls == 2 and stats.retries == 1
    assert second[-2]["role"] == "assistant" and "- title: 'men's' (gender: a women's item): leave it out" \
        in second[-1]["content"]

    # still wrong at the last content attempt: the bullet is removed, the rest kept, the removal recorded
    gate = _Gate(cfg, ["bullet", "bullet"])
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS.slice(3, 1), _llm(cfg, server, content_attempts=2, repair_max_removals=0),
                               cfg.validation, tmp_path / "b", check=gate)
        first = json.loads(server.request_log[1]["body"]["messages"][-2]["content"])
    assert copy["copy_error"][0] is None and stats.calls == 2 and stats.failed == 0
    assert copy["bullet_points"][0].to_list() == first["bullet_points"][1:]
    [warning] = copy["copy_warnings"][0].to_list()
    assert warning.startswith(f"removed bullet_points 1: '{first['bullet_points'][0]}' (size:")

    # by default a problem or two is repaired at once: no second request
    gate = _Gate(cfg, ["bullet"])
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS.slice(3, 1), _llm(cfg, server), cfg.validation, tmp_path / "d", check=gate)
    assert stats.calls == 1 and stats.retries == 0 and copy["copy_error"][0] is None
    assert len(copy["bullet_points"][0]) == 2 and copy["copy_warnings"][0][0].startswith("removed bullet_points 1:")

    # too little would remain: rejected with the reason
    gate = _Gate(cfg, ["everything", "everything"])
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS.slice(1, 1), _llm(cfg, server, content_attempts=2), cfg.validation,
                               tmp_path / "c", check=gate)
    assert copy["copy_error"][0].startswith("copy rejected, fewer than 2 bullet points remain after removing:")
    assert stats.calls == 2 and stats.failed == 1


def test_real_rules_accept_faithful_copy_and_catch_invented_facts():
    from catalog_intel.copywriting.grounding import copy_check

    check = copy_check(load_config())
    attrs = {"product": "women's top", "color": "red", "garment_type": "t-shirt"}
    good = {"title": "Red T-Shirt", "bullet_points": ["Red colour.", "Classic t-shirt."], "description": "A red t-shirt.",
            "style_summary": "Simple and red.", "seo_tags": ["red t-shirt", "red top", "women t-shirt"]}
    assert check.problems(attrs, good) == []
    bad = {**good, "description": "A red cotton dress with long sleeves."}
    kinds = sorted((p.kind, p.problem) for p in check.problems(attrs, bad))
    assert kinds == [("fabric", "ungrounded"), ("garment", "contradicts"), ("sleeve", "ungrounded")]
    assert check.problems({**attrs, "facts": {"material": "100% cotton"}, "sleeve": "long sleeve"},
                          {**good, "description": "A red cotton t-shirt with long sleeves."}) == []


def test_two_shards_with_the_same_attribute_sets_cost_one_request_per_set(tmp_path):
    """The flow describes the run's distinct attribute sets once (copy_sets), then gives every
    image of a set its copy: the same products in two shards cost three requests, not six."""
    from catalog_intel.copywriting.copy_sets import distinct_sets, expand_copy, keyed

    cfg = load_config()
    shard_a = PRODUCTS
    shard_b = PRODUCTS.with_columns(pl.col("sha256") + "-b")  # other images, the same attributes
    run = pl.concat([shard_a, shard_b])
    with FakeLLMServer() as server:
        llm = _llm(cfg, server)
        keys = keyed(run, llm)
        batches = distinct_sets(run, keys, batch=2)
        parts = [describe(batch, llm, cfg.validation, tmp_path)[0] for batch in batches]
        assert server.requests == 3  # three distinct attribute sets in 8 images
    assert [b.height for b in batches] == [2, 1]
    copy = expand_copy(keys, parts)
    assert copy.height == 8 and copy["title"].null_count() == 0
    by_sha = dict(zip(copy["sha256"], copy["title"]))
    assert by_sha[PRODUCTS["sha256"][0]] == by_sha[PRODUCTS["sha256"][2]] == by_sha[PRODUCTS["sha256"][0] + "-b"]
    assert by_sha[PRODUCTS["sha256"][1]] != by_sha[PRODUCTS["sha256"][0]]


def test_server_refusing_json_schema_gets_requests_without_it_for_the_rest_of_the_run(tmp_path):
    from catalog_intel.pipeline.summary import RunSummary

    cfg = load_config()
    with FakeLLMServer(reject_response_format=("json_schema",), fenced=True) as server:
        copy, stats = describe(PRODUCTS, _llm(cfg, server), cfg.validation, tmp_path)
        kinds = [(r["body"].get("response_format") or {}).get("type") for r in server.request_log]
    assert copy["copy_error"].null_count() == 4 and copy["title"].null_count() == 0  # every product described
    # refused once per request in flight at the time, then never asked with json_schema again;
    # each refused product is asked again at once, without it; fenced JSON is still read. The
    # server logs in arrival order, so a request sent before the first refusal may be logged
    # after a retry: count, don't compare positions (only the first logged one is certain)
    refused = kinds.count("json_schema")
    assert kinds[0] == "json_schema" and 1 <= refused <= cfg.llm.concurrency
    assert kinds.count(None) == 3 and len(kinds) == 3 + refused
    assert stats.schema_fallbacks == refused and stats.failed == 0 and stats.retries == 0
    summary = RunSummary(inputs=4, llm_schema_fallbacks=stats.schema_fallbacks)
    assert "refused response_format json_schema" in summary.one_line()


def test_a_bad_request_that_does_not_name_the_response_format_keeps_json_schema(tmp_path):
    from catalog_intel.copywriting.copywriter import schema_refusals

    cfg = load_config()
    message = "This model's maximum context length is 2048 tokens; your messages resulted in 3100 tokens"
    with FakeLLMServer(reject_response_format=("json_schema",), reject_message=message) as server:
        copy, stats = describe(PRODUCTS, _llm(cfg, server), cfg.validation, tmp_path)
        kinds = [(r["body"].get("response_format") or {}).get("type") for r in server.request_log]
        refused = (server.base_url, cfg.llm.model) in {(b.rstrip("/"), m) for b, m in schema_refusals()}
    assert kinds == ["json_schema"] * 3  # three distinct attribute sets, none sent again without the format
    assert stats.schema_fallbacks == 0 and stats.failed == 3 and not refused
    assert set(copy["copy_error"]) == {f"LLM server answered HTTP 400: Error code: 400 - {message}"}


def test_the_request_sent_again_without_response_format_waits_for_the_rate_limit(tmp_path):
    cfg = load_config()
    waits = []
    with FakeLLMServer(reject_response_format=("json_schema",)) as server:
        copy, stats = describe(PRODUCTS, _llm(cfg, server, concurrency=1), cfg.validation, tmp_path,
                               throttle=lambda: waits.append(1))
        sent = server.requests
    assert copy["title"].null_count() == 0 and stats.schema_fallbacks == 1
    assert len(waits) == sent == 4  # 3 products + the one re-send: every request went through the throttle


def test_a_programming_error_in_the_copy_check_stops_the_run_instead_of_rejecting_rows(tmp_path):
    class BuggyCheck:
        def problems(self, attributes, copy):
            return copy["no such field"]  # a bug of ours, not a fault of the LLM's answer

    cfg = load_config()
    with FakeLLMServer() as server, pytest.raises(KeyError, match="no such field"):
        describe(PRODUCTS, _llm(cfg, server), cfg.validation, tmp_path, check=BuggyCheck())


def test_stats_say_why_answers_were_retried(tmp_path):
    cfg = load_config()
    plan = FaultPlan.scripted(["invalid_json", "http_500", None, None, None])
    gate = _Gate(cfg, ["everything", None, None])  # the first checked answer of the first product has problems
    with FakeLLMServer(faults=plan) as server:
        _, stats = describe(PRODUCTS.slice(0, 2), _llm(cfg, server, concurrency=1, content_attempts=2), cfg.validation,
                            tmp_path, check=gate)
    # product 1: bad JSON (its first answer), a 500, copy with too many problems, then clean copy; product 2: clean
    assert stats.calls == 5 and stats.retries == 3
    assert stats.retry_reasons == {"json": 1, "server": 1, "content": 1}
    assert stats.first_answers == 2 and stats.first_clean == 1
    assert stats.problem_kinds == {"season": 1, "size": 1}


def test_example_and_sampling_settings_reach_the_server(tmp_path, httpserver):
    from catalog_intel.copywriting.copywriter import build_messages

    cfg = load_config()
    example = {"attributes": {"product": "women's top", "color": "green"},
               "answer": {"title": "Green Top", "bullet_points": ["Green colour."]}}
    llm = cfg.llm.model_copy(update={"example": type(cfg.llm.example)(**example), "sampling": {"min_p": 0.1}})
    messages = build_messages({"product": "women's top", "color": "red"}, llm)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert '"color": "green"' in messages[1]["content"] and json.loads(messages[2]["content"]) == example["answer"]
    assert '"color": "red"' in messages[3]["content"]
    off = llm.model_copy(update={"example": llm.example.model_copy(update={"enabled": False})})
    assert [m["role"] for m in build_messages({"color": "red"}, off)] == ["system", "user"]
    assert copy_key({"color": "red"}, llm) != copy_key({"color": "red"}, cfg.llm)  # the example is part of the prompt
    # one canned answer: the red t-shirt's copy
    answer = json.dumps(build_copy(PRODUCTS.row(1, named=True)))
    httpserver.expect_oneshot_request("/v1/chat/completions", method="POST").respond_with_json(
        {"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]})
    llm = _llm(cfg, SimpleNamespace(base_url=httpserver.url_for("/v1")), example=llm.example, sampling=llm.sampling)
    copy, _ = describe(PRODUCTS.slice(1, 1), llm, cfg.validation, tmp_path)
    httpserver.check_assertions()  # that one request, and no other
    body = httpserver.log[0][0].get_json()
    assert copy["copy_error"][0] is None  # the product's own attributes are answered, not the example's
    assert body["min_p"] == 0.1 and len(body["messages"]) == 4


def test_a_material_fact_is_not_also_listed_as_unknown():
    row = {"sha256": "x", **dict(zip(ATTRS, ("red", "unknown", "unknown", "solid", "unknown", "unknown", "top"))),
           "facts_json": json.dumps({"material_composition": "95% cotton, 5% elastane"})}
    attrs = prompt_attributes(row)
    assert attrs["facts"] == {"material_composition": "95% cotton, 5% elastane"}
    assert attrs["do_not_mention"] == ["neckline", "sleeves or sleeve length", "fit"]
    assert "fabric or material" in prompt_attributes({**row, "facts_json": None})["do_not_mention"]


def test_the_default_example_is_copy_the_gate_accepts():
    import dataclasses

    from catalog_intel.copywriting.copywriter import CatalogCopy, with_structured
    from catalog_intel.copywriting.grounding import copy_check

    cfg = load_config()
    example = cfg.llm.example
    assert example.attributes["product"] == "women's top" and example.answer  # the default prompt has one
    # the example's answer holds the LLM's fields; the templates add the rest
    copy = CatalogCopy.model_validate(with_structured(dict(example.answer), example.attributes, cfg.llm,
                                                      cfg.validation)).model_dump()
    gate = copy_check(cfg)
    assert dataclasses.replace(gate, example=None).problems(example.attributes, copy) == []
    # with the example on, copy may not borrow from it: its own sentences are all flagged
    on = dataclasses.replace(gate, example=example.answer)
    assert sorted(p.field for p in on.problems(example.attributes, copy) if p.kind == "borrowed") == \
        ["description", "description", "style_summary"]


def test_by_default_copy_with_problems_is_repaired_without_asking_again(tmp_path):
    # a small model at temperature 0.2 gave the same answer again (#20): a retry costs a whole answer
    cfg = load_config(None, {"validation.bullets_min": 2})
    cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"field_prompts": {}})})
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS.slice(0, 1), _llm(cfg, server, repair_max_removals=0), cfg.validation,
                               tmp_path, check=_Gate(cfg, ["men", "men"]))
    assert server.requests == 1 and stats.retries == 0 and copy["copy_error"][0] is None
    assert copy["copy_warnings"][0][0].startswith("removed title: ")


def test_an_answer_cut_off_at_max_tokens_is_asked_again_once_not_max_attempts_times(tmp_path):
    cfg = load_config()
    plan = FaultPlan.fail_product(lambda a: a.get("color") == "red", kind="cut_off")
    with FakeLLMServer(faults=plan) as server:
        copy, stats = describe(PRODUCTS.slice(0, 2), _llm(cfg, server, max_attempts=5), cfg.validation, tmp_path)
        red = [r for r in server.request_log if r["attrs"].get("color") == "red"]
    assert cfg.llm.format_attempts == 2 and len(red) == 2  # not 5
    errors = dict(zip(copy["sha256"], copy["copy_error"]))
    assert errors["sha0"] is None
    assert errors["sha1"].startswith("response cut off at max_tokens 256 (answer 2 of at most 2 off the format")
    assert stats.retry_reasons == {"cut_off": 1} and stats.failed == 1


def test_every_product_shares_the_prompt_up_to_its_own_attributes(tmp_path):
    """llama.cpp's prompt cache reuses a slot's longest common prefix: nothing that varies by
    product (its note, its garment) may come before the product's attributes."""
    cfg = load_config()
    frame = pl.DataFrame([
        {"sha256": "a", "color": "blue", "garment_type": "blouse", "facts_json": json.dumps({"details": "Blouse in chiffon."})},
        {"sha256": "b", "color": "red", "sleeve": "short sleeve", "garment_type": "t-shirt"}])
    with FakeLLMServer() as server:
        copy, _ = describe(frame, _llm(cfg, server), cfg.validation, tmp_path)
        bodies = [r["body"] for r in server.request_log]
    assert copy["copy_error"].null_count() == 2
    texts = ["\n".join(m["content"] for m in b["messages"]) for b in bodies]
    heads = [t[:t.index("{\"color\"")] for t in texts]  # up to the product's attributes (JSON)
    assert heads[0] == heads[1] and len(heads[0]) > 1000
    # the grammar, not the prompt, asks each product for its own fields
    asked = sorted(sorted(b["response_format"]["json_schema"]["schema"]["properties"]) for b in bodies)
    assert asked == [["description", "features", "style_summary"], ["description", "style_summary"]]


@pytest.mark.parametrize("text, ok", [("A red top with short sleeves. Wear it with jeans.", True),
                                      ("A red top with short sleeves.", False),
                                      ("A red top. Wear it with jeans. It is red.", False),
                                      ("A red top with short sleeves. Wear it with", False)])
def test_the_grammar_asks_for_a_two_sentence_description(text, ok):
    from catalog_intel.copywriting.copywriter import response_schema

    pattern = response_schema(("style_summary", "description"))["properties"]["description"]["pattern"]
    assert bool(re.fullmatch(pattern.strip("^$"), text)) is ok


def test_a_repair_that_would_leave_one_description_sentence_asks_once_more_at_a_higher_temperature(tmp_path):
    cfg = load_config()
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS.slice(1, 1), _llm(cfg, server, content_attempts=2), cfg.validation, tmp_path,
                               check=_Gate(cfg, ["sentence", None]))
        temperatures = [r["body"]["temperature"] for r in server.request_log]
    assert temperatures == [cfg.llm.temperature, cfg.llm.retry_temperature] and cfg.llm.retry_temperature > 0.5
    assert stats.retry_reasons == {"content": 1} and copy["copy_warnings"][0].to_list() == []
    assert copy["description"][0].count(". ") == 1  # both sentences kept
    # a problem outside the description is repaired at once: the prose keeps its two sentences
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS.slice(1, 1), _llm(cfg, server, content_attempts=2, repair_max_removals=0),
                               cfg.validation, tmp_path / "b", check=_Gate(cfg, ["men"]))
    assert server.requests == 2  # repair_max_removals=0 still asks again for any problem
    with FakeLLMServer() as server:
        copy, stats = describe(PRODUCTS.slice(1, 1), _llm(cfg, server, content_attempts=2, repair_max_removals=99),
                               cfg.validation, tmp_path / "c", check=_Gate(cfg, ["men"]))
    assert server.requests == 1 and copy["copy_warnings"][0][0].startswith("removed title")
