"""All file IO of the pipeline goes through here, local or object storage alike.

Every location is a plain string: a local path or an fsspec URL (s3://, gs://,
az://, file://, memory://). `fsspec.core.url_to_fs` picks the filesystem, so
the rest of the code never looks at the scheme. Credentials come from the
standard environment (AWS_*, AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS,
AZURE_STORAGE_*) or from `paths.storage_options` in the config; they are never
logged or written anywhere.

Object stores have no rename, so nothing here relies on one for correctness:
- a published file is written in one step (one PUT on an object store, which
  is all-or-nothing; temp file + rename on a local disk), so a reader sees the
  old file or the new one, never half of one;
- stores append parts under unique names and never rewrite them; compaction
  writes the merged part, then a commit file naming the parts it supersedes,
  and only deletes superseded parts long after (see ParquetStore)."""

from __future__ import annotations

import hashlib
import io
import json
import contextlib
import os
import posixpath
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable

import polars as pl

from catalog_intel.io.leftovers import hold

_HASH_CHUNK = 1 << 20
_options: dict[str, dict] = {}
_fs_lock = threading.Lock()


# --- locations ------------------------------------------------------------------------------

def configure(storage_options: dict | None) -> None:
    """Per-protocol options for fsspec ({"s3": {"endpoint_url": ...}}), from the config.
    Kept in this process only, never in its environment (every child would inherit them): a
    worker process gets them with the config passed to its task (see PathsConfig.__setstate__)."""
    global _options
    _options = {k: dict(v) for k, v in (storage_options or {}).items()}


def _protocol_options(protocol: str) -> dict:
    return dict(_options.get(protocol, {}))


def is_url(loc: str | os.PathLike) -> bool:
    return "://" in str(loc)


def url_to_fs(loc: str | os.PathLike):
    """(filesystem, path inside it) for a local path or URL."""
    import fsspec.core

    loc = str(loc)
    protocol = loc.split("://", 1)[0] if is_url(loc) else "file"
    with _fs_lock:
        return fsspec.core.url_to_fs(loc, **_protocol_options(protocol))


def is_local(loc: str | os.PathLike) -> bool:
    """On this machine's file system (a plain path or file://)."""
    return not is_url(loc) or str(loc).startswith("file://")


def _local(loc: str | os.PathLike) -> str:
    loc = str(loc)
    return loc[len("file://"):] if loc.startswith("file://") else loc


class Location(str):
    """A location string that joins with `/` like a Path (`cache / "embeddings"`),
    whether it is a local path or a URL."""

    def __truediv__(self, other: str) -> "Location":
        return Location(join(self, str(other)))

    @property
    def name(self) -> str:
        return basename(self)

    @property
    def parent(self) -> "Location":
        return Location(parent(self))

    # the read side of pathlib, so callers and tests can use a Location like a Path
    def read_bytes(self) -> bytes:
        return read_bytes(self)

    def read_text(self, encoding: str = "utf-8") -> str:
        return read_bytes(self).decode(encoding)

    def exists(self) -> bool:
        return exists(self)

    def is_file(self) -> bool:
        return isfile(self)

    def is_dir(self) -> bool:
        return isdir(self)

    def as_uri(self) -> str:
        return uri(self)


def location(loc: str | os.PathLike) -> Location:
    """A local path (absolute, ~ expanded: tasks may run in another working folder) or URL as a
    Location; a URL is never turned into a local folder."""
    loc = str(loc)
    return Location(loc if is_url(loc) else os.path.abspath(os.path.expanduser(loc)))


def join(loc: str | os.PathLike, *parts: str) -> str:
    loc = str(loc)
    if is_url(loc):
        return posixpath.join(loc, *parts)
    return os.path.join(loc, *parts)


def parent(loc: str | os.PathLike) -> str:
    loc = str(loc).rstrip("/")
    if is_url(loc):
        protocol, path = loc.split("://", 1)
        return f"{protocol}://{posixpath.dirname(path)}"
    return os.path.dirname(loc)


def basename(loc: str | os.PathLike) -> str:
    return posixpath.basename(str(loc).rstrip("/")) if is_url(loc) else os.path.basename(str(loc))


