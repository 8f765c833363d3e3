"""Marketing copy from any OpenAI-compatible endpoint, caged by a JSON schema.

Requests are deduplicated by attribute set and cached by (attributes, prompt
version, model); each attempt waits for a rate-limit slot first, so retries
respect the limit too; 429 Retry-After is honoured, other transient faults
back off exponentially with jitter."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from catalog_intel.copywriting.grounding.form import norm_text
from catalog_intel.copywriting.grounding.gate import feedback as grounding_feedback
from catalog_intel.copywriting.grounding.notes import NOTE_FACT
from catalog_intel.copywriting.grounding.phrases import STOCK_PRODUCTS, StockPhrases
from catalog_intel.copywriting.grounding.terms import split_sentences
from catalog_intel.io.layout import CacheLayout
from catalog_intel.io.parquet_store import ParquetStore
from catalog_intel.schemas import ATTRIBUTE_ORDER, COPY_COLUMNS, COPY_FRAME_SCHEMA, UNKNOWN
from catalog_intel.settings import CopyTemplates, LLMConfig, ValidationConfig

if TYPE_CHECKING:
    import openai


def _openai():
    """The openai package, imported on first use (0.5 s): a run without copy never needs it."""
    import openai

    return openai

MAX_RETRY_AFTER_S = 120.0
#: servers (base_url, model) that refused response_format json_schema in this process: asked
#: without it from then on (the prompt asks for the JSON, pydantic validates it)
_SCHEMA_REFUSED: dict[tuple[str, str], str] = {}
FEATURE_WORDS = 12  # at most 10 asked for
# Stock phrases named in a prompt to say otherwise: off. Named, they made the 1.5B model loop to
# max_tokens (2 of 2 labels-only products cut off with the line, 0 of 2 without, #20); counted only.
AVOID_MOST = 0
FLUSH_EVERY = 1  # answers take seconds; one small part each costs nothing and a kill loses none
_STORE_SCHEMA = {"copy_key": pl.Utf8, "copy_json": pl.Utf8, "model": pl.Utf8, "prompt_version": pl.Utf8,
                 "created_at": pl.Float64}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def _clean(text: str) -> str:
    """LLM text is untrusted: strip control and bidi characters, squeeze whitespace."""
    return re.sub(r"\s+", " ", _CONTROL.sub("", text)).strip()


class CatalogCopy(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=3, max_length=120)
    bullet_points: list[str] = Field(min_length=1, max_length=6)
    description: str = Field(min_length=10, max_length=1200)
    style_summary: str = Field(min_length=3, max_length=300)
    seo_tags: list[str] = Field(min_length=2, max_length=5)

    @field_validator("title", "description", "style_summary", mode="before")
    @classmethod
    def _clean_text(cls, v):
        return _clean(v) if isinstance(v, str) else v

    @field_validator("title")
    @classmethod
    def _no_label(cls, v):
        # "Shop Name: White Jersey T-Shirt": a small model echoes the prompt's field name
        return re.sub(r"^(?:shop name|product name|title|name)\s*:\s*", "", v, flags=re.IGNORECASE) or v

    @field_validator("bullet_points", "seo_tags", mode="before")
    @classmethod
    def _clean_list(cls, v):
        # Repeats (case, spacing and hyphens ignored) are dropped before the item counts are checked.
        if isinstance(v, list):
            out, seen = [], set()
            for x in v:
                x = _clean(x) if isinstance(x, str) else ""
                key = norm_text(x)
                if x and key not in seen:
                    out.append(x)
                    seen.add(key)
            return out
        return v

    @field_validator("bullet_points")
    @classmethod
    def _bullet_length(cls, v):
        if any(len(b) > 200 for b in v):
            raise ValueError("bullet point longer than 200 characters")
        return v

    @field_validator("seo_tags")
    @classmethod
    def _tags(cls, v):
        tags = [t.lower() for t in v]
        if any(len(t) > 60 for t in tags):
            raise ValueError("SEO tag longer than 60 characters")
        return tags


# The grammar holds the prose to its shape: the summary one sentence, the description exactly two,
# a feature a short phrase. A 1.5B model otherwise writes a third and fourth sentence (up to
# 170 tokens an answer), which costs decoding time and is what the gate then cuts.
_SENTENCE = r'[^.!?"\\\n]'
# The bounds only stop a looping answer: near one, the grammar allows nothing but the full stop
# and the model ends mid-phrase ("...with a pleat at a."; 110 characters for the summary did that).
SUMMARY_PATTERN = rf"^{_SENTENCE}{{8,150}}[.!]$"
DESCRIPTION_PATTERN = rf"^{_SENTENCE}{{8,200}}[.!] {_SENTENCE}{{8,200}}[.!]$"
FEATURE_PATTERN = r'^[^.!?"\\\n]{3,48}$'

#: what the LLM may be asked to write, in the answer's order
_FIELD_SCHEMA = {
    # No maxLength: a grammar stops the string at the cap, mid-word. Lengths are asked
    # for in words and sentences (the prompt) and checked (CatalogCopy, grounding.form_problems).
    # The grammar writes the fields in this order: the style summary before the description,
    # so a small model cannot copy the description into it.
    "title": {"type": "string"},
    "style_summary": {"type": "string", "pattern": SUMMARY_PATTERN},
    "bullet_points": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 6},
    "description": {"type": "string", "pattern": DESCRIPTION_PATTERN},
    "seo_tags": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 5},
    "features": {"type": "array", "items": {"type": "string", "pattern": FEATURE_PATTERN}, "minItems": 1, "maxItems": 2},
}


def response_schema(fields: tuple[str, ...] = COPY_COLUMNS) -> dict:
    """JSON schema sent as response_format (strict: every field required, nothing extra)."""
    order = [f for f in _FIELD_SCHEMA if f in fields]
    return {"type": "object", "properties": {f: _FIELD_SCHEMA[f] for f in order}, "required": order,
            "additionalProperties": False}


def llm_fields(attributes: dict, llm: LLMConfig) -> tuple[str, ...]:
    """The fields the LLM writes for this product: every copy field with a prompt of old
    (no llm.field_prompts), else the description, style summary, note features (a product with
    a note) and the title (llm.title = "llm"); the facts' templates write the rest."""
    if not llm.field_prompts:
        return COPY_COLUMNS
    has_note = bool((attributes.get("facts") or {}).get(NOTE_FACT))
    wanted = ("title",) * (llm.title == "llm") + ("style_summary", "description") + ("features",) * has_note
    return tuple(f for f in _FIELD_SCHEMA if f in wanted)


