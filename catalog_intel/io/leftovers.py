"""Temporary files a killed run leaves behind (`.partial`, `.tmp`), and their removal.

A writer holds an flock on its temporary file while it writes (`hold`); the lock dies with
its process, even on SIGKILL. The start-up sweep removes a temporary file only when nobody
holds its lock and it is older than the sweep's `before` time, so it never takes the file a
live run (another output folder sharing the cache) is writing.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

SUFFIXES = (".partial", ".tmp")
GRACE_S = 60.0  # a file this fresh may sit between its creation and its writer's lock


def hold(fd: int) -> None:
    """Mark the open temporary file `fd` as being written by this process (until it is closed)."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # gone already, or not ours to read: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases our probe lock


def sweep(folder: str | os.PathLike, before: float | None = None, say=None) -> list[Path]:
    """Remove the stale temporary files under the local `folder` (hidden files ending in
    SUFFIXES, unlocked, last written before `before`, default GRACE_S ago). Returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - GRACE_S if before is None else before
    removed = []
    for root, _, files in os.walk(folder):
        for name in files:
            if not (name.startswith(".") and name.endswith(SUFFIXES)):
                continue
            path = Path(root) / name
            try:
                stale = path.stat().st_mtime < cutoff and not _held(path)
                if stale:
                    path.unlink()
            except FileNotFoundError:
                continue
            if stale:
                removed.append(path)
    if removed and say is not None:
        names = ", ".join(p.name for p in removed[:3]) + (" ..." if len(removed) > 3 else "")
        say(f"removed {len(removed)} temporary file(s) left by an interrupted run under {folder}: {names}")
    return removed
