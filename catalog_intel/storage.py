"""All file IO of the pipeline goes through here.

Paths are plain strings so that a later version can accept object-storage URLs
(s3://, gs://) behind the same functions; every write is atomic (temp file in
the target folder, fsync, rename) so a crash never leaves half a file."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
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
        """Stored rows whose key is in `keys` (one row per key), or None if the store is empty."""
        parts = self._parts()
        if not parts:
            return None
        wanted = pl.DataFrame({self.key: list(keys)}, schema={self.key: pl.Utf8})
        return (
            pl.scan_parquet(parts)
            .join(wanted.lazy(), on=self.key, how="semi")
            .unique(subset=[self.key], keep="first", maintain_order=True)
            .collect()
        )

    def append(self, frame: pl.DataFrame) -> None:
        if frame.height:
            write_parquet(frame, self.folder / f"part-{uuid.uuid4().hex}.parquet")

    def compact(self, max_parts: int = 16) -> int:
        """Merge the parts into one when there are more than `max_parts`.
        The merged part is written before the old ones are removed, so a crash
        in between only leaves duplicates, which lookups already ignore.
        Returns the number of parts removed."""
        parts = self._parts()
        if len(parts) <= max_parts:
            return 0
        merged = pl.scan_parquet(parts).unique(subset=[self.key], keep="first", maintain_order=True).collect()
        self.append(merged)
        for part in parts:
            Path(part).unlink(missing_ok=True)
        return len(parts)

    def count(self) -> int:
        parts = self._parts()
        return 0 if not parts else pl.scan_parquet(parts).select(pl.col(self.key).n_unique()).collect().item()