class CopyCheck(Protocol):
    """The copy gate (grounding.CopyGate): problems of fresh copy, and its repair at the last attempt."""

    def problems(self, attributes: dict, copy: dict) -> list: ...

    def repair(self, attributes: dict, copy: dict, problems: list) -> tuple[dict | None, list[str]]: ...


class InvalidCopy(Exception):
    """The server answered, but not with copy that fits the schema. `kind` says why (CallStats
    counts retries by it): "json", "schema", "cut_off" or "content" (copy with problems).
    `final`: not asked again (the product's answers that broke the format reached llm.format_attempts)."""

    def __init__(self, message: str, kind: str = "schema", final: bool = False):
        super().__init__(message)
        self.kind, self.final = kind, final


class RejectedCopy(Exception):
    """Copy whose problems could not be repaired: too little would remain (not retried)."""


UNKNOWN_WORDING = {"color": "colour", "neckline": "neckline", "sleeve": "sleeves or sleeve length",
                   "pattern": "pattern", "fabric": "fabric or material", "fit": "fit", "garment_type": "garment type"}


def prompt_attributes(row: dict) -> dict:
    """The attributes the LLM may use: known values only ("unknown" is never shown), the
    catalog's free-text facts (``facts_json``: material, brand, care, sizes...), plus the one
    fact true of every product (so a missing garment type is not filled in)."""
    known = {a: row[a] for a in ATTRIBUTE_ORDER if row.get(a) not in (None, "", UNKNOWN)}
    facts = json.loads(row["facts_json"]) if row.get("facts_json") else {}
    # Small models fill gaps ("long sleeves", "cotton"); naming the gaps curbs that (measured
    # with `catalog-intel copy-quality`: ungrounded claims).
    # a "material" or "composition" fact gives the fabric: telling the model not to mention it confused it
    given = {*facts, *(["fabric"] if any(w in k for k in facts for w in ("material", "composition")) else [])}
    unknown = [UNKNOWN_WORDING[a] for a in ATTRIBUTE_ORDER if a not in known and a in row and a not in given]
    return {"product": "women's top", **known, **({"facts": facts} if facts else {}),
            **({"do_not_mention": unknown} if unknown else {})}


