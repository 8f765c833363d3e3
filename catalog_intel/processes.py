"""Child processes of a run: started so that they die with it, and stopped one way.

Ground level: imports nothing from the rest of the package.

A child started with `spawn` gets the kernel's parent-death signal (Linux
`prctl(PR_SET_PDEATHSIG)`), so it is killed even when the run itself is killed with
SIGKILL (the OOM killer), which runs no atexit handler and no `finally`. Its environment
is this process's without the variables in `PRIVATE_ENV` (credentials go to a child only
when its caller passes them explicitly in `env`).
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import Any, Callable, Mapping

_PR_SET_PDEATHSIG = 1
# Variables that may hold credentials and that no child inherits unasked.
PRIVATE_ENV = ("CATALOG_INTEL_STORAGE_OPTIONS",)

_prctl = None
if sys.platform.startswith("linux"):
    try:  # looked up here, not in the forked child (no dlopen between fork and exec)
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None


def child_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: `base` (default this process's) less PRIVATE_ENV, plus `extra`."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in PRIVATE_ENV}
    env.update(extra or {})
    return env


def _die_with(parent: int, sig: int) -> Callable[[], None]:
    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # The parent may have died between fork and prctl; then no signal would ever come.
        if os.getppid() != parent:
            os._exit(1)
    return preexec


class _Spawner:
    """One daemon thread that forks every child. The parent-death signal fires when the
    *thread* that forked the child exits, not the process: a child forked from a task's worker
    thread would be killed when that thread ends. A daemon thread lives until the process does
    (it is not joined at interpreter exit, so atexit handlers can still stop the children)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="child-spawner", daemon=True)
                self._thread.start()
        done: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((fn, done))
        ok, value = done.get()
        if not ok:
            raise value
        return value

    def _loop(self) -> None:
        while True:
            fn, done = self._jobs.get()
            try:
                done.put((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                done.put((False, exc))


_spawner = _Spawner()


def spawn(args: list[str], *, env: Mapping[str, str] | None = None, death_signal: int = signal.SIGKILL,
          **popen_kwargs: Any) -> subprocess.Popen:
    """`subprocess.Popen(args, ...)` for a child that dies with this process. `env` is added to
    `child_env()` (never the raw environment, so PRIVATE_ENV stays here)."""
    parent = os.getpid()
    kwargs = {**popen_kwargs, "env": child_env(env), "preexec_fn": _die_with(parent, death_signal)}
    return _spawner.run(lambda: subprocess.Popen(args, **kwargs))


def stop(proc: subprocess.Popen | None, timeout_s: float = 5.0, *, close_stdin: bool = False) -> int | None:
    """Stop `proc` and reap it: first close its stdin (a child that exits on EOF) when asked,
    then SIGTERM, then SIGKILL, waiting `timeout_s` after each. Returns its exit status."""
    if proc is None:
        return None
    steps: list[Callable[[], None]] = []
    if close_stdin and proc.stdin is not None:
        steps.append(proc.stdin.close)
    steps += [proc.terminate, proc.kill]
    for step in steps:
        if proc.poll() is not None:
            break
        try:
            step()
        except (OSError, ValueError):  # already gone, or stdin already closed
            pass
        try:
            proc.wait(timeout=timeout_s)
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.stdin is not None and not proc.stdin.closed:
        try:
            proc.stdin.close()
        except OSError:
            pass
    return proc.wait()
