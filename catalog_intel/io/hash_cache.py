"""The file-hash cache: a file's sha256 remembered by what identifies its content without
reading it (filesystem.stat_key)."""

from __future__ import annotations

import os
from typing import Iterable

import polars as pl

from catalog_intel.io.parquet_store import ParquetStore


class FileHashCache:
    """sha256 of files remembered by their stat_key, in a ParquetStore: a re-run
    over an unchanged catalog stats the files instead of reading them all.
    A changed file has a new key (size, mtime/ETag differ) and is hashed
    again; stale entries are harmless. `hits` counts the hashes served."""

    COMPACT_PARTS = 64

    def __init__(self, folder: str | os.PathLike):
        self.store = ParquetStore(folder, key="stat_key")
        self.hits = 0

    def get(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        if not keys:
            return {}
        try:
            found = self.store.lookup(keys)
        except (OSError, pl.exceptions.PolarsError):
            found = None  # an unreadable cache costs a re-hash, never the run
        hits = {} if found is None else dict(zip(found["stat_key"].to_list(), found["sha256"].to_list()))
        self.hits += len(hits)
        return hits

    def put(self, entries: dict[str, str]) -> None:
        if entries:
            self.store.append(pl.DataFrame({"stat_key": list(entries), "sha256": list(entries.values())},
                                           schema={"stat_key": pl.Utf8, "sha256": pl.Utf8}))
        self.store.compact(max_parts=self.COMPACT_PARTS, part_rows=1 << 20)
