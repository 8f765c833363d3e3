"""One run per output folder at a time."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

from filelock import FileLock, Timeout

from catalog_intel.errors import OutputLocked
from catalog_intel.io import leftovers
from catalog_intel.io.filesystem import ensure_dir, is_local, join


def lock_file(out_dir) -> str:
    """OUT/.catalog-intel.lock for a local folder. An object store has no locks, so for a
    URL the lock is a local file named by the URL's hash (runs on this machine exclude
    each other; nothing is created at the URL, and no folder named after it here)."""
    if is_local(out_dir):
        return join(ensure_dir(out_dir), ".catalog-intel.lock")
    digest = hashlib.sha256(str(out_dir).rstrip("/").encode()).hexdigest()[:24]
    folder = ensure_dir(os.path.join(tempfile.gettempdir(), "catalog-intel-locks"))
    return join(folder, f"{digest}.lock")


class RunLock:
    """An OS-level lock (flock): a second run on the same output is refused; a killed
    run's lock dies with its process, so a stale lock file never blocks the next run, and the
    temporary files the killed run left in the output folder are removed on entry."""

    def __init__(self, out_dir):
        self.out_dir = str(out_dir)
        self.path = lock_file(out_dir)
        self._lock = FileLock(self.path, timeout=0)

    def __enter__(self) -> "RunLock":
        try:
            self._lock.acquire()
        except Timeout:
            raise OutputLocked(
                f"another catalog-intel run is writing to {self.out_dir} (lock {self.path}); "
                "wait for it to finish or choose another --out folder"
            ) from None
        if is_local(self.out_dir):  # ours alone now: any unlocked temp file is a killed run's
            leftovers.sweep(self.out_dir.removeprefix("file://"), before=time.time())
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def sweep_cache(cache) -> None:
    """The shared cache's temporary files that no live writer holds (see io/leftovers)."""
    if is_local(cache):
        leftovers.sweep(str(cache).removeprefix("file://"))
