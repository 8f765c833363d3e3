"""One run per output folder at a time."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout


class OutputLocked(RuntimeError):
    pass


class RunLock:
    """An OS-level lock (flock) on OUT/.catalog-intel.lock: a second run on the
    same folder is refused; a killed run's lock dies with its process, so a
    stale lock file never blocks the next run."""

    def __init__(self, out_dir: Path):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / ".catalog-intel.lock"
        self._lock = FileLock(str(self.path), timeout=0)

    def __enter__(self) -> "RunLock":
        try:
            self._lock.acquire()
        except Timeout:
            raise OutputLocked(
                f"another catalog-intel run is writing to {self.path.parent} (lock {self.path}); "
                "wait for it to finish or choose another --out folder"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()
