from __future__ import annotations

import contextvars
import math
import time
from collections import Counter

import polars as pl
from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound

from catalog_intel.config import Config, LLMConfig
from catalog_intel.copywriting.grounding.gate import copy_check
from catalog_intel.copywriting.copywriter import describe
from catalog_intel.copywriting.grounding.phrases import stock_figures
from catalog_intel.copywriting.languages import describe_languages, extra_languages

from .common import TASK_DEFAULTS, progress_bar


def ensure_rate_limit(llm: LLMConfig) -> None:
    """Create (or retune) the global concurrency limit that paces LLM requests.
    Without it `rate_limit(strict=True)` would fail, and non-strict would not limit."""
    burst = max(1, math.ceil(llm.requests_per_second))
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(llm.rate_limit_name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                name=llm.rate_limit_name, limit=burst, slot_decay_per_second=llm.requests_per_second, active=True))
            return
        if current.limit != burst or current.slot_decay_per_second != llm.requests_per_second or not current.active:
            client.update_global_concurrency_limit(llm.rate_limit_name, GlobalConcurrencyLimitUpdate(
                limit=burst, slot_decay_per_second=llm.requests_per_second, active=True))


@task(name="describe-batch", **TASK_DEFAULTS)
def describe_batch(sets: pl.DataFrame, config: Config, batch_no: int) -> tuple[pl.DataFrame, dict]:
    """Copy for a batch of distinct attribute sets; cached copy costs no call. Every request,
    on any worker, passes the run's global rate limit."""
    name = config.llm.rate_limit_name
    # The request threads get this task's Prefect context (the API URL a Dask worker was handed):
    # without it a worker's thread would ask a server of its own for the limit.
    context = contextvars.copy_context()

    def throttle() -> None:
        context.copy().run(rate_limit, name, occupy=1, strict=True)

    started = time.monotonic()
    with progress_bar(sets.height, f"describe batch {batch_no}") as bar:
        copy, stats = describe(
            sets, config.llm, config.validation, config.paths.cache_path,
            throttle=throttle, progress=bar, check=copy_check(config),
        )
        more, more_stats = describe_languages(sets, config, describe, progress=bar, throttle=throttle)
    if extra_languages(config):
        copy = copy.join(more, on="sha256", how="left")
    every = [stats, *more_stats]
    counts = {f"llm_{k}": sum(getattr(s, k) for s in every)
              for k in ("calls", "retries", "failed", "cached", "schema_fallbacks", "completion_tokens")}
    # what copy costs per product described (cached copy costs nothing), and its stock phrases
    counts.update(llm_described=sum(s.first_answers for s in every), llm_seconds=time.monotonic() - started,
                  **copy_style_counts(copy))
    # why answers were retried or repaired: the first answers' problems, by kind
    get_run_logger().info("copy batch %d: %s; first answers %d, %d without a problem; problems %s; retries %s",
                          batch_no, counts, sum(s.first_answers for s in every), sum(s.first_clean for s in every),
                          dict(sum((s.problem_kinds for s in every), Counter()).most_common()),
                          dict(sum((s.retry_reasons for s in every), Counter())))
    return copy, counts


def copy_style_counts(copy: pl.DataFrame) -> dict:
    """Prose sentences, and those with a stock phrase (a 6-word run with no product word that 3
    or more of the batch's products share)."""
    figures = stock_figures(copy.filter(pl.col("copy_error").is_null()).to_dicts())
    return {"llm_sentences": figures["sentences"], "llm_stock_sentences": figures["stock_sentences"]}
