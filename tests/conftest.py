"""Shared fixtures: an isolated Prefect home, a tiny real open_clip checkpoint,
the fake OpenAI-compatible server and the shared labelled images."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

# Before anything imports Prefect: no telemetry, our own PREFECT_HOME, patient server start.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="catalog-intel-prefect-home-")
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_tiny_clip(folder: Path, seed: int = 0) -> dict:
    """A real (random-weights) open_clip model saved to a checkpoint file: the
    same loading path as a downloaded ViT-B-32, at a size tests can afford."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "tiny-clip.json"
    config_path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model("tiny-clip", pretrained=None)
    checkpoint = folder / "tiny-clip.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    return {"clip.model": "tiny-clip", "clip.model_config": str(config_path), "clip.checkpoint": str(checkpoint),
            "clip.batch_size": 16, "clip.decode_workers": 0}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> dict:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture()
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture()
def config_file(tmp_path, tiny_clip) -> Path:
    """A user TOML config pointing at the tiny checkpoint (as a user would write it)."""
    path = tmp_path / "catalog-intel.toml"
    path.write_text(
        "[clip]\n"
        f'model = "{tiny_clip["clip.model"]}"\n'
        f'model_config = "{tiny_clip["clip.model_config"]}"\n'
        f'checkpoint = "{tiny_clip["clip.checkpoint"]}"\n'
        "batch_size = 16\ndecode_workers = 0\n"
        "[llm]\nrequests_per_second = 50.0\nconcurrency = 4\nbackoff_initial_s = 0.05\nbackoff_max_s = 2.0\n"
        "timeout_s = 5\n"
    )
    return path


@pytest.fixture()
def fake_llm():
    from llm_server import FakeLLMServer

    with FakeLLMServer() as server:
        yield server


def shared_set(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared data set {path} is not present on this machine")
    return path


@pytest.fixture(scope="session")
def seed_images() -> Path:
    return shared_set("seed-samples") / "images"


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for the in-process flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def catalog_run(prefect_server, tiny_clip, seed_images, tmp_path_factory):
    """One real run for the search, CLI and report tests: 12 seed photos, a byte-identical
    copy, an empty file and a text file posing as a PNG, fake LLM copy, top_k = 3.

    The tiny random model's confidences cannot be predicted, so a first run (no LLM,
    every threshold 0) measures them, and the real run sets fit's threshold to their
    median: about half of the rows abstain on fit and need review, the rest do not."""
    import statistics
    from types import SimpleNamespace

    import polars as pl

    from catalog_intel.orchestration.flow import catalog_flow
    from llm_server import FakeLLMServer

    root = tmp_path_factory.mktemp("catalog-run")
    src, out, cache = root / "src", root / "out", root / "cache"
    src.mkdir()
    for p in sorted(seed_images.iterdir())[:12]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / "copy of data (1).jpg").write_bytes((seed_images / "data (1).jpg").read_bytes())
    (src / "empty.jpg").write_bytes(b"")
    (src / "readme.png").write_text("not a picture")
    attributes = ["color", "neckline", "sleeve", "pattern", "fabric", "fit", "garment_type"]

    def write_config(fit_threshold: float) -> Path:
        path = root / "catalog-intel.toml"
        path.write_text(
            "[clip]\n" + "".join(f'{k.split(".")[1]} = {json.dumps(v)}\n' for k, v in tiny_clip.items())
            + "[llm]\nrequests_per_second = 50.0\nconcurrency = 4\nbackoff_initial_s = 0.05\nbackoff_max_s = 2.0\n"
            + "timeout_s = 5\n[search]\ntop_k = 3\n[report]\nlow_confidence_margin = 0.0\n"
            + "".join(f"[attributes.{a}]\nmin_confidence = {fit_threshold if a == 'fit' else 0.0}\n" for a in attributes)
        )
        return path

    config = write_config(0.0)
    catalog_flow(source=str(src), out_dir=str(out), config_path=str(config), cache_dir=str(cache), no_llm=True)
    fit_threshold = statistics.median(pl.read_parquet(out / "catalog.parquet")["fit_confidence"].to_list())
    config = write_config(fit_threshold)
    with FakeLLMServer() as llm:
        summary = catalog_flow(source=str(src), out_dir=str(out), config_path=str(config), cache_dir=str(cache),
                               llm_base_url=llm.base_url)
    return SimpleNamespace(src=src, out=out, cache=cache, config=config, summary=summary, fit_threshold=fit_threshold)


def copy_seed_images(seed_images: Path, folder: Path, count: int) -> Path:
    """The first `count` seed photos copied into `folder` (a small source for a run)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted(seed_images.iterdir())[:count]:
        (folder / p.name).write_bytes(p.read_bytes())
    return folder
