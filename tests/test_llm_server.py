"""The fake OpenAI-compatible server's fault injection, which the copywriter, flow and rate-limit
tests rely on: each fault reaches an OpenAI client as a real server's would, and plans are
reproducible. (Its normal answers are checked by every test that describes products.)"""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest

from llm_server import FakeLLMServer, FaultPlan

NAVY = {"color": "navy", "neckline": "v-neck", "sleeve": "long", "pattern": "striped", "fabric": "cotton",
        "fit": "relaxed", "garment_type": "dress"}
RED = dict(NAVY, color="red", pattern="unknown", fabric="unknown")
FIELDS = {"title", "bullet_points", "description", "style_summary", "seo_tags"}


def ask(srv: FakeLLMServer, attrs: dict = NAVY, timeout: float = 2.0, **kw):
    if getattr(srv, "client", None) is None:  # one client per server: building one costs more than a request
        srv.client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0)
    return srv.client.with_options(timeout=timeout).chat.completions.create(model="fake-llm", messages=[
        {"role": "system", "content": "You write catalog copy. Reply with JSON only."},
        {"role": "user", "content": "Write copy for this product:\n" + json.dumps(attrs)}], **kw)


def content(srv: FakeLLMServer, attrs: dict = NAVY) -> str:
    return ask(srv, attrs).choices[0].message.content


@pytest.mark.parametrize("kind,error,status", [("http_429", openai.RateLimitError, 429),
                                               ("http_500", openai.InternalServerError, 500),
                                               ("http_503", openai.InternalServerError, 503)])
def test_status_faults_are_openai_errors(kind, error, status):
    with FakeLLMServer(FaultPlan([kind], retry_after="7")) as srv:
        with pytest.raises(error) as raised:
            ask(srv)
    assert raised.value.status_code == status and srv.faults_applied() == [kind]
    assert raised.value.response.headers.get("retry-after") == ("7" if kind == "http_429" else None)


def test_content_faults_answer_200_with_unusable_copy():
    with FakeLLMServer(FaultPlan(["invalid_json", "missing_fields", "overlong", "empty", None])) as srv:
        assert content(srv) == '{"title": "Trunc'
        assert set(json.loads(content(srv))) == {"title", "description", "style_summary"}
        overlong = json.loads(content(srv))
        assert len(overlong["title"].split()) == 60 and len(overlong["description"]) == 20000
        assert content(srv) == ""
        normal = json.loads(content(srv, RED))
    assert set(normal) == FIELDS and normal["title"].startswith("Red")
    assert "unknown" not in json.dumps(normal) and "striped" not in json.dumps(normal).lower()


def test_drop_and_hang_fail_the_request_and_stop_cuts_a_hang_short():
    errors: list[BaseException] = []

    def ask_and_keep_error() -> None:
        try:
            ask(srv, timeout=30)
        except openai.APIError as e:
            errors.append(e)

    with FakeLLMServer(FaultPlan(["drop", "hang", "hang"], hang_s=60)) as srv:
        with pytest.raises(openai.APIConnectionError) as dropped:
            ask(srv)
        assert not isinstance(dropped.value, openai.APITimeoutError)
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            ask(srv, timeout=0.5)
        assert time.monotonic() - started < 2.0
        caller = threading.Thread(target=ask_and_keep_error)
        caller.start()
        while srv.requests < 3:
            time.sleep(0.01)
        started = time.monotonic()
    assert time.monotonic() - started < 1.0  # leaving the block ends the hanging requests at once
    caller.join(5)
    assert isinstance(errors[0], openai.APIConnectionError) and srv.faults_applied() == ["drop", "hang", "hang"]


def test_a_product_fails_its_first_n_attempts_then_is_answered():
    plan = FaultPlan.fail_product(lambda a: a.get("color") == "red", kind="http_503", first_n=2)
    with FakeLLMServer(plan) as srv:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                ask(srv, RED)
        assert set(json.loads(content(srv, RED))) == FIELDS
        with pytest.raises(openai.InternalServerError):
            ask(srv, dict(RED, garment_type="skirt"))  # another product: its own count
        assert set(json.loads(content(srv, NAVY))) == FIELDS
    assert srv.faults_applied() == ["http_503", "http_503", None, "http_503", None]
    assert [e["attrs"]["color"] for e in srv.request_log] == ["red"] * 4 + ["navy"]


def test_a_random_plan_is_the_same_for_the_same_seed():
    def applied(seed: int) -> list[str | None]:
        with FakeLLMServer(FaultPlan.random(0.5, seed=seed, kinds=["http_500", "empty"])) as srv:
            for _ in range(12):
                try:
                    ask(srv)
                except openai.InternalServerError:
                    pass
        return srv.faults_applied()

    first = applied(3)
    assert first == applied(3) != applied(4)
    assert {"http_500", "empty", None} == set(first)


def test_a_refused_response_format_is_a_400_and_fenced_copy_is_wrapped():
    schema = {"type": "json_schema", "json_schema": {"name": "copy", "schema": {"type": "object"}}}
    with FakeLLMServer(reject_response_format=("json_schema",), fenced=True) as srv:
        with pytest.raises(openai.BadRequestError, match="response_format"):
            ask(srv, response_format=schema)
        fenced = content(srv)
    assert fenced.startswith("Here is the copy:\n```json\n") and fenced.endswith("\n```")
    assert set(json.loads(fenced.split("```json\n", 1)[1].rsplit("\n```", 1)[0])) == FIELDS
