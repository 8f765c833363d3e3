"""Offline model resolution stays cheap on cached runs (no open_clip/torch import)
and still fails fast, with the same messages, on a bad configuration."""

import subprocess
import sys

import pytest

from catalog_intel.errors import ModelUnavailableError
from catalog_intel.inference import clip_model
from catalog_intel.inference.clip_model import model_id, resolve_weights
from catalog_intel.settings import load_config


def test_unknown_architecture_still_fails_fast(tmp_path):
    cfg = load_config(None, {"clip.model": "ViT-Nope-99", "clip.checkpoint": str(tmp_path / "w.pt")})
    with pytest.raises(ModelUnavailableError, match="unknown CLIP architecture 'ViT-Nope-99'"):
        resolve_weights(cfg.clip, tmp_path)


def test_pretrained_weights_are_found_once_then_remembered(tmp_path, monkeypatch):
    weights = tmp_path / "open_clip_model.safetensors"
    weights.write_bytes(b"w")
    calls = []
    monkeypatch.setattr(clip_model, "cached_pretrained_file", lambda cfg, root: calls.append(1) or weights)
    cfg = load_config(None, {"paths.cache_dir": str(tmp_path / "cache")})
    assert resolve_weights(cfg.clip, cfg.paths.cache_path) == weights
    assert resolve_weights(cfg.clip, cfg.paths.cache_path) == weights
    assert len(calls) == 1
    weights.unlink()  # gone: looked up again, and missing weights are reported as before
    monkeypatch.setattr(clip_model, "cached_pretrained_file", lambda cfg, root: None)
    with pytest.raises(ModelUnavailableError, match="catalog-intel models pull"):
        resolve_weights(cfg.clip, cfg.paths.cache_path)


def test_checkpoint_digest_is_remembered_by_stat(tmp_path, monkeypatch):
    from catalog_intel.io import filesystem

    monkeypatch.setattr(filesystem, "RACY_WINDOW_S", 0.0)
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"weights" * 1000)
    cfg = load_config(None, {"clip.checkpoint": str(ckpt)})
    first = model_id(cfg.clip, tmp_path / "cache")
    clip_model._file_sha256.cache_clear()
    monkeypatch.setattr(clip_model, "_file_sha256", lambda *a: pytest.fail("hashed the checkpoint again"))
    assert model_id(cfg.clip, tmp_path / "cache") == first == model_id(cfg.clip, tmp_path / "cache")