#: CopyTemplates fields added after copy caches were first written: they count in a copy's key only when set
#: away from their defaults, so adding one keeps every cached copy (a night's copy is hours of LLM time).
TEMPLATE_FIELDS_ADDED = ("summary", "unknown_garment")


def templates_key(templates: CopyTemplates) -> dict:
    """The templates as a copy's key sees them (TEMPLATE_FIELDS_ADDED left out while at their defaults)."""
    default = CopyTemplates()
    return templates.model_dump(exclude={f for f in TEMPLATE_FIELDS_ADDED
                                         if getattr(templates, f) == getattr(default, f)})


def copy_key(attributes: dict, llm: LLMConfig) -> str:
    blob = json.dumps(
        {"attributes": attributes, "prompt_version": llm.prompt_version, "model": llm.model,
         "system": llm.system_prompt, "user": llm.user_prompt, "example": llm.example.model_dump(),
         "sampling": llm.sampling, "fields": llm.field_prompts, "title": llm.title,
         "templates": templates_key(llm.templates)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def prompts_and_keys(attributes: pl.DataFrame, llm: LLMConfig) -> tuple[dict[str, dict], dict[str, str]]:
    """attributes[sha256, <attributes>, facts_json?] -> ({sha: prompt attributes}, {sha: copy key}).
    With llm.per_product each product gets its own copy: the sha salts the key, the prompt is the same."""
    cols = [c for c in (*ATTRIBUTE_ORDER, "facts_json") if c in attributes.columns]
    prompts = {r["sha256"]: prompt_attributes(r) for r in attributes.select(["sha256", *cols]).iter_rows(named=True)}
    keys = {sha: copy_key({**p, "_product": sha} if llm.per_product else p, llm) for sha, p in prompts.items()}
    return prompts, keys


def build_messages(attributes: dict, llm: LLMConfig, avoid: tuple[str, ...] = ()) -> list[dict]:
    """System prompt, the worked example (llm.example, when set), then the product; `avoid`:
    stock phrases other products' copy already has, asked after the fields.

    Everything before the product's attributes is the same bytes for every product (the field
    lines name every field the LLM may write; the grammar asks each product for its own), so
    llama.cpp's prompt cache evaluates only the product's part: a product with a note no longer
    evicts the prefix of one without (measured: bench/copy_cost.py, prompt_evaluated)."""
    every = llm_fields({"facts": {NOTE_FACT: "-"}}, llm)
    fields = "\n".join(llm.field_prompts[f] for f in every if f in llm.field_prompts)

    def ask(attrs: dict, extra: str = "") -> dict:
        return {"role": "user", "content": llm.user_prompt.format(
            attributes=json.dumps(attrs, sort_keys=True, ensure_ascii=False), fields=fields + extra)}

    example = llm.example
    shown = [ask(example.attributes), {"role": "assistant", "content": json.dumps(example.answer, ensure_ascii=False)}] \
        if example.enabled and example.attributes and example.answer else []
    extra = ("\n- Other products' copy already says these; say it otherwise: "
             + "; ".join(f'"{p}"' for p in avoid)) if avoid else ""
    return [{"role": "system", "content": llm.system_prompt}, *shown, ask(attributes, extra)]


def with_structured(data: dict, attributes: dict, llm: LLMConfig, limits: ValidationConfig | None,
                    fields: tuple[str, ...] | None = None) -> dict:
    """The LLM's fields plus the ones the templates compose from the facts: note features
    first, then the facts' bullets (at most bullets_max); a title the LLM did not write."""
    from catalog_intel.copywriting import templates

    fixed = templates.structured(attributes, llm.templates, limits.seo_tags_max if limits else 5)
    # a feature is a short point: a whole sentence (the model copies the description) is left out
    features = [x for x in data.pop("features", None) or [] if isinstance(x, str) and len(x.split()) <= FEATURE_WORDS][:2]
    most = limits.bullets_max if limits else 6
    fixed["bullet_points"] = (features + fixed["bullet_points"])[:most]
    if len(fixed["bullet_points"]) < (limits.bullets_min if limits else 1):
        fixed["bullet_points"].append(templates.product_bullet(attributes, llm.templates))
    asked = set(fields or llm_fields(attributes, llm)) - {"features"}
    return {**fixed, **{k: v for k, v in data.items() if k in asked}}


def parse_copy(content: str | None, limits: ValidationConfig | None = None,
               structured: Callable[[dict], dict] | None = None) -> CatalogCopy:
    """The answer as copy; `structured` adds the fields the templates write (with_structured)."""
    if not content or not content.strip():
        raise InvalidCopy("empty response", "json")
    text = content.strip()
    if not text.startswith("{") and "{" in text:  # no response_format: the model may wrap it in prose or ```json
        text = text[text.index("{"):text.rindex("}") + 1] if "}" in text else text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidCopy(f"response is not JSON ({exc.msg} at char {exc.pos})", "json") from None
    if not isinstance(data, dict):
        raise InvalidCopy("response JSON is not an object", "json")
    if structured is not None:
        data = structured(data)
    try:
        copy = CatalogCopy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:4])
        raise InvalidCopy(f"response does not match the schema: {problems}") from None
    if limits and len(copy.title.split()) > limits.title_max_words:
        raise InvalidCopy(f"title has {len(copy.title.split())} words, over {limits.title_max_words}")
    return copy


