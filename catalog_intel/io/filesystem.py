"""All file access of the pipeline goes through here, local or object storage alike.

Every location is a plain string: a local path or an fsspec URL (s3://, gs://,
az://, file://, memory://). `fsspec.core.url_to_fs` picks the filesystem, so
the rest of the code never looks at the scheme. Credentials come from the
standard environment (AWS_*, AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS,
AZURE_STORAGE_*) or from `paths.storage_options` in the config (see `configure`);
they are never logged or written anywhere.

Object stores have no rename, so nothing here relies on one for correctness: a
published file is written in one step (one PUT on an object store, which is
all-or-nothing; temp file + rename on a local disk), so a reader sees the old file
or the new one, never half of one (the stores build on this: parquet_store)."""

from __future__ import annotations

import hashlib
import io
import contextlib
import os
import posixpath
import tempfile
import uuid
import threading
import time
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
    task on a worker process sets them from the settings passed to it (orchestration/tasks.py)."""
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
