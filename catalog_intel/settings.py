"""The run's settings: one pydantic model (packaged defaults <- user TOML file <- explicit
overrides), the run overrides declared once (each one a flow parameter, a CLI flag of
`catalog-intel run` and a dotted config key), and `resolve_settings`, the one way to build a
run's settings: paths made absolute and the environment read there, once, so workers never
read the environment or `~`. Building settings has no side effects.

The settings are plain pydantic, so they serialise to JSON and travel to task workers."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from catalog_intel.errors import ConfigError, HeadError
from catalog_intel.io.filesystem import location
from catalog_intel.schemas import ATTRIBUTE_ORDER, EXPORT_FORMATS, HEAD_FORMAT, UNKNOWN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Strict):
    cache_dir: str
    # A folder from `catalog-intel train-heads`: each head in it sets attributes.<name>.head.
    heads_dir: str = ""
    # fsspec options per protocol ({"s3": {"endpoint_url": ...}}); may hold credentials, so never shown.
    storage_options: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False)
    # Superseded cache parts are deleted this long after compaction replaced them.
    purge_after_s: float = Field(3600.0, ge=0)
    @property
    def cache_path(self):
        """The cache location: a local path or an fsspec URL (a Location, joins with `/`)."""
        return location(self.cache_dir)


class RunnerConfig(_Strict):
    task_runner: Literal["local", "dask"] = "local"
    dask_address: str = ""
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)


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


class LLMExample(_Strict):
    """A worked example sent before each product: the attributes as the prompt shows them, and the answer."""

    enabled: bool = True
    attributes: dict[str, Any] = Field(default_factory=dict)
    answer: dict[str, Any] = Field(default_factory=dict)


class CopyTemplates(_Strict):
    """Structured copy fields composed from the facts, without the LLM, in one language. Each
    template names attribute values ({color}, {garment}, {sleeve}, {neckline}, {pattern}, {fabric},
    {fit}) or facts ({brand}, {material}); a bullet or tag whose values are not all known is left out,
    a title keeps what is known."""

    title: str = "{brand} Women's {sleeve} {garment}, {color} {pattern}"
    #: values left out of the title and the summary ("solid": a plain top says nothing by it)
    title_skip: tuple[str, ...] = ("solid",)
    #: the style summary the copy gate writes where the model's cannot stand (it repeats the
    #: description, or is cut off); English copy names the attributes in the same shape without it
    summary: str = "{color} {pattern} {garment}: {neckline}, {sleeve}, {fabric}, {fit}."
    title_case: bool = True
    bullets: tuple[str, ...] = ("Colour: {color}.", "Sleeves: {sleeve}.", "Neckline: {neckline}.",
                                "Pattern: {pattern}.", "Material: {material}.", "Fit: {fit}.")
    #: the word for a garment of unknown type
    unknown_garment: str = "top"
    #: the bullet that pads a product whose facts fill too few bullets (bullets_min)
    product_bullet: str = "Women's {garment}."
    seo_tags: tuple[str, ...] = ("{color} {garment}", "{pattern} {garment}", "{sleeve} {garment}",
                                 "{neckline} {garment}", "{material} {garment}", "women's {garment}",
                                 "{brand} {garment}", "women's {color} {garment}", "women's fashion")


class LLMConfig(_Strict):
    enabled: bool
    base_url: str
    model: str
    api_key_env: str
    api_key_secret_block: str = ""
    timeout_s: float = Field(gt=0)
    max_attempts: int = Field(ge=1)
    content_attempts: int = Field(2, ge=1)
    format_attempts: int = Field(2, ge=1)
    retry_temperature: float = Field(0.7, ge=0)
    repair_max_removals: int = Field(2, ge=0)
    languages: tuple[str, ...] = ("en",)
    per_product: bool = False
    backoff_initial_s: float = Field(ge=0)
    backoff_max_s: float = Field(ge=0)
    concurrency: int = Field(ge=1)
    requests_per_second: float = Field(gt=0)
    rate_limit_name: str
    describe_batch: int = Field(64, ge=1)
    temperature: float = Field(ge=0)
    sampling: dict[str, float] = Field(default_factory=dict)
    seed: int = -1
    max_tokens: int = Field(gt=0)
    embedded_threads: int = Field(0, ge=0)
    embedded_nice: int = Field(10, ge=0, le=19)
    embedded_parallel: int = Field(2, ge=1)
    embedded_context: int = Field(4096, ge=512)
    embedded_model_path: str = ""
    prompt_version: str
    system_prompt: str
    user_prompt: str
    example: LLMExample = Field(default_factory=LLMExample)
    #: "template": title, tags and bullets from the facts (CopyTemplates); the LLM writes the
    #: description, the style summary and up to two bullets from the note. "llm": it writes the title too.
    title: Literal["template", "llm"] = "template"
    #: the prompt line per field the LLM writes (user_prompt's {fields}), in the answer's order
    field_prompts: dict[str, str] = Field(default_factory=dict)
    templates: CopyTemplates = Field(default_factory=CopyTemplates)
    #: llama.cpp speculative decoding of the embedded server: "" (none) or an n-gram kind
    #: ("ngram_simple", "ngram_map_k", "ngram_mod", "ngram_cache"): drafts from the prompt and the text so far
    embedded_speculative: str = ""
    embedded_draft_max: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _prompt_has_slot(self) -> "LLMConfig":
        if "{attributes}" not in self.user_prompt:
            raise ValueError("llm.user_prompt must contain the placeholder {attributes}")
        return self


class LanguageConfig(_Strict):
    name: str
    templates: CopyTemplates = Field(default_factory=CopyTemplates)
    product: str = ""
    endings: tuple[str, ...] = ()
    words: dict[str, dict[str, tuple[str, ...]]] = Field(default_factory=dict)
    non_top: tuple[str, ...] = ()
    gender_terms: tuple[str, ...] = ()
    styling_words: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _words_listed(self) -> "LanguageConfig":
        empty = [f"{a}.{v}" for a, values in self.words.items() for v, w in values.items() if not w]
        if empty:
            raise ValueError(f"no words given for {', '.join(empty)}")
        return self


class FactsConfig(_Strict):
    file: str = ""
    default_policy: Literal["trust_facts", "trust_model", "flag_only"] = "trust_facts"
    policy: dict[str, Literal["trust_facts", "trust_model", "flag_only"]] = Field(default_factory=dict)
    conflict_confidence: float = Field(0.8, ge=0, le=1)
    free_text: tuple[str, ...] = ()
    synonyms: dict[str, dict[str, str]] = Field(default_factory=dict)

    def policy_for(self, attribute: str) -> str:
        return self.policy.get(attribute, self.default_policy)


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
    bullet_max_words: int = Field(20, ge=1)
    seo_tag_max_words: int = Field(6, ge=1)
    description_max_sentences: int = Field(5, ge=1)


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
    trend_runs: int = Field(ge=2)
    history_keep: int = Field(ge=2)
    alert_min_rejects: int = Field(ge=1)
    alert_abstention_jump: float = Field(gt=0, le=1)


class ExportsConfig(_Strict):
    formats: tuple[str, ...] = ()
    product_url: str = ""
    image_base_url: str = ""
    vendor: str = ""
    product_category: str = ""
    price_column: str = "price"
    currency: str = ""
    availability: Literal["", "in_stock", "out_of_stock", "preorder", "backorder"] = ""
    condition: Literal["", "new", "refurbished", "used"] = ""
    gender: Literal["", "female", "male", "unisex"] = ""
    age_group: Literal["", "newborn", "infant", "toddler", "kids", "adult"] = ""
    publish: bool = False

    @model_validator(mode="after")
    def _known_formats(self) -> "ExportsConfig":
        unknown = [f for f in self.formats if f not in EXPORT_FORMATS]
        if unknown:
            raise ValueError(f"unknown export {unknown}; known: {', '.join(EXPORT_FORMATS)}")
        if self.product_url and "{handle}" not in self.product_url:
            raise ValueError("exports.product_url needs the placeholder {handle}")
        return self


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
    runner: RunnerConfig = RunnerConfig()
    clip: ClipConfig
    llm: LLMConfig
    facts: FactsConfig = FactsConfig()
    color: ColorConfig
    validation: ValidationConfig
    search: SearchConfig
    report: ReportConfig
    exports: ExportsConfig = ExportsConfig()
    languages: dict[str, LanguageConfig] = Field(default_factory=dict)
    attributes: dict[str, AttributeConfig]

    @model_validator(mode="after")
    def _known_attributes(self) -> "Config":
        missing = [a for a in ATTRIBUTE_ORDER if a not in self.attributes]
        if missing:
            raise ValueError(f"attributes missing from the vocabulary: {missing}")
        return self

    @model_validator(mode="after")
    def _languages_have_tables(self) -> "Config":
        """Each copy language has words for every colour, garment type and sleeve value (what
        its checker must read). Words for values outside the vocabulary are ignored."""
        if "en" not in self.llm.languages:
            raise ValueError('llm.languages must include "en": English copy is the catalog\'s own (catalog.csv)')
        for lang in self.llm.languages:
            if lang == "en":
                continue
            if lang not in self.languages:
                raise ValueError(f"llm.languages names '{lang}' without a [languages.{lang}] table")
            words = self.languages[lang].words
            unknown = [a for a in words if a not in self.attributes]
            if unknown:
                raise ValueError(f"languages.{lang}.words: {unknown} are not attributes")
            for attribute in ("color", "garment_type", "sleeve"):
                missing = [v for v in self.attributes[attribute].values if v not in words.get(attribute, {})]
                if missing:
                    raise ValueError(f"languages.{lang}.words.{attribute}: no words for {missing}")
        return self

    def vocabulary_digest(self) -> str:
        """Stable id of the vocabulary + templates (keys the label-text cache)."""
        blob = json.dumps({k: v.model_dump(exclude={"head"}) for k, v in sorted(self.attributes.items())
                           if v.values}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in ("phrases",):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def default_config_dict() -> dict[str, Any]:
    return tomllib.loads(resources.files("catalog_intel").joinpath("defaults.toml").read_text())


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                base: dict[str, Any] | None = None) -> Config:
    """The configuration as written, paths as given: defaults, then `base` (dotted keys; e.g. what
    a run recorded), then the TOML file at `path`, then `overrides` (nested dict, or dotted keys
    such as {"clip.model": "ViT-B-16"}); None values are ignored. A run's settings come from
    `resolve_settings`."""
    return _validated(_config_data(path, overrides, base), path)


def _config_data(path, overrides: dict[str, Any] | None, base: dict[str, Any] | None) -> dict[str, Any]:
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
    return data


def _validated(data: dict[str, Any], path) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration{where}: {problems}") from exc


def export_formats(export: str | list[str] | None) -> list[str] | None:
    """`--export shopify,gmc` (or a list) as a list of names; None keeps the config's."""
    if export is None:
        return None
    names = export.split(",") if isinstance(export, str) else export
    return [n.strip() for n in names if n.strip()]


