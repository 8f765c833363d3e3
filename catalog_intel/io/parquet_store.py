"""Append-only, content-addressed Parquet stores (the caches) with a commit protocol that is
safe on object stores: stores append parts under unique names and never rewrite them;
compaction writes the merged part, then a commit file naming the parts it supersedes, and
only deletes superseded parts long after (see ParquetStore)."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from typing import Callable, Iterable

import polars as pl

from catalog_intel.io.filesystem import (_local, atomic_write_text, basename, is_local, list_dir, location, parent,
                                         read_bytes, relpath, remove_files, url_to_fs, walk_files, write_parquet)


_COLUMN_CACHE: dict[tuple[str, tuple[str, ...]], pl.DataFrame] = {}


_COLUMN_CACHE_PARTS = 8192


def _read_parts(parts: list[str], columns: list[str] | None = None, with_part: bool = False) -> list[pl.DataFrame]:
    """Each part as a frame (`_part` column added with `with_part`), fetched concurrently from a store.
    Parts are immutable (unique names, never rewritten), so column reads (the key column of every
    part, read by each lookup) are kept in memory: a store on S3 is not downloaded again per lookup."""
    if not parts:
        return []
    wanted = tuple(columns) if columns else None
    frames: dict[str, pl.DataFrame] = {p: _COLUMN_CACHE[(p, wanted)] for p in parts
                                       if wanted and (p, wanted) in _COLUMN_CACHE}
    todo = [p for p in parts if p not in frames]
    if todo and is_local(todo[0]):
        frames.update({p: pl.read_parquet(_local(p), columns=columns) for p in todo})
    elif todo:
        fs, _ = url_to_fs(todo[0])
        stripped = {p: url_to_fs(p)[1] for p in todo}
        blobs = fs.cat(list(stripped.values()), on_error="raise")
        frames.update({p: pl.read_parquet(io.BytesIO(blobs[s]), columns=columns) for p, s in stripped.items()})
    if wanted and todo:
        if len(_COLUMN_CACHE) > _COLUMN_CACHE_PARTS:
            _COLUMN_CACHE.clear()
        _COLUMN_CACHE.update({(p, wanted): frames[p] for p in todo})
    frames = [frames[p] for p in parts]
    if with_part:
        frames = [f.with_columns(pl.lit(p).alias("_part")) for f, p in zip(frames, parts)]
    return frames


COMMITS_DIR = "_compacted"


PURGE_AFTER_S = 3600.0


class ParquetStore:
    """An append-only, content-addressed table in a folder of Parquet parts, local or
    on an object store, safe for concurrent runs sharing it.

    - Each append is a new part `part-<time>-<uuid>.parquet` published in one step;
      existing parts are never rewritten. Duplicate keys (two runs computing the
      same item) are harmless: lookups keep the first.
    - Compaction writes the merged part first, then a commit file
      `_compacted/<time>-<uuid>.json` naming the parts it supersedes. Readers list
      the commits BEFORE the parts and skip superseded parts, so they see every
      row exactly once (the merged part exists before its commit does).
    - Superseded parts are deleted only when their commit is older than
      `purge_after_s` (default an hour): a reader lists the parts for one lookup
      (seconds), so no live reader can still be about to read them. Should one
      vanish anyway, the lookup lists again."""

    def __init__(self, folder: str | os.PathLike, key: str):
        self.folder = location(folder)
        self.key = key

    # listing
    def _commits(self) -> list[tuple[str, dict]]:
        commits = []
        for loc in list_dir(self.folder / COMMITS_DIR, suffix=".json"):
            try:
                commits.append((loc, json.loads(read_bytes(loc))))
            except (FileNotFoundError, ValueError):
                continue  # purged meanwhile, or not ours
        return commits

    def _parts(self) -> list[str]:
        """Live parts in write order (commits are read first, see the class doc)."""
        superseded = {name for _, c in self._commits() for name in c.get("superseded", [])}
        return [p for p in list_dir(self.folder, prefix="part-", suffix=".parquet") if basename(p) not in superseded]

    def _retrying(self, read: Callable[[list[str]], object]):
        for attempt in range(5):
            parts = self._parts()
            try:
                return read(parts)
            except (FileNotFoundError, pl.exceptions.ComputeError):
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))  # a part was purged since listing: list again

    # reading
    def lookup(self, keys: Iterable[str]) -> pl.DataFrame | None:
        """Stored rows whose key is in `keys` (one row per key), or None if the store is empty.

        Two passes, so that a lookup costs what it finds, not the size of the store:
        the key column of every part (small), then whole rows only from the parts
        that hold a wanted key. A shard's rows were mostly written together, so its
        lookup reads one or two parts however many there are."""
        wanted_keys = list(keys)

        def read(parts: list[str]):
            if not parts:
                return None
            wanted = pl.DataFrame({self.key: wanted_keys}, schema={self.key: pl.Utf8}).lazy()
            holding = set(
                pl.concat([f.lazy() for f in _read_parts(parts, [self.key], with_part=True)])
                .join(wanted, on=self.key, how="semi").select(pl.col("_part").unique()).collect()["_part"].to_list()
            )
            hit_parts = [p for p in parts if p in holding]  # keep the store's part order
            if not hit_parts:
                return _read_parts(parts[:1])[0].head(0)
            return (  # is_in, not a join: keeps the parts' order, so "first" is the earliest write
                pl.concat([f.lazy() for f in _read_parts(hit_parts)], how="vertical_relaxed")
                .filter(pl.col(self.key).is_in(pl.Series(wanted_keys, dtype=pl.Utf8).implode()))
                .unique(subset=[self.key], keep="first", maintain_order=True)
                .collect()
            )

        return self._retrying(read)

    def existing(self, keys: Iterable[str]) -> set[str]:
        """The subset of `keys` that is stored (reads the key column only)."""
        wanted_keys = list(keys)

        def read(parts: list[str]) -> set[str]:
            if not parts:
                return set()
            wanted = pl.DataFrame({self.key: wanted_keys}, schema={self.key: pl.Utf8}).lazy()
            found = pl.concat([f.lazy() for f in _read_parts(parts, [self.key])]).join(wanted, on=self.key,
                                                                                         how="semi").collect()
            return set(found[self.key].to_list())

        return self._retrying(read)

    def count(self) -> int:
        def read(parts: list[str]) -> int:
            if not parts:
                return 0
            return pl.concat(_read_parts(parts, [self.key]))[self.key].n_unique()

        return self._retrying(read)

    # writing
    def append(self, frame: pl.DataFrame) -> str | None:
        if not frame.height:
            return None
        loc = self.folder / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
        write_parquet(frame, loc)
        return loc

    def compact(self, max_parts: int = 16, part_rows: int = 2048, purge_after_s: float = PURGE_AFTER_S) -> int:
        """When there are more than `max_parts` live parts, merge consecutive small parts
        (in write order) into parts of about `part_rows` rows. Rows written together stay
        together, so a shard's lookup still reads one or two parts (lookup prunes by
        part); one giant part would be read whole by every lookup. Nothing is deleted
        here but parts superseded more than `purge_after_s` ago (see the class doc).
        Returns the number of parts superseded now."""
        self.purge(purge_after_s)
        parts = self._parts()
        if len(parts) <= max_parts:
            return 0
        sizes = dict(zip(parts, (f.height for f in _read_parts(parts, [self.key]))))
        groups, current, rows = [], [], 0
        for part in parts:
            if sizes[part] >= part_rows:  # already big enough: leave it
                continue
            current.append(part)
            rows += sizes[part]
            if rows >= part_rows:
                groups.append(current)
                current, rows = [], 0
        if len(current) > 1:
            groups.append(current)
        superseded = 0
        for group in (g for g in groups if len(g) > 1):
            try:
                merged = pl.concat(_read_parts(group), how="vertical_relaxed")
            except FileNotFoundError:
                continue  # another compaction purged it meanwhile
            new = self.append(merged.unique(subset=[self.key], keep="first", maintain_order=True))
            commit = {"merged": basename(new), "superseded": [basename(p) for p in group], "at": time.time()}
            atomic_write_text(self.folder / COMMITS_DIR / f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.json",
                              json.dumps(commit))
            superseded += len(group)
        return superseded

    def purge(self, older_than_s: float = PURGE_AFTER_S) -> int:
        """Delete the parts superseded by commits older than `older_than_s`, then those commits."""
        removed = 0
        now = time.time()
        for loc, commit in self._commits():
            if now - float(commit.get("at", now)) < older_than_s:
                continue
            remove_files(self.folder / name for name in commit.get("superseded", []))
            removed += len(commit.get("superseded", []))
            remove_files([loc])
        return removed


STORE_KEYS = {"embeddings": "sha256", "llm_copy": "copy_key", "pixel_color": "sha256", "file_hashes": "stat_key"}


def compact_cache(root: str | os.PathLike, purge_after_s: float = PURGE_AFTER_S,
                  max_parts: int = 16, part_rows: int = 2048) -> dict[str, tuple[int, int, int]]:
    """`catalog-intel cache compact`: every store under a cache root -> (parts merged,
    superseded parts deleted, live parts). Safe while runs use the cache (see ParquetStore)."""
    root = location(root)
    folders = sorted({parent(f) for f, _ in walk_files(root)[0] if basename(f).startswith("part-")})
    done = {}
    for folder in folders:
        top = relpath(folder, root).split("/")[0]
        store = ParquetStore(folder, key=STORE_KEYS.get(top, "sha256"))
        purged = store.purge(purge_after_s)
        merged = store.compact(max_parts=max_parts, part_rows=part_rows, purge_after_s=purge_after_s)
        purged += store.purge(purge_after_s)
        done[relpath(folder, root)] = (merged, purged, len(store._parts()))
    return done