def resolve(loc: str | os.PathLike) -> str:
    """Absolute and normalised (symlinks resolved for local files), for containment checks."""
    loc = str(loc)
    if is_local(loc):
        return os.path.realpath(_local(loc))
    fs, path = url_to_fs(loc)
    return fs.unstrip_protocol(posixpath.normpath(path))  # one spelling per object (memory:///x = memory://x)


def relpath(target: str, start: str) -> str:
    """`target` relative to the folder `start` (both local, or both in one store), '/'-separated."""
    return relpaths([target], start)[0]


def relpaths(targets: list[str], start: str) -> list[str]:
    """relpath of many targets under one folder (a whole listing: the common case is a prefix cut)."""
    if is_local(start) and all(is_local(t) for t in targets):
        base = os.path.abspath(_local(start))
        prefix = os.path.join(base, "")
        out = []
        for target in targets:
            full = os.path.abspath(_local(target))
            rel = full[len(prefix):] if full.startswith(prefix) else os.path.relpath(full, base)
            out.append(rel.replace(os.sep, "/"))
        return out
    base = url_to_fs(start)[1]
    return [posixpath.relpath(url_to_fs(t)[1], base) for t in targets]


def uri(loc: str | os.PathLike) -> str:
    """A link a browser or a user can follow: file:///abs/path locally, the URL otherwise."""
    return Path(os.path.abspath(_local(loc))).as_uri() if is_local(loc) else str(loc)


def local_model_root(cache_root: str | os.PathLike) -> Path:
    """Where model weights live: they must be local files to load. The cache folder itself
    when it is local, else $CATALOG_INTEL_MODEL_DIR (default ~/.cache/catalog-intel)."""
    if is_local(cache_root):
        return Path(os.path.expanduser(_local(cache_root)))
    return Path(os.path.expanduser(os.environ.get("CATALOG_INTEL_MODEL_DIR", "~/.cache/catalog-intel")))


def _full(fs, path: str, like: str) -> str:
    """A path returned by `fs` (listing) as a location of the same kind as `like`."""
    return path if is_local(like) and not str(like).startswith("file://") else fs.unstrip_protocol(path)


# --- queries --------------------------------------------------------------------------------

def exists(loc: str | os.PathLike) -> bool:
    if is_local(loc):
        return os.path.exists(_local(loc))
    fs, path = url_to_fs(loc)
    return fs.exists(path)


def isfile(loc: str | os.PathLike) -> bool:
    if is_local(loc):
        return os.path.isfile(_local(loc))
    fs, path = url_to_fs(loc)
    return fs.isfile(path)


def isdir(loc: str | os.PathLike) -> bool:
    """A folder (on an object store: a prefix that holds objects)."""
    if is_local(loc):
        return os.path.isdir(_local(loc))
    fs, path = url_to_fs(loc)
    fs.invalidate_cache(path)
    return fs.isdir(path)


