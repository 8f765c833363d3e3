"""The Prefect global rate limit paces every LLM attempt, retries included."""

import time

import polars as pl
import pytest

from catalog_intel.copywriting.copywriter import describe
from catalog_intel.settings import load_config
from llm_server import FakeLLMServer, FaultPlan

COLORS = ["black", "white", "grey", "beige", "brown", "red", "pink", "orange", "yellow", "green"]


@pytest.mark.slow
def test_rate_limit_holds_while_retrying(prefect_server, tmp_path):
    from prefect import flow
    from prefect.concurrency.sync import rate_limit

    from catalog_intel.orchestration.rate_limit import ensure_rate_limit

    cfg = load_config(None, {"llm.requests_per_second": 4.0, "llm.rate_limit_name": "test-llm-rate",
                             "llm.concurrency": 4, "llm.max_attempts": 8, "llm.format_attempts": 8, "llm.backoff_initial_s": 0.01,
                             "llm.backoff_max_s": 0.1, "llm.timeout_s": 2.0})
    rows = pl.DataFrame({"sha256": [f"s{i}" for i in range(20)], "color": COLORS * 2,
                         "sleeve": ["sleeveless"] * 10 + ["long sleeve"] * 10})
    plan = FaultPlan.random(0.3, seed=5, kinds=["http_429", "http_503", "invalid_json"], retry_after="0")
    with FakeLLMServer(faults=plan) as server:
        llm = cfg.llm.model_copy(update={"base_url": server.base_url})

        @flow
        def paced():
            ensure_rate_limit(llm)
            return describe(rows, llm, cfg.validation, tmp_path,
                            throttle=lambda: rate_limit(llm.rate_limit_name, occupy=1, strict=True))

        started = time.monotonic()  # the server stamps arrivals with the same clock
        copy, stats = paced()
        arrivals = sorted(r["time"] - started for r in server.request_log)
    assert copy["copy_error"].null_count() == 20  # every product described despite 30% faults
    assert stats.retries >= 3 and len(arrivals) == 20 + stats.retries
    # The limit starts with 4 free slots and frees 4 per second: by t seconds the server can have
    # received at most 4 + 4t requests (one spare for the decay's granularity). Load only delays
    # requests, so it can make these counts smaller, never larger.
    over = [(n, round(t, 2)) for n, t in enumerate(arrivals, 1) if n > 4 + 4.0 * t + 1]
    assert over == [], f"requests received by t seconds over 4 + 4t: {over}"
    assert arrivals[-1] >= (len(arrivals) - 5) / 4.0


def test_strict_rate_limit_fails_without_the_limit(prefect_server):
    """Why ensure_rate_limit exists: strict=True refuses a limit that was never created."""
    from prefect import flow
    from prefect.concurrency.sync import rate_limit

    @flow
    def unlimited():
        rate_limit("no-such-limit-for-catalog-intel", occupy=1, strict=True)

    with pytest.raises(Exception, match="no-such-limit-for-catalog-intel|not found|does not exist"):
        unlimited()