def _expand_dotted(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


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


def resolve_settings(config_path: str | os.PathLike | None = None, *, base: dict[str, Any] | None = None,
                     keys: dict[str, Any] | None = None, **overrides: Any) -> Config:
    """The run's settings: defaults <- `base` (dotted keys a run recorded) <- file <- the declared
    overrides (OVERRIDES; None = keep the file's) <- `keys` (any dotted key), with every path
    made absolute (CATALOG_INTEL_CACHE and ~ read here, once) and each head of paths.heads_dir
    set as attributes.<name>.head."""
    data = _config_data(config_path, {**overrides_to_keys(overrides), **(keys or {})}, base)
    heads_dir = data.get("paths", {}).get("heads_dir")
    if heads_dir:
        heads = {f"attributes.{name}.head": str(path) for name, path in head_files_in(location(heads_dir)).items()}
        data = _deep_merge(data, _expand_dotted(heads))
    return absolute_paths(_validated(data, config_path))


def absolute_paths(config: Config) -> Config:
    def absolute(path: str) -> str:  # a URL stays a URL
        return str(location(path)) if path else path

    cache = absolute(os.environ.get("CATALOG_INTEL_CACHE", config.paths.cache_dir))
    clip = config.clip.model_copy(update={"checkpoint": absolute(config.clip.checkpoint),
                                          "model_config_path": absolute(config.clip.model_config_path)})
    paths = config.paths.model_copy(update={"cache_dir": cache})
    facts = config.facts.model_copy(update={"file": absolute(config.facts.file)})
    llm = config.llm.model_copy(update={"embedded_model_path": absolute(config.llm.embedded_model_path)})
    return config.model_copy(update={"paths": paths, "clip": clip, "facts": facts, "llm": llm})


def head_files_in(folder: str | os.PathLike) -> dict[str, Path]:
    """attribute -> head JSON file, for every head in a `train-heads` output folder."""
    p = Path(folder)
    if not p.is_dir():
        raise HeadError(f"heads folder not found: {p} (make it with `catalog-intel train-heads --out {p}`)")
    found = {}
    for f in sorted(p.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("format") == HEAD_FORMAT:
            found[doc["attribute"]] = f
    if not found:
        raise HeadError(f"no heads in {p}: expected <attribute>.json files written by `catalog-intel train-heads`")
    return found


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
