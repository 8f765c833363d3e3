"""One configuration: packaged defaults <- user TOML file <- explicit overrides.

The resolved config is a plain pydantic model, so it serialises to JSON and
travels to task workers (local processes today, Dask/Ray workers later)."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

UNKNOWN = "unknown"
# Attribute columns in the order of the original tool's CSV, then the additions.
ATTRIBUTE_ORDER = ("color", "neckline", "sleeve", "pattern", "fabric", "fit", "garment_type")


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message says which key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Strict):
    cache_dir: str

    @property
    def cache_path(self) -> Path:
        return Path(os.path.expanduser(os.environ.get("CATALOG_INTEL_CACHE", self.cache_dir)))


class RunConfig(_Strict):
    shard_size: int = Field(gt=0)
    image_extensions: tuple[str, ...]
    max_image_pixels: int = Field(gt=0)
    max_reject_share: float = Field(ge=0, le=1)
    hash_cache: bool = True


class ClipConfig(_Strict):
    model: str
    pretrained: str
    checkpoint: str = ""
    model_config_path: str = Field("", alias="model_config")
    device: str = "auto"
    batch_size: int = Field(gt=0)
    decode_workers: int = Field(ge=0)
    prefetch_batches: int = Field(2, ge=1)
    torch_threads: int = Field(0, ge=0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gpu_decode: Literal["auto", "on", "off"] = "auto"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LLMConfig(_Strict):
    enabled: bool
    base_url: str
    model: str
    api_key_env: str
    api_key_secret_block: str = ""
    timeout_s: float = Field(gt=0)
    max_attempts: int = Field(ge=1)
    backoff_initial_s: float = Field(ge=0)
    backoff_max_s: float = Field(ge=0)
    concurrency: int = Field(ge=1)
    requests_per_second: float = Field(gt=0)
    rate_limit_name: str
    temperature: float = Field(ge=0)
    seed: int = -1
    max_tokens: int = Field(gt=0)
    embedded_threads: int = Field(0, ge=0)
    embedded_parallel: int = Field(2, ge=1)
    embedded_context: int = Field(4096, ge=512)
    prompt_version: str
    system_prompt: str
    user_prompt: str

    @model_validator(mode="after")
    def _prompt_has_slot(self) -> "LLMConfig":
        if "{attributes}" not in self.user_prompt:
            raise ValueError("llm.user_prompt must contain the placeholder {attributes}")
        return self


class ColorConfig(_Strict):
    policy: Literal["clip", "pixels", "ensemble"]
    pixel_min_confidence: float = Field(ge=0, le=1)
    ensemble_pixel_trust: float = Field(ge=0, le=1)


class ValidationConfig(_Strict):
    title_max_words: int
    bullets_min: int
    bullets_max: int
    seo_tags_min: int
    seo_tags_max: int


class SearchConfig(_Strict):
    top_k: int = Field(ge=1)
    exact_max: int = Field(ge=0)
    hnsw_m: int = Field(ge=4)
    hnsw_ef_construction: int = Field(ge=8)
    hnsw_ef_search: int = Field(ge=8)
    group_threshold: float = Field(gt=0, le=1)
    group_neighbors: int = Field(ge=1)
    max_retired_share: float = Field(ge=0, le=1)


class ReportConfig(_Strict):
    max_cards: int = Field(ge=1)
    thumb_size: int = Field(ge=32, le=1024)
    low_confidence_margin: float = Field(ge=0, le=1)


class AttributeConfig(_Strict):
    # An attribute with a `head` (a classifier trained by `catalog-intel train-heads`) takes its
    # values from the head; one that zero-shot does not know may then leave out values and templates.
    values: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    phrases: dict[str, str] = Field(default_factory=dict)
    min_confidence: float = Field(0.0, ge=0, le=1)
    head: str = ""

    @model_validator(mode="before")
    @classmethod
    def _zero_shot_needs_threshold(cls, data):
        if isinstance(data, dict) and not data.get("head") and "min_confidence" not in data:
            raise ValueError("min_confidence is required (or give a trained head)")
        return data

    @model_validator(mode="after")
    def _check(self) -> "AttributeConfig":
        if self.head and not self.values and not self.templates:
            return self  # learnt only: the head file holds its classes
        if len(self.values) < 2:
            raise ValueError("an attribute needs at least two values")
        if len(set(self.values)) != len(self.values):
            raise ValueError("attribute values must be unique")
        if UNKNOWN in self.values:
            raise ValueError(f"'{UNKNOWN}' is reserved for abstentions")
        if not all("{}" in t for t in self.templates):
            raise ValueError("every template needs a '{}' placeholder")
        return self

    def phrase(self, value: str) -> str:
        return self.phrases.get(value, value)


class Config(_Strict):
    paths: PathsConfig
    run: RunConfig
    clip: ClipConfig
    llm: LLMConfig
    color: ColorConfig
    validation: ValidationConfig
    search: SearchConfig
    report: ReportConfig
    attributes: dict[str, AttributeConfig]

    @model_validator(mode="after")
    def _known_attributes(self) -> "Config":
        missing = [a for a in ATTRIBUTE_ORDER if a not in self.attributes]
        if missing:
            raise ValueError(f"attributes missing from the vocabulary: {missing}")
        return self

    def vocabulary_digest(self) -> str:
        """Stable id of the vocabulary + templates (keys the label-text cache)."""
        blob = json.dumps({k: v.model_dump(exclude={"head"}) for k, v in sorted(self.attributes.items())
                           if v.values}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "phrases":
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def default_config_dict() -> dict[str, Any]:
    return tomllib.loads(resources.files("catalog_intel").joinpath("defaults.toml").read_text())


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                base: dict[str, Any] | None = None) -> Config:
    """Defaults, then `base` (dotted keys; e.g. what a run recorded), then the TOML file
    at `path`, then `overrides` (nested dict, or dotted keys such as
    {"clip.model": "ViT-B-16"}); None values are ignored."""
    data = default_config_dict()
    if base:
        data = _deep_merge(data, _expand_dotted({k: v for k, v in base.items() if v is not None}))
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = _deep_merge(data, tomllib.loads(p.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    if overrides:
        data = _deep_merge(data, _expand_dotted({k: v for k, v in overrides.items() if v is not None}))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration{where}: {problems}") from exc


def resolve_config(
    config_path: str | None = None,
    clip_model: str | None = None,
    clip_pretrained: str | None = None,
    clip_checkpoint: str | None = None,
    llm_base_url: str | None = None,
    llm_model: str | None = None,
    no_llm: bool = False,
    cache_dir: str | None = None,
    shard_size: int | None = None,
    color_policy: str | None = None,
    heads: str | None = None,
) -> Config:
    """A run's config: the file, then explicit parameters (None = keep the file's value).
    `heads`: a folder written by `catalog-intel train-heads`; sets attributes.<name>.head per head in it."""
    head_files: dict[str, Any] = {}
    if heads:
        from .heads import head_files_in

        head_files = {f"attributes.{name}.head": str(path) for name, path in head_files_in(heads).items()}
    return load_config(config_path, {
        "clip.model": clip_model, "clip.pretrained": clip_pretrained, "clip.checkpoint": clip_checkpoint,
        "llm.base_url": llm_base_url, "llm.model": llm_model, "llm.enabled": False if no_llm else None,
        "paths.cache_dir": cache_dir, "run.shard_size": shard_size, "color.policy": color_policy, **head_files,
    })


def _expand_dotted(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested
