"""Inventory: which images a run covers, each with its content hash.

The sha256 of the file bytes is the identity every cache uses, so renamed or
duplicated files are embedded once and a changed file is embedded again."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from .storage import FileHashCache, list_images, read_table, sha256_file, stat_key

MANIFEST_PATH_COLUMNS = ("image_path", "path", "image", "file")
INVENTORY_SCHEMA = {"image": pl.Utf8, "path": pl.Utf8, "product_id": pl.Utf8, "sha256": pl.Utf8}
REJECTS_SCHEMA = {"image": pl.Utf8, "reason": pl.Utf8}


class SourceError(ValueError):
    """The run's input (folder or manifest) cannot be used at all."""


def _hash_or_reason(path: str) -> tuple[str | None, str | None]:
    try:
        return sha256_file(path), None
    except PermissionError:
        return None, "file is not readable (permission denied): fix its permissions"
    except IsADirectoryError:
        return None, "path is a folder, not an image file"
    except OSError as exc:
        return None, f"file cannot be read: {exc.strerror or exc}"


def scan_folder(root: str, extensions) -> pl.DataFrame:
    """Image files under `root` -> [image (path relative to root), path]."""
    paths = list_images(root, extensions)
    return pl.DataFrame(
        {"image": [os.path.relpath(p, root) for p in paths], "path": [os.path.abspath(p) for p in paths]},
        schema={"image": pl.Utf8, "path": pl.Utf8},
    )


def read_manifest(manifest: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A CSV/Parquet manifest -> (rows [image, path, product_id?, extra columns...], rejects).

    Relative paths resolve against the manifest's folder, which is also the
    allowed root: rows pointing outside it (`../`, other absolute paths) or to
    missing files are rejected."""
    table = read_table(manifest)
    column = next((c for c in MANIFEST_PATH_COLUMNS if c in table.columns), None)
    if column is None:
        raise SourceError(f"manifest {manifest} has no image path column (one of {', '.join(MANIFEST_PATH_COLUMNS)})")
    root = Path(manifest).resolve().parent
    inside = os.path.join(str(root), "")  # os.path, not pathlib: ~3x faster on 100k-row manifests
    images, paths, reasons = [], [], []
    for raw in table[column].cast(pl.Utf8).to_list():
        images.append(raw or "")
        if not raw:
            paths.append(None), reasons.append("manifest row has an empty image path")
            continue
        resolved = os.path.realpath(os.path.join(root, raw))  # symlinks resolved, like Path.resolve()
        if not resolved.startswith(inside):
            paths.append(None), reasons.append(f"path is outside the manifest's folder {root}: not allowed")
        elif not os.path.exists(resolved):
            paths.append(None), reasons.append("file does not exist")
        else:
            paths.append(resolved), reasons.append(None)
    extras = table.drop(column)
    if "product_id" in extras.columns:
        extras = extras.with_columns(pl.col("product_id").cast(pl.Utf8))
    extras = extras.rename({c: f"manifest_{c}" for c in extras.columns if c in ("image", "path", "sha256")})
    frame = pl.concat([pl.DataFrame({"image": images, "path": paths, "_reason": reasons},
                                    schema={"image": pl.Utf8, "path": pl.Utf8, "_reason": pl.Utf8}), extras], how="horizontal")
    rejects = frame.filter(pl.col("_reason").is_not_null()).select("image", pl.col("_reason").alias("reason"))
    return frame.filter(pl.col("_reason").is_null()).drop("_reason"), rejects


def hash_paths(paths: list[str], cache: FileHashCache | None = None, progress=None,
               threads: int | None = None) -> tuple[list[str | None], list[str | None]]:
    """sha256 (or the reason there is none) per path. With a cache, files whose
    stat is unchanged since they were last hashed are not read; the rest are
    hashed by `threads` threads (hashlib and file reads release the GIL)."""
    hashes: list[str | None] = [None] * len(paths)
    reasons: list[str | None] = [None] * len(paths)
    keys = [stat_key(p) for p in paths] if cache is not None else [None] * len(paths)
    known = cache.get(k for k in keys if k) if cache is not None else {}
    todo = []
    for i, key in enumerate(keys):
        if key in known:
            hashes[i] = known[key]
        else:
            todo.append(i)
    if progress is not None and len(paths) > len(todo):
        progress.update(len(paths) - len(todo))
    threads = threads or min(4, os.cpu_count() or 1)
    fresh: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="hash") as pool:
        for i, (digest, reason) in zip(todo, pool.map(lambda i: _hash_or_reason(paths[i]), todo)):
            hashes[i], reasons[i] = digest, reason
            if digest and keys[i]:
                fresh[keys[i]] = digest
            if progress is not None:
                progress.update(1)
    if cache is not None:
        cache.put(fresh)
    return hashes, reasons


def build_inventory(source: str, extensions, progress=None,
                    hash_cache: FileHashCache | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Folder or manifest -> (inventory [image, path, product_id, sha256, ...], rejects [image, reason]).
    `hash_cache`: reuse the sha256 of files unchanged since an earlier run."""
    if os.path.isdir(source):
        rows, rejects = scan_folder(source, extensions), pl.DataFrame(schema=REJECTS_SCHEMA)
        if rows.is_empty():
            raise SourceError(f"no images ({', '.join(extensions)}) found under {source}")
    elif os.path.isfile(source):
        rows, rejects = read_manifest(source)
    else:
        raise SourceError(f"input not found: {source} (give a folder of images or a CSV/Parquet manifest)")
    if "product_id" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, dtype=pl.Utf8).alias("product_id"))
    hashes, reasons = hash_paths(rows["path"].to_list(), hash_cache, progress)
    rows = rows.with_columns(pl.Series("sha256", hashes, dtype=pl.Utf8), pl.Series("_reason", reasons, dtype=pl.Utf8))
    rejects = pl.concat([rejects, rows.filter(pl.col("_reason").is_not_null()).select("image", pl.col("_reason").alias("reason"))])
    inventory = rows.filter(pl.col("_reason").is_null()).drop("_reason")
    dupes = inventory.filter(pl.col("image").is_duplicated())
    if dupes.height:
        raise SourceError(f"image ids are not unique in {source}: {dupes['image'].unique().to_list()[:5]}")
    first = ["image", "path", "product_id", "sha256"]
    return inventory.select(first + [c for c in inventory.columns if c not in first]), rejects
