"""The run's LLM rate limit: a Prefect global concurrency limit that every copy request, on any
worker, passes through (the copywriter is handed `throttle`, a plain callable)."""

from __future__ import annotations

import contextvars
import math
from typing import Callable

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound

from catalog_intel.settings import LLMConfig


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


def throttle_for(llm: LLMConfig) -> Callable[[], None]:
    """One slot of the run's rate limit per call, from any thread of this task."""
    # The request threads get this task's Prefect context (the API URL a Dask worker was handed):
    # without it a worker's thread would ask a server of its own for the limit.
    context = contextvars.copy_context()

    def throttle() -> None:
        context.copy().run(rate_limit, llm.rate_limit_name, occupy=1, strict=True)

    return throttle


def llm_api_key(llm: LLMConfig) -> str | None:
    """The key from a Prefect Secret block when the environment has none (None: the copywriter's own)."""
    import os

    if os.environ.get(llm.api_key_env) or not llm.api_key_secret_block:
        return None
    from prefect.blocks.system import Secret

    return Secret.load(llm.api_key_secret_block).get()