@dataclass
class CallStats:
    """Counters shared by the worker threads of one describe step."""

    calls: int = 0
    retries: int = 0
    failed: int = 0
    cached: int = 0
    schema_fallbacks: int = 0  # requests sent again without response_format (the server refused it)
    completion_tokens: int = 0  # generated by the server, every answer (the copy's cost)
    prompt_tokens: int = 0
    first_answers: int = 0  # products' first answers
    first_clean: int = 0  # ... that had no problem at all (published as they came)
    #: why answers were not published as they came: each checked answer counts each of its problem
    #: kinds once ("fit", "season", "summary_repeats"...; claims.CLAIM_KINDS, grounding.FORM_KINDS)
    problem_kinds: Counter = field(default_factory=Counter)
    #: why each retry was asked: "content" (problems fed back), "json", "schema", "cut_off", "server"
    retry_reasons: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def count(self, counter: str, keys) -> None:
        with self.lock:
            getattr(self, counter).update(keys)


def _transient(exc: BaseException) -> bool:
    openai = _openai()
    if isinstance(exc, InvalidCopy):
        return not exc.final
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)):
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500 or exc.status_code in (408, 409))


def _retry_reason(state: RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome else None
    return exc.kind if isinstance(exc, InvalidCopy) else "server"


def _retry_after_seconds(exc: BaseException | None) -> float | None:
    if isinstance(exc, _openai().APIStatusError) and exc.response is not None:
        value = exc.response.headers.get("retry-after")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None
    return None


def _wait_strategy(llm: LLMConfig):
    backoff = wait_exponential_jitter(multiplier=llm.backoff_initial_s, max=llm.backoff_max_s, jitter=llm.backoff_initial_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        told = _retry_after_seconds(exc)
        # Honour the server's Retry-After (it knows its load), up to a sanity cap.
        return min(told, MAX_RETRY_AFTER_S) if told is not None else backoff(state)

    return wait


def api_key(llm: LLMConfig) -> str:
    """The key from the environment; local servers need none. (A Prefect Secret block,
    llm.api_key_secret_block, is read by the orchestration, which passes its client in.)"""
    return os.environ.get(llm.api_key_env) or "not-needed"


def make_client(llm: LLMConfig, key: str | None = None) -> openai.OpenAI:
    # Our own retry loop (not the SDK's) so every attempt passes the rate limit.
    return _openai().OpenAI(
        base_url=llm.base_url,
        api_key=key or api_key(llm),
        timeout=llm.timeout_s,
        max_retries=0,
    )


def request_copy(
    client: openai.OpenAI,
    attributes: dict,
    llm: LLMConfig,
    limits: ValidationConfig | None,
    throttle: Callable[[], None],
    stats: CallStats,
    check: CopyCheck | None = None,
    seed_offset: int = 0,
    avoid: tuple[str, ...] = (),
) -> tuple[CatalogCopy, list[str]]:
    """One product's copy and its warnings, retried on transient faults; raises the last error.

    `check.problems(attributes, copy)` lists what is wrong with schema-valid copy (claims
    nothing backs, contradictions, copy that is not well formed). At most
    `llm.repair_max_removals` problems are fixed in place by `check.repair`, without another
    request; more are fed back for up to `llm.content_attempts` answers, and the last is
    repaired. What repair removed is listed in the warnings (the row is flagged for review);
    only copy with too little left is rejected."""
    base = build_messages(attributes, llm, avoid)
    fields = llm_fields(attributes, llm)
    structured = None if fields == COPY_COLUMNS else (lambda data: with_structured(data, attributes, llm, limits, fields))
    feedback: list[dict] = []
    attempts = content_tries = answers = broken = 0

    def off_format(exc: InvalidCopy) -> InvalidCopy:
        # A cut-off or malformed answer is asked again at most llm.format_attempts times in all:
        # a looping model would otherwise burn max_tokens on every one of max_attempts.
        nonlocal broken
        broken += 1
        exc.final = broken >= llm.format_attempts
        return exc

    def attempt() -> tuple[CatalogCopy, list[str]]:
        nonlocal attempts, content_tries, answers
        attempts += 1
        throttle()
        stats.add(calls=1)
        # A seed per attempt: the same product gets the same copy on any machine running
        # the same model, while a retry still gets a different sample.
        seed = None if llm.seed < 0 else llm.seed + seed_offset + attempts
        # a retry at the first answer's temperature gave the same answer word for word (#20)
        temperature = llm.temperature if not feedback else max(llm.temperature, llm.retry_temperature)
        reply = _create(client, llm, stats, throttle, fields, messages=base + feedback, temperature=temperature,
                        max_tokens=llm.max_tokens, seed=seed, **({"extra_body": llm.sampling} if llm.sampling else {}))
        usage = getattr(reply, "usage", None)
        if usage is not None:
            stats.add(completion_tokens=usage.completion_tokens or 0, prompt_tokens=usage.prompt_tokens or 0)
        choice = reply.choices[0] if reply.choices else None
        answers += 1
        stats.add(first_answers=int(answers == 1))
        if choice is not None and choice.finish_reason == "length":
            raise off_format(InvalidCopy(f"response cut off at max_tokens {llm.max_tokens} "
                                         f"(answer {broken + 1} of at most {llm.format_attempts} off the format; "
                                         "raise llm.max_tokens if answers are this long)", "cut_off"))
        try:
            copy = parse_copy(choice.message.content if choice else None, limits, structured)
        except InvalidCopy as exc:
            raise off_format(exc) from None
        problems = check.problems(attributes, copy.model_dump()) if check else []
        stats.count("problem_kinds", {p.kind for p in problems})
        stats.add(first_clean=int(answers == 1 and not problems))
        if not problems:
            return copy, []
        content_tries += 1
        repaired, removed = check.repair(attributes, copy.model_dump(), problems)
        small = repaired is not None and len(problems) <= llm.repair_max_removals
        if (not small or _thinner(copy.description, repaired)) and content_tries < llm.content_attempts \
                and attempts < llm.max_attempts:
            feedback[:] = [{"role": "assistant", "content": choice.message.content},
                           {"role": "user", "content": grounding_feedback(problems)}]
            raise InvalidCopy("copy has problems: " + "; ".join(p.reason for p in problems), "content")
        if repaired is None:
            raise RejectedCopy("copy rejected, " + removed[-1] + " after removing: "
                               + "; ".join(p.reason for p in problems))
        try:
            return CatalogCopy.model_validate(repaired), removed
        except ValidationError as exc:
            raise RejectedCopy(f"copy rejected: repaired copy breaks the schema ({exc.errors()[0]['msg']})") from None

    retrying = Retrying(
        stop=stop_after_attempt(llm.max_attempts),
        wait=_wait_strategy(llm),
        retry=retry_if_exception(_transient),
        before_sleep=lambda state: (stats.add(retries=1), stats.count("retry_reasons", [_retry_reason(state)])),
        reraise=True,
    )
    return retrying(attempt)


DESCRIPTION_SENTENCES = 2  # what the prompt and the grammar ask for


def _thinner(description: str, repaired: dict | None) -> bool:
    """The repair would leave the description with fewer sentences than asked for (and than it had):
    worth one more answer, where removing a claim from a summary or a bullet is not."""
    if repaired is None:
        return False
    return len(split_sentences(repaired["description"])) < min(DESCRIPTION_SENTENCES, len(split_sentences(description)))


_NAMES_FORMAT = re.compile(r"response[_ ]?format|json[_ ]?schema|structured output|grammar", re.IGNORECASE)


def _refuses_format(exc) -> bool:
    """The server's error says it cannot take response_format (not some other bad request)."""
    if exc.status_code not in (400, 415, 422, 501):
        return False
    return bool(_NAMES_FORMAT.search(f"{exc.message} {json.dumps(exc.body, default=str) if exc.body else ''}"))


def _create(client: openai.OpenAI, llm: LLMConfig, stats: CallStats, throttle: Callable[[], None],
            fields: tuple[str, ...] = COPY_COLUMNS, **kwargs):
    """One chat completion, with response_format json_schema unless this server refused it: a
    refusal (an error that names the response format) is remembered for the run and the request
    sent again without it, through the same rate limit."""
    server = (str(client.base_url), llm.model)
    if server not in _SCHEMA_REFUSED:
        fmt = {"type": "json_schema", "json_schema": {"name": "catalog_copy", "strict": True, "schema": response_schema(fields)}}
        try:
            return client.chat.completions.create(model=llm.model, response_format=fmt, **kwargs)
        except _openai().APIStatusError as exc:
            if not _refuses_format(exc):
                raise
            _SCHEMA_REFUSED[server] = f"HTTP {exc.status_code}: {str(exc.message)[:120]}"
        throttle()
        stats.add(calls=1, schema_fallbacks=1)
    return client.chat.completions.create(model=llm.model, **kwargs)


def schema_refusals() -> dict[tuple[str, str], str]:
    """The servers that refused response_format json_schema in this process, and how."""
    return dict(_SCHEMA_REFUSED)


def copy_store(cache_root: Path) -> ParquetStore:
    return ParquetStore(CacheLayout(cache_root).llm_copy, key="copy_key")


def _error_text(exc: BaseException) -> str:
    openai = _openai()
    if isinstance(exc, openai.APIStatusError):
        return f"LLM server answered HTTP {exc.status_code}: {str(exc.message)[:200]}"
    if isinstance(exc, openai.APITimeoutError):
        return "LLM request timed out (raise llm.timeout_s or check the server)"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the LLM server ({exc.__cause__ or exc}); is it running at the configured llm.base_url?"
    return str(exc)[:300]


def describe(
    attributes: pl.DataFrame,
    llm: LLMConfig,
    limits: ValidationConfig,
    cache_root: Path,
    throttle: Callable[[], None] = lambda: None,
    progress=None,
    client: openai.OpenAI | None = None,
    check: CopyCheck | None = None,
) -> tuple[pl.DataFrame, CallStats]:
    """attributes[sha256, <attribute columns>] -> [sha256, copy_key, title,
    bullet_points, description, style_summary, seo_tags, copy_error].
    Identical attribute sets cost one request; cached copy costs none."""
    stats = CallStats()
    prompts, keys = prompts_and_keys(attributes, llm)
    by_key = {k: prompts[sha] for sha, k in keys.items()}

    store = copy_store(cache_root)
    cached = store.lookup(by_key.keys())
    results: dict[str, dict] = {}
    if cached is not None:
        for rec in cached.iter_rows(named=True):
            results[rec["copy_key"]] = json.loads(rec["copy_json"])
    stats.add(cached=len(results))
    missing = [k for k in by_key if k not in results]
    errors: dict[str, str] = {}

    if missing:
        client = client or make_client(llm)
        phrases, phrases_lock = StockPhrases(), threading.Lock()

        def work(key: str) -> tuple[str, dict | None, str | None]:
            # Keys are distinct across the run (the flow describes each attribute set once),
            # so no two requests of a run ask for the same copy.
            try:
                # per-product copy: same prompt, another sample per product
                offset = int(key[:6], 16) if llm.per_product else 0
                with phrases_lock:
                    avoid = phrases.frequent(STOCK_PRODUCTS - 1, AVOID_MOST)
                copy, warnings = request_copy(client, by_key[key], llm, limits, throttle, stats, check, offset, avoid)
                with phrases_lock:
                    phrases.add(key, {**copy.model_dump(), "facts": json.dumps(by_key[key], ensure_ascii=False)})
                return key, {**copy.model_dump(), "warnings": warnings}, None
            except (_openai().APIError, InvalidCopy, RejectedCopy) as exc:  # the row is rejected, the run goes on
                stats.add(failed=1)
                return key, None, _error_text(exc)

        pending: list[dict] = []
        with ThreadPoolExecutor(max_workers=llm.concurrency, thread_name_prefix="llm") as pool:
            for future in as_completed([pool.submit(work, k) for k in missing]):
                key, data, error = future.result()
                if data is None:
                    errors[key] = error
                else:
                    results[key] = data
                    pending.append({"copy_key": key, "copy_json": json.dumps(data), "model": llm.model,
                                    "prompt_version": llm.prompt_version, "created_at": time.time()})
                if len(pending) >= FLUSH_EVERY:  # a killed run loses at most a few answers
                    store.append(pl.DataFrame(pending, schema=_STORE_SCHEMA))
                    pending = []
                if progress is not None:
                    progress.update(1)
        store.append(pl.DataFrame(pending, schema=_STORE_SCHEMA))

    out = []
    for sha, key in keys.items():
        data = results.get(key)
        out.append({
            "sha256": sha, "copy_key": key,
            "title": data["title"] if data else None,
            "bullet_points": data["bullet_points"] if data else None,
            "description": data["description"] if data else None,
            "style_summary": data["style_summary"] if data else None,
            "seo_tags": data["seo_tags"] if data else None,
            "copy_warnings": data.get("warnings", []) if data else None,
            "copy_error": None if data else errors.get(key, "no copy produced"),
        })
    return pl.DataFrame(out, schema=COPY_FRAME_SCHEMA), stats