def test_resolving_a_checkpoint_imports_neither_open_clip_nor_torch(tmp_path, tiny_clip):
    code = (
        "import sys\n"
        "from catalog_intel.settings import load_config\n"
        "from catalog_intel.inference.clip_model import model_id, resolve_weights\n"
        f"cfg = load_config(None, {dict(tiny_clip)!r})\n"
        f"resolve_weights(cfg.clip, __import__('pathlib').Path({str(tmp_path)!r}))\n"
        f"model_id(cfg.clip, __import__('pathlib').Path({str(tmp_path)!r}))\n"
        "print(sorted(m for m in ('open_clip', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_text_tower_on_the_used_tokens_matches_open_clip_on_all_77(tiny_clip, tmp_path):
    """encode_texts skips the padding after the longest prompt; CLIP's causal mask and
    end-of-text pooling make that exact, so it must give open_clip's own embeddings."""
    import numpy as np
    import torch

    from catalog_intel.inference.clip_model import encode_texts, load_clip

    clip = load_clip(load_config(None, dict(tiny_clip)).clip, tmp_path / "cache")
    texts = ["a photo of a red top.", "a woman wearing a long sleeve striped cotton blouse with a v-neck.", "top"]
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(clip.model.encode_text(clip.tokenizer(texts)).float(), dim=-1).numpy()

    calls = []
    original = clip.model.encode_text
    clip.model.encode_text = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        trimmed = encode_texts(clip, texts)
    finally:
        clip.model.encode_text = original
    assert calls == []  # the shortened path ran, not open_clip's 77-token one
    assert trimmed.shape == reference.shape == (3, clip.model.text_projection.shape[1])
    np.testing.assert_allclose(trimmed, reference, atol=1e-5)
    assert np.allclose(np.linalg.norm(trimmed, axis=1), 1.0, atol=1e-5)


def test_preload_leaves_the_model_and_label_texts_the_run_finds(tiny_clip, tmp_path):
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.inference.zeroshot import label_index_path, load_or_build_label_index, preload

    config = load_config(None, {**tiny_clip, "paths.cache_dir": str(tmp_path / "cache")})
    cache_root = config.paths.cache_path
    clip_model._load.cache_clear()
    thread = preload(config)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert clip_model._load.cache_info().misses == 1  # the preload loaded the model once
    ident = model_id(config.clip, cache_root)
    assert label_index_path(cache_root, ident, config).is_file()  # and encoded the vocabulary

    def must_not_load():
        raise AssertionError("the label texts were encoded again")

    assert load_or_build_label_index(cache_root, ident, config, must_not_load) == label_index_path(cache_root, ident, config)
    clip = load_clip(config.clip, cache_root)
    info = clip_model._load.cache_info()
    assert info.hits >= 1 and info.misses == 1 and clip.image_size == 32  # the run's load found it


def test_clip_is_preloaded_only_for_a_first_local_run(tmp_path):
    from catalog_intel.cli import _first_local_run

    out = tmp_path / "out"
    assert _first_local_run(load_config(), str(out))
    assert not _first_local_run(load_config(None, {"runner.task_runner": "dask"}), str(out))
    out.mkdir()
    (out / "_SUCCESS.json").write_text("{}")  # an earlier run published here: its images are mostly cached
    assert not _first_local_run(load_config(), str(out))


class _RunsCode:
    """Unpickling this calls open(marker, "w"): what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_with_a_pickled_object_is_refused_and_its_code_never_runs(tiny_clip, tmp_path):
    import torch

    marker = tmp_path / "the-code-ran"
    evil = tmp_path / "evil.pt"
    state = torch.load(tiny_clip["clip.checkpoint"], weights_only=True)
    torch.save({**state, "payload": _RunsCode(marker)}, evil)
    cfg = load_config(None, {**tiny_clip, "clip.checkpoint": str(evil), "paths.cache_dir": str(tmp_path / "c")})
    with pytest.raises(ModelUnavailableError) as err:
        clip_model.load_clip(cfg.clip, cfg.paths.cache_path)
    assert f"refused to load CLIP checkpoint {evil}" in str(err.value)
    assert "pickled Python objects" in str(err.value)
    assert not marker.exists()
    # the same file without the object loads: the refusal is about the object, not the format
    torch.save(state, evil)
    assert clip_model.load_clip(cfg.clip, cfg.paths.cache_path).model is not None


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_checkpoint_loads_memory_mapped_or_as_before_with_the_same_weights(tiny_clip, tmp_path, zipped):
    """torch.load memory-maps a zip checkpoint while open_clip loads it (legacy files cannot be mapped and
    load as before) and the random initialisers are skipped: the model holds the file's tensors either way,
    and torch.load and torch.nn.init are themselves again after."""
    import torch

    state = torch.load(tiny_clip["clip.checkpoint"], weights_only=True)
    path = tmp_path / f"tiny-{zipped}.pt"
    torch.save(state, path, _use_new_zipfile_serialization=zipped)
    plain, normal = torch.load, torch.nn.init.normal_
    cfg = load_config(None, {**tiny_clip, "clip.checkpoint": str(path), "paths.cache_dir": str(tmp_path / "c")})
    loaded = clip_model.load_clip(cfg.clip, cfg.paths.cache_path).model.state_dict()
    weights = state.get("state_dict", state)
    assert weights and all(torch.equal(loaded[k], v) for k, v in weights.items())
    assert torch.load is plain and torch.nn.init.normal_ is normal
    assert torch.nn.init.normal_(torch.zeros(1000)).std() > 0.5  # random again
