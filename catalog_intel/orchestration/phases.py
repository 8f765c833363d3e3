"""Time per phase of a flow run, from the Prefect API (the summary's "time per phase")."""

from __future__ import annotations

import logging
import time
from collections import defaultdict


def phase_times(flow_run_id, settle_s: float = 3.0) -> dict[str, float]:
    """Seconds per task name (shards summed) of a flow run, longest first, from the Prefect API.
    The server records task runs from events the client sends in the background, so the run's last
    tasks can be missing or unfinished there for a moment: read until every task run read is final
    and a read 0.1 s later finds the same runs (at most `settle_s`)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + settle_s
    seen: dict | None = None
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            now = {run.id: (run.state_type, run.total_run_time) for run in runs}
            final = all(run.state is not None and run.state.is_final() for run in runs)
            if (final and now == seen) or time.monotonic() >= deadline:
                break
            seen = now
            time.sleep(0.1)
    totals: dict[str, float] = defaultdict(float)
    for run in runs:
        name = (run.name or "?").rsplit("-", 1)[0]  # Prefect names task runs "<task name>-<suffix>"
        totals[name] += run.total_run_time.total_seconds()
    return {k: round(v, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def current_phase_times() -> dict[str, float]:
    """phase_times of the flow run this code runs in; {} outside one or if the API does not answer.
    Prefect's event queue is handed to the server first, so the task runs that just finished are on
    their way there (the queue starts again with the next event)."""
    try:
        from prefect.events.worker import EventsWorker
        from prefect.runtime import flow_run

        if not flow_run.id:
            return {}
        EventsWorker.drain_all(timeout=5, at_exit=False)
        return phase_times(flow_run.id)
    except Exception:  # noqa: BLE001 - a summary line is never worth failing a run
        logging.getLogger(__name__).debug("phase times unavailable", exc_info=True)
        return {}
