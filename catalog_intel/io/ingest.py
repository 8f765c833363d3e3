"""Inventory: which images a run covers, each with its content hash.

The sha256 of the file bytes is the identity every cache uses, so renamed or
duplicated files are embedded once and a changed file is embedded again.

Every regular file under an input folder is accounted for: it becomes a row of
the inventory, a reject with a reason, or (dot files and dot folders) a skipped
file that the run summary counts. Locations may be local paths or fsspec URLs."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from catalog_intel.errors import SourceError
from catalog_intel.io.filesystem import (is_local, isdir, isfile, join, parent, read_table, relpaths, resolve,
                                         sha256_file, stat_key, walk_files)
from catalog_intel.io.hash_cache import FileHashCache
from catalog_intel.schemas import REJECTS_SCHEMA

MANIFEST_PATH_COLUMNS = ("image_path", "path", "image", "file")
INVENTORY_SCHEMA = {"image": pl.Utf8, "path": pl.Utf8, "product_id": pl.Utf8, "sha256": pl.Utf8}
HEIF_EXTENSIONS = (".heic", ".heif")


def _hash_or_reason(path: str) -> tuple[str | None, str | None]:
    try:
        return sha256_file(path), None
    except PermissionError:
        return None, "file is not readable (permission denied): fix its permissions"
    except IsADirectoryError:
        return None, "path is a folder, not an image file"
    except FileNotFoundError:
        return None, "file does not exist"
    except OSError as exc:
        return None, f"file cannot be read: {exc.strerror or exc}"


def not_an_image_reason(name: str, extensions) -> str:
    ext = os.path.splitext(name)[1].lower() or "(none)"
    return (f"not an image (extension {ext} is not one of run.image_extensions: {', '.join(extensions)}; "
            "add it there if the file is an image Pillow can read)")


def scan_folder(root: str, extensions) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Every regular file under `root` -> (image files [image (relative to root), path, _stat_key],
    rejects [image, reason] for files without an image extension, skipped dot files)."""
    files, skipped = walk_files(root)
    exts = {e.lower() for e in extensions}
    local = is_local(root)
    images, paths, keys, rejects = [], [], [], []
    for (loc, info), rel in zip(files, relpaths([loc for loc, _ in files], root)):
        if info is not None and info.get("type") == "other":
            rejects.append((rel, "not a regular file (a broken link, pipe or socket): replace it with the image file"))
        elif os.path.splitext(loc)[1].lower() in exts:
            images.append(rel), paths.append(os.path.abspath(loc) if local else loc)
            keys.append(stat_key(loc, info) if info is not None else None)  # the listing's size + ETag
        else:
            rejects.append((rel, not_an_image_reason(loc, extensions)))
    rows = pl.DataFrame({"image": images, "path": paths, "_stat_key": keys},
                        schema={"image": pl.Utf8, "path": pl.Utf8, "_stat_key": pl.Utf8})
    return rows, pl.DataFrame(rejects, schema=REJECTS_SCHEMA, orient="row"), skipped


def read_manifest(manifest: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A CSV/Parquet manifest -> (rows [image, path, product_id?, extra columns...], rejects).

    Relative paths resolve against the manifest's folder, which is also the
    allowed root: rows pointing outside it (`../`, other absolute paths or URLs)
    are rejected; missing files are rejected when they are hashed."""
    table = read_table(manifest)
    column = next((c for c in MANIFEST_PATH_COLUMNS if c in table.columns), None)
    if column is None:
        raise SourceError(f"manifest {manifest} has no image path column (one of {', '.join(MANIFEST_PATH_COLUMNS)})")
    root = resolve(parent(manifest))
    inside = join(root, "")
    images, paths, reasons = [], [], []
    for raw in table[column].cast(pl.Utf8).to_list():
        images.append(raw or "")
        if not raw:
            paths.append(None), reasons.append("manifest row has an empty image path")
            continue
        target = raw if "://" in raw or os.path.isabs(raw) else join(root, raw)
        resolved = resolve(target)  # symlinks resolved locally, like Path.resolve()
        if not resolved.startswith(inside):
            paths.append(None), reasons.append(f"path is outside the manifest's folder {root}: not allowed")
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
               threads: int | None = None, keys: list | None = None) -> tuple[list[str | None], list[str | None]]:
    """sha256 (or the reason there is none) per path. With a cache, files whose
    stat_key (object store: size and ETag; given in `keys` when the listing had them) is
    unchanged since they were last hashed are not read; the rest are hashed by
    `threads` threads (hashlib and file reads release the GIL)."""
    hashes: list[str | None] = [None] * len(paths)
    reasons: list[str | None] = [None] * len(paths)
    if cache is None:
        keys = [None] * len(paths)
    else:
        keys = [k or stat_key(p) for p, k in zip(paths, keys or [None] * len(paths))]
    known = cache.get(k for k in keys if k) if cache is not None else {}
    todo = []
    for i, key in enumerate(keys):
        if key in known:
            hashes[i] = known[key]
        else:
            todo.append(i)
    if progress is not None and len(paths) > len(todo):
        progress.update(len(paths) - len(todo))
    threads = threads or min(8, 2 * (os.cpu_count() or 1))
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


def build_inventory(source: str, extensions, progress=None, hash_cache: FileHashCache | None = None
                    ) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Folder or manifest (local path or URL) -> (inventory [image, path, product_id, sha256, ...],
    rejects [image, reason], skipped dot files). For a folder, inputs = inventory + rejects + skipped.
    `hash_cache`: reuse the sha256 of files unchanged since an earlier run."""
    skipped: list[str] = []
    if isdir(source):
        rows, rejects, skipped = scan_folder(source, extensions)
        if rows.is_empty() and rejects.is_empty():
            raise SourceError(f"no files found under {source} (dot files are skipped: {len(skipped)})")
    elif isfile(source):
        rows, rejects = read_manifest(source)
    else:
        raise SourceError(f"input not found: {source} (give a folder of images or a CSV/Parquet manifest; "
                          "for object storage a URL such as s3://bucket/folder)")
    keys = rows["_stat_key"].to_list() if "_stat_key" in rows.columns else None
    rows = rows.drop("_stat_key", strict=False)
    if "product_id" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, dtype=pl.Utf8).alias("product_id"))
    if progress is not None and hasattr(progress, "reset"):
        progress.reset(total=rows.height)
    hashes, reasons = hash_paths(rows["path"].to_list(), hash_cache, progress, keys=keys)
    rows = rows.with_columns(pl.Series("sha256", hashes, dtype=pl.Utf8), pl.Series("_reason", reasons, dtype=pl.Utf8))
    rejects = pl.concat([rejects, rows.filter(pl.col("_reason").is_not_null()).select("image", pl.col("_reason").alias("reason"))])
    inventory = rows.filter(pl.col("_reason").is_null()).drop("_reason")
    dupes = inventory.filter(pl.col("image").is_duplicated())
    if dupes.height:
        raise SourceError(f"image ids are not unique in {source}: {dupes['image'].unique().to_list()[:5]}")
    first = ["image", "path", "product_id", "sha256"]
    return inventory.select(first + [c for c in inventory.columns if c not in first]), rejects, skipped
