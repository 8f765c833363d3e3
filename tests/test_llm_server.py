"""Tests for the fake OpenAI-compatible server (tests/llm_server.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from llm_server import FAULT_KINDS, FakeLLMServer, FaultPlan, build_copy  # noqa: E402

COLORS = {"red", "blue", "green", "black", "white", "navy", "yellow", "pink",
          "purple", "orange", "grey", "gray", "brown", "beige"}

NAVY = {
    "color": "navy",
    "neckline": "v-neck",
    "sleeve": "long",
    "pattern": "striped",
    "fabric": "cotton",
    "fit": "relaxed",
    "garment_type": "dress",
}
RED = dict(NAVY, color="red", pattern="unknown", fabric="unknown")


def messages_for(attrs: dict) -> list[dict]:
    return [
        {"role": "system", "content": "You write catalog copy. Reply with JSON only."},
        {"role": "user", "content": "Write copy for this product:\n" + json.dumps(attrs)
         + "\nRespond with the JSON object."},
    ]


def client_for(srv: FakeLLMServer, timeout: float = 2.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=timeout)


def ask(client: openai.OpenAI, attrs: dict = NAVY, **kw):
    return client.chat.completions.create(model="fake-llm", messages=messages_for(attrs), **kw)


def assert_schema_valid(copy: dict) -> None:
    assert set(copy) == {"title", "bullet_points", "description", "style_summary", "seo_tags"}
    assert isinstance(copy["title"], str) and 0 < len(copy["title"].split()) <= 12
    assert isinstance(copy["bullet_points"], list) and 2 <= len(copy["bullet_points"]) <= 4
    assert all(isinstance(b, str) and b for b in copy["bullet_points"])
    assert isinstance(copy["description"], str) and copy["description"]
    assert isinstance(copy["style_summary"], str) and copy["style_summary"]
    assert isinstance(copy["seo_tags"], list) and 3 <= len(copy["seo_tags"]) <= 5
    assert all(isinstance(t, str) and t == t.lower() and t for t in copy["seo_tags"])


def words_of(copy: dict) -> set[str]:
    text = json.dumps(copy).lower()
    for ch in '",.:[]{}':
        text = text.replace(ch, " ")
    return set(text.split())


@pytest.fixture
def srv():
    with FakeLLMServer() as s:
        yield s


# ---------------------------------------------------------------- normal path


def test_models_endpoint(srv):
    models = client_for(srv).models.list()
    assert [m.id for m in models.data] == ["fake-llm"]
    with urllib.request.urlopen(srv.base_url + "/models", timeout=2) as r:
        assert json.load(r) == {"object": "list", "data": [
            {"id": "fake-llm", "object": "model", "created": 0, "owned_by": "fake"}]}


def test_normal_call_is_schema_valid_and_mentions_only_given_colour(srv):
    resp = ask(client_for(srv))
    assert resp.object == "chat.completion"
    assert resp.model == "fake-llm"
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    copy = json.loads(choice.message.content)
    assert_schema_valid(copy)
    assert copy["title"].startswith("Navy Striped V-Neck Dress")
    words = words_of(copy)
    assert "navy" in words
    assert not (COLORS - {"navy"}) & words
    assert "cotton" in words and "relaxed" in words


def test_model_name_echoed_and_unknown_values_skipped(srv):
    resp = client_for(srv).chat.completions.create(model="my-model", messages=messages_for(RED))
    assert resp.model == "my-model"
    copy = json.loads(resp.choices[0].message.content)
    assert_schema_valid(copy)
    words = words_of(copy)
    assert "red" in words and "unknown" not in words
    assert "striped" not in words and "cotton" not in words
    assert not (COLORS - {"red"}) & words


@pytest.mark.parametrize("attrs", [
    {},
    {"color": "unknown", "garment_type": "unknown"},
    {"garment_type": "shirt"},
    {"color": "light blue", "neckline": "crew", "sleeve": "short sleeve",
     "pattern": "floral print", "fabric": "linen blend", "fit": "slim",
     "garment_type": "button-down shirt"},
])
def test_build_copy_always_schema_valid(attrs):
    copy = build_copy(attrs)
    assert_schema_valid(copy)
    assert "unknown" not in json.dumps(copy).lower()


def test_request_counter_and_log(srv):
    client = client_for(srv)
    assert srv.requests == 0
    for _ in range(3):
        ask(client)
    client.models.list()  # GET is not counted
    assert srv.requests == 3
    log = srv.request_log
    assert len(log) == 3
    assert all(e["fault"] is None for e in log)
    assert log[0]["body"]["model"] == "fake-llm"
    assert log[0]["attrs"] == NAVY
    assert log[0]["time"] <= log[1]["time"] <= log[2]["time"]
    srv.reset()
    assert srv.requests == 0 and srv.request_log == []


def test_counter_is_thread_safe(srv):
    client = client_for(srv, timeout=5)
    threads = [threading.Thread(target=ask, args=(client,)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert srv.requests == 20


# --------------------------------------------------------------------- faults


def with_fault(kind: str, **plan_kw) -> FakeLLMServer:
    return FakeLLMServer(FaultPlan([kind], **plan_kw))


def test_http_429_rate_limit_with_retry_after():
    with with_fault("http_429", retry_after="7") as s:
        with pytest.raises(openai.RateLimitError) as ei:
            ask(client_for(s))
        assert ei.value.status_code == 429
        assert ei.value.response.headers["retry-after"] == "7"
        assert ei.value.code == "rate_limit_exceeded"
        assert s.request_log[0]["fault"] == "http_429"


def test_http_429_default_retry_after_is_1():
    with with_fault("http_429") as s:
        with pytest.raises(openai.RateLimitError) as ei:
            ask(client_for(s))
        assert ei.value.response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("kind,status", [("http_500", 500), ("http_503", 503)])
def test_http_5xx(kind, status):
    with with_fault(kind) as s:
        with pytest.raises(openai.InternalServerError) as ei:
            ask(client_for(s))
        assert ei.value.status_code == status
        assert s.request_log[0]["fault"] == kind


def test_hang_times_out_client():
    with with_fault("hang") as s:
        t0 = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            ask(client_for(s, timeout=1.0))
        assert time.monotonic() - t0 < 2.5
        assert s.requests == 1 and s.request_log[0]["fault"] == "hang"
        # a hanging handler does not block other requests
        resp = ask(client_for(s), extra_headers={"X-Fake-Fault": "none"})
        assert_schema_valid(json.loads(resp.choices[0].message.content))


def test_hang_with_default_two_second_timeout():
    with with_fault("hang") as s:
        t0 = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            ask(client_for(s))
        assert time.monotonic() - t0 < 3.5


def test_hang_short_hang_s_answers_normally_late():
    with with_fault("hang", hang_s=0.3) as s:
        t0 = time.monotonic()
        resp = ask(client_for(s))
        assert time.monotonic() - t0 >= 0.3
        assert_schema_valid(json.loads(resp.choices[0].message.content))


def test_drop_gives_connection_error():
    with with_fault("drop") as s:
        with pytest.raises(openai.APIConnectionError) as ei:
            ask(client_for(s))
        assert not isinstance(ei.value, openai.APITimeoutError)
        assert s.request_log[0]["fault"] == "drop"


def test_invalid_json_content():
    with with_fault("invalid_json") as s:
        content = ask(client_for(s)).choices[0].message.content
        assert content == '{"title": "Trunc'
        with pytest.raises(json.JSONDecodeError):
            json.loads(content)


def test_missing_fields_content():
    with with_fault("missing_fields") as s:
        copy = json.loads(ask(client_for(s)).choices[0].message.content)
        assert "bullet_points" not in copy and "seo_tags" not in copy
        assert "title" in copy


def test_overlong_content():
    with with_fault("overlong") as s:
        copy = json.loads(ask(client_for(s)).choices[0].message.content)
        assert len(copy["title"].split()) == 60
        assert len(copy["description"]) == 20000
        assert not (COLORS - {"navy"}) & words_of(copy)


def test_empty_content():
    with with_fault("empty") as s:
        resp = ask(client_for(s))
        assert resp.choices[0].message.content == ""
        assert resp.choices[0].finish_reason == "stop"


def test_script_is_cyclic_and_recorded():
    with FakeLLMServer(FaultPlan(["http_500", None, "empty"])) as s:
        client = client_for(s)
        with pytest.raises(openai.InternalServerError):
            ask(client)
        assert_schema_valid(json.loads(ask(client).choices[0].message.content))
        assert ask(client).choices[0].message.content == ""
        with pytest.raises(openai.InternalServerError):
            ask(client)
        assert s.faults_applied() == ["http_500", None, "empty", "http_500"]
        s.reset()  # also rewinds the script
        with pytest.raises(openai.InternalServerError):
            ask(client)


def test_header_forces_fault():
    with FakeLLMServer() as s:
        with pytest.raises(openai.InternalServerError):
            ask(client_for(s), extra_headers={"X-Fake-Fault": "http_503"})
        assert s.request_log[0]["fault"] == "http_503"


def test_always_fail_if_product():
    plan = FaultPlan(always_fail_if=lambda a: a.get("color") == "red", kind="http_500")
    with FakeLLMServer(plan) as s:
        client = client_for(s)
        for _ in range(5):
            with pytest.raises(openai.InternalServerError):
                ask(client, RED)
        assert_schema_valid(json.loads(ask(client, NAVY).choices[0].message.content))
        assert s.faults_applied() == ["http_500"] * 5 + [None]
        assert plan.attempts_for(RED) == 5


def test_fail_first_n_attempts_per_product():
    plan = FaultPlan(always_fail_if=lambda a: a.get("color") == "red",
                     kind="http_503", fail_first_n=2)
    with FakeLLMServer(plan) as s:
        client = client_for(s)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                ask(client, RED)
        copy = json.loads(ask(client, RED).choices[0].message.content)
        assert_schema_valid(copy)
        other_red = dict(RED, garment_type="skirt")  # a different product: own counter
        with pytest.raises(openai.InternalServerError):
            ask(client, other_red)
        assert s.faults_applied() == ["http_503", "http_503", None, "http_503"]


def test_random_plan_is_seeded_and_has_roughly_the_rate():
    kinds = ["http_500", "http_429", "invalid_json"]
    a = FaultPlan.random(rate=0.3, seed=1, kinds=kinds).sequence(200)
    b = FaultPlan.random(rate=0.3, seed=1, kinds=kinds).sequence(200)
    c = FaultPlan.random(rate=0.3, seed=2, kinds=kinds).sequence(200)
    assert a == b
    assert a != c
    hits = [x for x in a if x is not None]
    assert 40 <= len(hits) <= 80  # 0.3 * 200 = 60
    assert set(hits) <= set(kinds) and len(set(hits)) == 3
    plan = FaultPlan.random(rate=0.3, seed=1, kinds=kinds)
    plan.sequence(50)
    plan.reset()
    assert plan.sequence(200) == a


def test_random_plan_through_server_matches_sequence():
    kinds = ["http_500", "empty"]
    expected = FaultPlan.random(rate=0.5, seed=3, kinds=kinds).sequence(12)
    with FakeLLMServer(FaultPlan.random(rate=0.5, seed=3, kinds=kinds)) as s:
        client = client_for(s)
        for _ in range(12):
            try:
                ask(client)
            except openai.InternalServerError:
                pass
        assert s.faults_applied() == expected


def test_fault_kind_validation():
    with pytest.raises(ValueError):
        FaultPlan(["nope"])
    with pytest.raises(ValueError):
        FaultPlan.random(rate=0.5, kinds=["http_404"])
    assert len(FAULT_KINDS) == 9


def test_latency():
    with FakeLLMServer(latency_s=0.2) as s:
        t0 = time.monotonic()
        ask(client_for(s))
        assert time.monotonic() - t0 >= 0.2


# ------------------------------------------------------------------ lifecycle


def test_stop_is_fast_with_hanging_request_in_flight():
    s = FakeLLMServer(FaultPlan(["hang"], hang_s=60)).start()
    errors: list[BaseException] = []

    def call():
        try:
            ask(client_for(s, timeout=30))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    assert s.wait_for_requests(1, timeout=5)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 1.0
    t.join(timeout=5)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], openai.APIConnectionError)
    s.stop()  # idempotent


def test_base_url_and_restart():
    s = FakeLLMServer()
    with pytest.raises(RuntimeError):
        _ = s.base_url
    with s:
        assert s.base_url.startswith("http://127.0.0.1:") and s.base_url.endswith("/v1")
        assert s.port > 0
    assert not s.running


def test_cli_runs_in_foreground():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "llm_server.py"),
         "--port", str(port), "--fault-rate", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}/v1" in line
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test",
                               max_retries=0, timeout=2)
        copy = json.loads(ask(client).choices[0].message.content)
        assert_schema_valid(copy)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
