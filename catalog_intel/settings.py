"""The run overrides, declared once: each one is a flow parameter, a CLI flag of
`catalog-intel run` and a dotted config key (precedence: defaults, --config
file, then these). `resolve_settings` turns them into the run's Config once, in
the flow, with absolute paths, so workers never read the environment or `~`."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from catalog_intel.config import Config, export_formats, load_config
from catalog_intel.io.storage import location

TASK_RUNNERS = ("local", "dask")


@dataclass(frozen=True)
class Override:
    name: str          # flow parameter; the CLI flag is --name-with-dashes
    key: str           # dotted config key it sets
    type: type
    help: str
    choices: tuple[str, ...] = ()
    invert: bool = False  # a `--no-x` switch: True sets the key to False
    parse: Callable[[Any], Any] | None = None  # flag text -> config value (e.g. a comma-separated list)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def value(self, given: Any) -> Any:
        """The config value for a given parameter value (None = keep the file's)."""
        if self.invert:
            return False if given else None
        return self.parse(given) if self.parse is not None and given is not None else given


OVERRIDES: tuple[Override, ...] = (
    Override("clip_model", "clip.model", str, "open_clip architecture, e.g. ViT-B-32"),
    Override("clip_pretrained", "clip.pretrained", str, "open_clip pretrained tag, e.g. laion2b_s34b_b79k"),
    Override("clip_checkpoint", "clip.checkpoint", str, "local open_clip weights file (replaces the pretrained tag)"),
    Override("llm_base_url", "llm.base_url", str, "OpenAI-compatible endpoint, e.g. http://127.0.0.1:1234/v1 "
             "(default: an embedded llama.cpp server started for the run)"),
    Override("llm_model", "llm.model", str, "model name to request from the endpoint"),
    Override("no_llm", "llm.enabled", bool, "attributes only; copy columns stay empty", invert=True),
    Override("cache_dir", "paths.cache_dir", str, "cache folder or URL for embeddings and copy, shareable "
             "between runs (default ~/.cache/catalog-intel)"),
    Override("shard_size", "run.shard_size", int, "images per shard, the unit of work a task runner distributes"),
    Override("color_policy", "color.policy", str, "colour from CLIP, from the garment's pixels, or both "
             "(default: config color.policy)", choices=("clip", "pixels", "ensemble")),
    Override("facts", "facts.file", str, "CSV/Parquet of catalog facts keyed by image (or product_id): attribute "
             "columns (color, sleeve, ...), free-text facts (material, brand, care, sizes) and the review report's "
             "edits (copy columns, review_status); blank = no fact"),
    Override("export", "exports.formats", str, "shop files into OUT/exports/, comma-separated: shopify,gmc,jsonl,pdp "
             "(default: config exports.formats)", parse=export_formats),
    Override("heads", "paths.heads_dir", str, "folder of attribute heads from `catalog-intel train-heads`: used where "
             "one exists, zero-shot elsewhere (config: attributes.<name>.head)"),
    Override("task_runner", "runner.task_runner", str, "where the shard tasks run: in this process (local) or on "
             "a Dask cluster (dask)", choices=TASK_RUNNERS),
    Override("dask_address", "runner.dask_address", str, "scheduler of an existing Dask cluster, e.g. "
             "tcp://10.0.0.5:8786 (with --task-runner dask; default: start a local cluster)"),
    Override("workers", "runner.workers", int, "worker processes of the local Dask cluster started when "
             "--task-runner dask has no --dask-address"),
)


def overrides_to_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """{parameter name: value} -> {dotted config key: value}; unknown names are an error."""
    by_name = {o.name: o for o in OVERRIDES}
    unknown = set(values) - set(by_name)
    if unknown:
        raise TypeError(f"unknown run override(s): {sorted(unknown)}; known: {sorted(by_name)}")
    return {by_name[n].key: by_name[n].value(v) for n, v in values.items()}


def resolve_settings(config_path: str | None = None, **overrides: Any) -> Config:
    """The run's Config: defaults <- file <- overrides, with every path made absolute
    (CATALOG_INTEL_CACHE and ~ read here, once)."""
    keys = overrides_to_keys(overrides)
    config = load_config(config_path, keys)
    if config.paths.heads_dir:  # each head in the folder sets attributes.<name>.head
        from catalog_intel.inference.heads import head_files_in

        heads = {f"attributes.{name}.head": str(path) for name, path in head_files_in(location(config.paths.heads_dir)).items()}
        config = load_config(config_path, {**keys, **heads})
    return absolute_paths(config)


def absolute_paths(config: Config) -> Config:
    def absolute(path: str) -> str:  # a URL stays a URL
        return str(location(path)) if path else path

    cache = absolute(os.environ.get("CATALOG_INTEL_CACHE", config.paths.cache_dir))
    clip = config.clip.model_copy(update={"checkpoint": absolute(config.clip.checkpoint),
                                          "model_config_path": absolute(config.clip.model_config_path)})
    paths = config.paths.model_copy(update={"cache_dir": cache, "resolved": True})
    facts = config.facts.model_copy(update={"file": absolute(config.facts.file)})
    llm = config.llm.model_copy(update={"embedded_model_path": absolute(config.llm.embedded_model_path)})
    return config.model_copy(update={"paths": paths, "clip": clip, "facts": facts, "llm": llm})


def with_override_parameters(fn: Callable) -> Callable:
    """Give `fn(source, out_dir, config_path=None, **overrides)` the declared overrides as
    keyword parameters in its signature (what Prefect reads for flow parameters)."""
    sig = inspect.signature(fn)
    fixed = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=False if o.type is bool else None,
                               annotation=_annotation(o)) for o in OVERRIDES]
    fn.__signature__ = sig.replace(parameters=fixed + extra)
    fn.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != "overrides"},
                          **{p.name: p.annotation for p in extra}}
    return fn


def _annotation(o: Override) -> Any:
    if o.type is bool:
        return bool
    return (Literal[o.choices] if o.choices else o.type) | None  # choices: a drop-down in the Prefect UI


def add_override_flags(parser) -> None:
    """The declared overrides as argparse flags (dest = the parameter name)."""
    for o in OVERRIDES:
        if o.type is bool:
            parser.add_argument(o.flag, dest=o.name, action="store_true", help=o.help)
        else:
            parser.add_argument(o.flag, dest=o.name, type=o.type, choices=o.choices or None, help=o.help)


def overrides_from_args(args) -> dict[str, Any]:
    return {o.name: getattr(args, o.name) for o in OVERRIDES}
