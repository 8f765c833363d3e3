"""A newcomer's first run: CLIP weights fetched when missing (not offline), and `catalog-intel demo`.

There is no model hub here, so the real download is not exercised: the tests cover the
cache hit, the offline error (flag and HF_HUB_OFFLINE=1), the no-network error, and the
decision to download (with the download itself replaced)."""

from pathlib import Path

import pytest

from catalog_intel.cli import main
from catalog_intel.errors import WeightsNotCached
from catalog_intel.inference import clip_model
from catalog_intel.inference.clip_model import ensure_weights, resolve_weights
from catalog_intel.settings import load_config


@pytest.fixture()
def no_download(monkeypatch):
    monkeypatch.setattr(clip_model, "pull_pretrained", lambda cfg, root: pytest.fail("tried to download"))
    monkeypatch.setattr(clip_model, "_reachable", lambda host, timeout_s=5.0: pytest.fail("probed the network"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _cfg(tmp_path):
    return load_config(None, {"paths.cache_dir": str(tmp_path / "cache")})


def test_cached_weights_are_used_without_any_network(tmp_path, monkeypatch, no_download):
    weights = tmp_path / "open_clip_model.safetensors"
    weights.write_bytes(b"w")
    monkeypatch.setattr(clip_model, "cached_pretrained_file", lambda cfg, root: weights)
    cfg = _cfg(tmp_path)
    said = []
    assert ensure_weights(cfg.clip, cfg.paths.cache_path, say=said.append) == weights and said == []


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_keeps_the_clear_error(tmp_path, monkeypatch, no_download, how):
    monkeypatch.setattr(clip_model, "cached_pretrained_file", lambda cfg, root: None)
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = _cfg(tmp_path)
    with pytest.raises(WeightsNotCached) as err:
        ensure_weights(cfg.clip, cfg.paths.cache_path, offline=how == "flag")
    text = str(err.value)
    assert "ViT-B-32" in text and "laion2b_s34b_b79k" in text and "catalog-intel models pull" in text
    assert "--clip-checkpoint" in text and "This run is offline (--offline or HF_HUB_OFFLINE=1)" in text


def test_no_network_fails_in_one_message_without_the_hub_retries(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(clip_model, "cached_pretrained_file", lambda cfg, root: None)
    monkeypatch.setattr(clip_model, "_reachable", lambda host, timeout_s=5.0: host == "nowhere")
    monkeypatch.setattr(clip_model, "pull_pretrained", lambda cfg, root: pytest.fail("tried to download"))
    cfg = _cfg(tmp_path)
    with pytest.raises(WeightsNotCached, match="No network: huggingface.co cannot be reached"):
        ensure_weights(cfg.clip, cfg.paths.cache_path)


def test_a_cache_miss_online_downloads_once_and_says_where(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(clip_model, "_reachable", lambda host, timeout_s=5.0: True)
    fetched = tmp_path / "cache" / "models" / "clip" / "open_clip_model.safetensors"

    def fake_pull(cfg, root):  # stands in for open_clip's download (no hub here)
        fetched.parent.mkdir(parents=True, exist_ok=True)
        fetched.write_bytes(b"w")
        return fetched

    monkeypatch.setattr(clip_model, "pull_pretrained", fake_pull)
    monkeypatch.setattr(clip_model, "cached_pretrained_file", lambda cfg, root: None)
    cfg = _cfg(tmp_path)
    said = []
    assert ensure_weights(cfg.clip, cfg.paths.cache_path, say=said.append) == fetched
    assert "downloading them once into" in said[0] and said[1] == f"CLIP weights saved to {fetched}"
    # The next run finds them in the cache, and so does a plain (never-downloading) resolve.
    monkeypatch.setattr(clip_model, "pull_pretrained", lambda cfg, root: pytest.fail("downloaded twice"))
    assert resolve_weights(cfg.clip, cfg.paths.cache_path) == fetched


def test_demo_offline_without_weights_says_how_to_get_them_in_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CATALOG_INTEL_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-llm"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("catalog-intel: error: the demo needs CLIP weights.")
    assert "catalog-intel models pull" in err and "--clip-checkpoint" in err and "make_random_checkpoint.py" in err
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_demo_runs_the_demo_catalog_end_to_end_and_prints_the_report(prefect_server, tmp_path, config_file, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--count", "4", "--config", str(config_file), "--no-llm",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    report = (out / "report" / "index.html").resolve()
    assert printed.rstrip().endswith(f"Open the review report: {report.as_uri()}") and report.is_file()
    assert f"demo catalog: 4 synthetic packshots in {out / 'images'}" in printed
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"sku-{i:05d}.jpg" for i in range(4)]
    assert len((out / "catalog.csv").read_text().splitlines()) == 5
