"""The distributor: which Prefect task runner runs the shard tasks, and the copy step.

local: one shard at a time in the flow's process (the model uses every core).
dask:  an existing cluster (runner.dask_address) or a local cluster of
       runner.workers processes started for the run, through prefect-dask."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from catalog_intel.errors import ConfigError
from catalog_intel.settings import Config


def describe_runner(config: Config) -> str:
    r = config.runner
    if r.task_runner == "local":
        return "local"
    return f"dask {r.dask_address}" if r.dask_address else "dask local cluster"


def check_runner(config: Config, embedded_llm: bool) -> str | None:
    """Said before any work starts: where the copy step runs. Raises when the choice cannot work."""
    r = config.runner
    if r.task_runner == "local":
        return None
    try:
        import prefect_dask  # noqa: F401
    except ImportError:
        raise ConfigError("task_runner = 'dask' needs the dask extra: pip install -e '.[dask]'") from None
    if r.dask_address and not r.dask_address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ConfigError(f"runner.dask_address {r.dask_address!r} is not a scheduler address such as tcp://HOST:8786")
    if config.llm.enabled and embedded_llm:
        return ("the embedded LLM listens on this machine only, so the copy step runs here; "
                "set llm.base_url (--llm-base-url) to a server the workers reach to run it on the cluster")
    return None


def shard_runner(config: Config):
    """A Prefect task runner for the shard tasks (not yet started)."""
    r = config.runner
    if r.task_runner == "local":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if r.dask_address:
        return DaskTaskRunner(address=r.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": r.workers, "threads_per_worker": r.threads_per_worker,
                                          "processes": True, "dashboard_address": None})


@contextmanager
def copy_runner(config: Config, shards: Any, embedded_llm: bool) -> Iterator[Any]:
    """Copy tasks go to the cluster only when the workers can reach the LLM; else they run
    here, one batch at a time (each batch sends llm.concurrency requests at once)."""
    if config.runner.task_runner == "dask" and not embedded_llm:
        yield shards
        return
    from prefect.task_runners import ThreadPoolTaskRunner

    with ThreadPoolTaskRunner(max_workers=1) as runner:
        yield runner


@contextmanager
def gpu_annotation(runner: Any) -> Iterator[None]:
    """On a Dask cluster whose workers advertise a GPU resource, the shard tasks ask for
    one, so only GPU workers take them (start those with `dask worker ... --resources GPU=1`)."""
    gpu = False
    if hasattr(type(runner), "client"):  # a DaskTaskRunner: its client connects on first use
        workers = runner.client.scheduler_info(n_workers=-1).get("workers", {}).values()
        gpu = any(w.get("resources", {}).get("GPU") for w in workers)
    if not gpu:
        yield
        return
    import dask

    with dask.annotate(resources={"GPU": 1}):
        yield
