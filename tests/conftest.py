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
