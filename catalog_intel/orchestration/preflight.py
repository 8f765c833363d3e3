"""The one pre-flight: what must hold before any work starts. The CLI runs it before it starts
Prefect's server (a missing model fails in a second, not after the server's start-up); the flow
runs it for a deployment, and finds the CLI's result when the CLI ran it in this process."""

from __future__ import annotations

from typing import Callable

from catalog_intel.copywriting.llm_service import uses_embedded
from catalog_intel.inference.clip_model import ensure_weights, model_id, resolve_weights
from catalog_intel.inference.heads import configured_heads
from catalog_intel.orchestration.runners import check_runner
from catalog_intel.pipeline.review_edits import load_plan
from catalog_intel.settings import Config

_passed: dict[tuple[str, str], tuple[str, str | None]] = {}  # (settings, OUT) -> (CLIP model id, runner note)


def preflight(settings: Config, out_dir: str, *, download: bool = False, offline: bool = False,
              warn: Callable[[str], object] = print) -> str:
    """Weights here (fetched first with `download`, unless offline), a task runner that can work,
    heads trained for this CLIP model, a readable facts or edits file -> the CLIP model id."""
    key = (settings.model_dump_json(), str(out_dir))
    if key not in _passed:
        cache = settings.paths.cache_path
        if download:
            ensure_weights(settings.clip, cache, offline)
        else:
            resolve_weights(settings.clip, cache)
        note = check_runner(settings, uses_embedded(settings))
        clip_id = model_id(settings.clip, cache)
        configured_heads(settings.attributes, clip_id)  # a head trained for another CLIP model stops the run
        if settings.facts.file:
            load_plan(settings.facts.file, out_dir)  # a bad facts or edits file fails before any work
        _passed[key] = (clip_id, note)
    clip_id, note = _passed[key]
    if note:
        warn(note)
    return clip_id
