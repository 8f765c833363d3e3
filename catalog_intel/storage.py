"""All file IO of the pipeline goes through here.

Paths are plain strings so that a later version can accept object-storage URLs
(s3://, gs://) behind the same functions; every write is atomic (temp file in
the target folder, fsync, rename) so a crash never leaves half a file."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable

import polars as pl

_HASH_CHUNK = 1 << 20


def list_images(root: str, extensions: Iterable[str]) -> list[str]:
    """Image files under `root`, recursive, sorted, hidden folders skipped."""
    exts = {e.lower() for e in extensions}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if Path(name).suffix.lower() in exts and not name.startswith("."):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    target = Path(path)
    ensure_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """For libraries that write files themselves (FAISS): `writer(tmp_path)` writes a
    temp file in the target folder, which is then fsynced and renamed over `path`."""
    target = Path(path)
    ensure_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_files(paths: Iterable[str | os.PathLike]) -> None:
    for p in paths:
        Path(p).unlink(missing_ok=True)


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=True)
    atomic_write_bytes(path, buf.getvalue())


def write_csv(frame: pl.DataFrame, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    frame.write_csv(buf, quote_style="necessary")
    atomic_write_bytes(path, buf.getvalue())


def read_table(path: str) -> pl.DataFrame:
    """A manifest or table: CSV or Parquet by extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return pl.read_parquet(path)
    if suffix in {".csv", ".tsv"}:
        return pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=0)
    raise ValueError(f"{path}: manifest must be .csv, .tsv or .parquet")


class ParquetStore:
    """An append-only, content-addressed table in a folder of Parquet parts.

    Writers never touch existing files: each append is a new part written
    atomically, so concurrent or killed writers cannot corrupt the store, and
    lookups are a polars semi-join over all parts. Duplicate keys (two runs
    computing the same item) are harmless: lookups keep the first."""

    def __init__(self, folder: str | os.PathLike, key: str):
        self.folder = Path(folder)
        self.key = key

    def _parts(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(str(p) for p in self.folder.glob("part-*.parquet"))

    def lookup(self, keys: Iterable[str]) -> pl.DataFrame | None:
        """Stored rows whose key is in `keys` (one row per key), or None if the store is empty.

        Two passes, so that a lookup costs what it finds, not the size of the store:
        the key column of every part (small), then whole rows only from the parts
        that hold a wanted key. A shard's rows were mostly written together, so its
        lookup reads one or two parts however many there are."""
        parts = self._parts()
        if not parts:
            return None
        wanted = pl.DataFrame({self.key: list(keys)}, schema={self.key: pl.Utf8}).lazy()
        holding = (
            pl.scan_parquet(parts, include_file_paths="_part")
            .select(self.key, "_part")
            .join(wanted, on=self.key, how="semi")
            .select(pl.col("_part").unique())
            .collect()["_part"]
            .to_list()
        )
        holding = set(holding)
        hit_parts = [p for p in parts if p in holding]  # keep the store's part order
        if not hit_parts:
            return pl.scan_parquet(parts[:1]).head(0).collect()
        return (
            pl.scan_parquet(hit_parts)
            .join(wanted, on=self.key, how="semi")
            .unique(subset=[self.key], keep="first", maintain_order=True)
            .collect()
        )

    def existing(self, keys: Iterable[str]) -> set[str]:
        """The subset of `keys` that is stored (reads the key column only)."""
        parts = self._parts()
        if not parts:
            return set()
        wanted = pl.DataFrame({self.key: list(keys)}, schema={self.key: pl.Utf8}).lazy()
        found = pl.scan_parquet(parts).select(self.key).join(wanted, on=self.key, how="semi").collect()
        return set(found[self.key].to_list())

    def append(self, frame: pl.DataFrame) -> None:
        if frame.height:
            write_parquet(frame, self.folder / f"part-{uuid.uuid4().hex}.parquet")

    def compact(self, max_parts: int = 16, part_rows: int = 2048) -> int:
        """When there are more than `max_parts` parts, merge consecutive small
        parts (in write order) into parts of about `part_rows` rows. Rows written
        together stay together, so a shard's lookup still reads one or two parts
        (lookup prunes by part); one giant part would be read whole by every lookup.
        Merged parts are written before the old ones are removed: a crash in
        between only leaves duplicates, which lookups ignore. Returns parts removed."""
        parts = sorted(self._parts(), key=lambda p: (os.stat(p).st_mtime_ns, p))
        if len(parts) <= max_parts:
            return 0
        sizes = {p: pl.scan_parquet(p).select(pl.len()).collect().item() for p in parts}
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
        removed = 0
        for group in (g for g in groups if len(g) > 1):
            self.append(pl.scan_parquet(group).unique(subset=[self.key], keep="first", maintain_order=True).collect())
            for part in group:
                Path(part).unlink(missing_ok=True)
            removed += len(group)
        return removed

    def count(self) -> int:
        parts = self._parts()
        return 0 if not parts else pl.scan_parquet(parts).select(pl.col(self.key).n_unique()).collect().item()


RACY_WINDOW_S = 2.0


def stat_key(path: str, racy_window_s: float | None = None) -> str | None:
    """What identifies a file's content without reading it: path, size, mtime,
    ctime and inode (git's index uses the same). None if the file cannot be
    stat'ed, or was modified in the last `racy_window_s` seconds (it may still
    change within the same timestamp tick, so it must be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    window = RACY_WINDOW_S if racy_window_s is None else racy_window_s
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < window * 1e9:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{os.path.abspath(path)}"


class FileHashCache:
    """sha256 of files remembered by their stat_key, in a ParquetStore: a re-run
    over an unchanged catalog stats the files instead of reading them all.
    A changed file has a new key (size, mtime or ctime differ) and is hashed
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
            found = None  # e.g. a part compacted away by a concurrent run: hash instead
        hits = {} if found is None else dict(zip(found["stat_key"].to_list(), found["sha256"].to_list()))
        self.hits += len(hits)
        return hits

    def put(self, entries: dict[str, str]) -> None:
        if entries:
            self.store.append(pl.DataFrame({"stat_key": list(entries), "sha256": list(entries.values())},
                                           schema={"stat_key": pl.Utf8, "sha256": pl.Utf8}))
        parts = self.store._parts()
        if len(parts) > self.COMPACT_PARTS:
            self._compact(parts)

    def _compact(self, parts: list[str]) -> None:
        """Merge the parts into one (new part first, then the old ones go)."""
        merged = pl.read_parquet(parts).unique(subset=["stat_key"], keep="last")
        self.store.append(merged)
        for p in parts:
            Path(p).unlink(missing_ok=True)