def list_dir(folder: str | os.PathLike, prefix: str = "", suffix: str = "") -> list[str]:
    """Files directly in `folder` whose name starts with `prefix` and ends with `suffix`,
    sorted; [] if there is no such folder. Always a fresh listing (no cached one)."""
    folder = str(folder)
    if is_local(folder):
        try:
            names = os.listdir(_local(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(os.path.join(folder, n) for n in names if n.startswith(prefix) and n.endswith(suffix))
    fs, path = url_to_fs(folder)
    fs.invalidate_cache(path)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return sorted(_full(fs, e["name"], folder) for e in entries if e.get("type") == "file"
                  and posixpath.basename(e["name"]).startswith(prefix) and e["name"].endswith(suffix))


def walk_files(root: str | os.PathLike) -> tuple[list[tuple[str, dict | None]], list[str]]:
    """Every regular file under `root`, recursive -> ([(location, listing info)], skipped).
    Dot files and files in dot folders are skipped (and returned as `skipped`);
    listing info is the object store's (size, ETag) so a re-run need not ask per file;
    None for local files (stat_key stats them), {"type": "other"} for what is not a regular file."""
    root = str(root)
    found, skipped = [], []
    if is_local(root):
        folders = [_local(root)]
        while folders:  # os.walk's order and rules (links to folders are not followed), one stat fewer per file
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name.startswith("."):
                            skipped.extend(os.path.join(dp, f) for dp, _, fs_ in os.walk(entry.path) for f in fs_)
                        else:
                            folders.append(entry.path)
                    elif entry.name.startswith("."):
                        skipped.append(entry.path)
                    elif entry.is_symlink() and os.path.isdir(entry.path):
                        continue  # as os.walk: a link to a folder is neither walked nor a file
                    elif entry.is_file():  # regular files and links to them
                        found.append((entry.path, None))
                    else:  # a broken link, a pipe, a socket: listed so that it is accounted for, never read
                        found.append((entry.path, {"type": "other"}))
        return sorted(found), sorted(skipped)
    fs, path = url_to_fs(root)
    fs.invalidate_cache(path)
    for name, info in sorted(fs.find(path, detail=True).items()):
        rel = posixpath.relpath(name, path)
        if info.get("type") != "file" or name.endswith("/"):
            continue
        if any(part.startswith(".") for part in rel.split("/")):
            skipped.append(_full(fs, name, root))
        else:
            found.append((_full(fs, name, root), info))
    return found, skipped


RACY_WINDOW_S = 2.0


def stat_key(loc: str, info: dict | None = None, racy_window_s: float | None = None) -> str | None:
    """What identifies a file's content without reading it. Local: path, size, mtime,
    ctime and inode (git's index uses the same); None if the file was modified in the last
    `racy_window_s` seconds (it may still change within the same timestamp tick). Object
    store: URL, size and ETag (an object is never changed in place). None if unknown."""
    if is_local(loc):
        path = _local(loc)
        try:
            st = os.stat(path)
        except OSError:
            return None
        window = RACY_WINDOW_S if racy_window_s is None else racy_window_s
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < window * 1e9:
            return None
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{os.path.abspath(path)}"
    if info is None:
        try:
            fs, path = url_to_fs(loc)
            info = fs.info(path)
        except OSError:
            return None
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("mtime") or info.get("LastModified")
    return None if not tag else f"{info.get('size')}:{str(tag).strip(chr(34))}:{loc}"


# --- reading --------------------------------------------------------------------------------

def read_bytes(loc: str | os.PathLike) -> bytes:
    if is_local(loc):
        with open(_local(loc), "rb") as fh:
            return fh.read()
    fs, path = url_to_fs(loc)
    return fs.cat_file(path)


def read_text(loc: str | os.PathLike) -> str:
    return read_bytes(loc).decode("utf-8")


def sha256_file(loc: str | os.PathLike, progress: Callable[[int], None] | None = None) -> str:
    """sha256 of a file's bytes, streamed; `progress(n)` is called with each chunk's size."""
    digest = hashlib.sha256()
    fs, path = (None, _local(loc)) if is_local(loc) else url_to_fs(loc)
    with (open(path, "rb") if fs is None else fs.open(path, "rb")) as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def read_parquet(loc: str | os.PathLike, columns: list[str] | None = None) -> pl.DataFrame:
    if is_local(loc):
        return pl.read_parquet(_local(loc), columns=columns)
    return pl.read_parquet(io.BytesIO(read_bytes(loc)), columns=columns)


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


def read_table(loc: str) -> pl.DataFrame:
    """A manifest or table: CSV or Parquet by extension."""
    suffix = os.path.splitext(str(loc))[1].lower()
    if suffix == ".parquet":
        return read_parquet(loc)
    if suffix in {".csv", ".tsv"}:
        return pl.read_csv(io.BytesIO(read_bytes(loc)), separator="\t" if suffix == ".tsv" else ",",
                           infer_schema_length=0)
    raise ValueError(f"{loc}: manifest must be .csv, .tsv or .parquet")


# --- writing --------------------------------------------------------------------------------

def ensure_dir(loc: str | os.PathLike) -> Location:
    """Create a local folder; object stores have no folders (nothing is created)."""
    if is_local(loc):
        os.makedirs(_local(loc), exist_ok=True)
    return location(loc)


def atomic_write_bytes(loc: str | os.PathLike, data: bytes) -> None:
    """Publish `data` at `loc` in one step: readers see the old content or the new, never a part.
    Local: temp file in the target folder, fsync, rename. Object store: one PUT."""
    if not is_local(loc):
        fs, path = url_to_fs(loc)
        fs.pipe_file(path, data)
        return
    target = Path(_local(loc))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        hold(fd)  # the start-up sweep leaves a temp file alone while its writer lives
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(loc: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(loc, text.encode("utf-8"))


def atomic_write_with(loc: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """For libraries that write files themselves (FAISS): `writer(tmp_path)` writes a
    local temp file, which is then published at `loc` like atomic_write_bytes."""
    with tempfile.TemporaryDirectory(prefix=".catalog-intel.") as tmpdir:
        tmp = os.path.join(tmpdir, basename(loc))
        writer(tmp)
        with open(tmp, "rb") as fh:
            atomic_write_bytes(loc, fh.read())


def upload_tree(local_dir: str, loc: str) -> None:
    """Copy a local folder's files to `loc` (each file published in one step).
    Files at `loc` that the folder does not have are removed afterwards."""
    keep = set()
    for dirpath, _, filenames in os.walk(local_dir):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), local_dir).replace(os.sep, "/")
            keep.add(rel)
            with open(os.path.join(dirpath, name), "rb") as fh:
                atomic_write_bytes(join(loc, *rel.split("/")), fh.read())
    found, _ = walk_files(loc)
    remove_files(f for f, _ in found if relpath(f, loc) not in keep)


@contextlib.contextmanager
def local_mirror(loc: str | os.PathLike):
    """A local folder for a library that only writes to disk (GX's stores): the folder itself
    when `loc` is local, else a temporary copy of it, uploaded back when the block ends."""
    if is_local(loc):
        os.makedirs(_local(loc), exist_ok=True)
        yield Path(_local(loc))
        return
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=".mirror."))
    try:
        found, _ = walk_files(loc)
        for f, _ in found:
            target = tmp / relpath(f, str(loc))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read_bytes(f))
        yield tmp
        upload_tree(str(tmp), str(loc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_tree(local_dir: str, loc: str | os.PathLike) -> None:
    """Replace the folder `loc` by the local folder `local_dir` (which is consumed).
    Local: the new folder is staged beside it, the old one renamed aside, the new one renamed
    in, then the old one deleted: a kill at any point leaves a whole folder (old or new) in
    place or aside. Object store: file by file."""
    import shutil

    if not is_local(loc):
        upload_tree(local_dir, loc)
        return
    target = _local(loc).rstrip(os.sep)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staged, aside = f"{target}.new-{tag}", f"{target}.old-{tag}"
    try:
        os.rename(local_dir, staged)
    except OSError:  # another file system: copy beside the target first
        shutil.copytree(local_dir, staged)
        shutil.rmtree(local_dir, ignore_errors=True)
    had_old = os.path.isdir(target)
    if had_old:
        os.rename(target, aside)
    try:
        os.rename(staged, target)
    except OSError:
        if had_old:
            os.rename(aside, target)  # put the old folder back
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if had_old:
        shutil.rmtree(aside, ignore_errors=True)


def remove_files(locs: Iterable[str | os.PathLike]) -> None:
    for loc in locs:
        if is_local(loc):
            Path(_local(loc)).unlink(missing_ok=True)
        else:
            fs, path = url_to_fs(loc)
            try:
                fs.rm_file(path)
            except FileNotFoundError:
                pass


def write_parquet(frame: pl.DataFrame, loc: str | os.PathLike) -> int:
    """Publish `frame` as Parquet in one step; returns the bytes written."""
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=True)
    atomic_write_bytes(loc, buf.getvalue())
    return buf.tell()


def write_csv(frame: pl.DataFrame, loc: str | os.PathLike, quote_style: str = "necessary") -> int:
    """Publish `frame` as CSV in one step; returns the bytes written."""
    buf = io.BytesIO()
    frame.write_csv(buf, quote_style=quote_style)
    atomic_write_bytes(loc, buf.getvalue())
    return buf.tell()


# --- content-addressed stores ---------------------------------------------------------------

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
