from __future__ import annotations

from prefect.cache_policies import NO_CACHE

# Caching is done by our own content-addressed stores (keyed by image sha256 and
# model id), which survive across runs; Prefect's result persistence would only
# duplicate large frames on disk.
TASK_DEFAULTS = dict(cache_policy=NO_CACHE, persist_result=False)


def progress_bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, mininterval=1.0, dynamic_ncols=True)
