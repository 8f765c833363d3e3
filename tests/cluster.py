"""A real Dask cluster for the tests: a `dask scheduler` and `dask worker` processes, each its own
OS process (and process group) talking TCP on 127.0.0.1.

One cluster serves the session (the `dask_cluster` fixture). A test may kill a worker or add one;
`reset()` restarts the killed and stops the added, so the next test finds w1 and w2 again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from catalog_intel import processes

REPO = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).parent / "dask"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class DaskCluster:
    def __init__(self, logs: Path, workers: int = 2):
        if not DASK.exists():
            pytest.skip(f"{DASK} is missing: install the dask extra")
        self.logs = logs
        self.names = [f"w{i}" for i in range(1, workers + 1)]
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.procs: dict[str, subprocess.Popen] = {}
        self._env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def _spawn(self, name: str, *args: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "a") as log:
            self.procs[name] = processes.spawn([str(DASK), *args], env=self._env, cwd=REPO, stdout=log,  # dies with us
                                               stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self, name: str, resources: str | None = None) -> None:
        extra = ["--resources", resources] if resources else []
        self._spawn(name, "worker", self.address, "--host", "127.0.0.1", "--name", name, "--nthreads", "1",
                    "--nworkers", "1", "--no-dashboard", "--memory-limit", "0", *extra)

    def stop_worker(self, name: str) -> None:
        proc = self.procs.pop(name)
        kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            kill_group(proc, signal.SIGKILL)
            proc.wait(10)

    @property
    def worker_address(self) -> dict[str, str]:
        """Worker name -> address, as the scheduler knows them now."""
        return self.wait_for(None)

    def wait_for(self, names: list[str] | None, timeout: float = 120) -> dict[str, str]:
        """Worker name -> address once the scheduler knows exactly `names` (None: at once)."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout=60) as client:
            while True:
                known = {w["name"]: a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
                if names is None or sorted(known) == sorted(names):
                    return known
                assert time.monotonic() < deadline, f"workers {sorted(known)} after {timeout:.0f} s, wanted {names}"
                time.sleep(0.2)

    @contextmanager
    def extra_worker(self, name: str, resources: str | None = None):
        """One more worker for the length of a block; yields its address."""
        self.start_worker(name, resources)
        try:
            yield self.wait_for([*self.names, name])[name]
        finally:
            self.stop_worker(name)

    def reset(self) -> None:
        for name in [n for n in self.procs if n not in self.names and n != "scheduler"]:
            self.stop_worker(name)
        dead = [n for n in self.names if n not in self.procs or self.procs[n].poll() is not None]
        if dead:  # the scheduler must have dropped a dead worker before its name can be taken again
            self.wait_for([n for n in self.names if n not in dead])
            for name in dead:
                self.start_worker(name)
        self.wait_for(self.names)

    def __enter__(self) -> "DaskCluster":
        try:
            self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
                        "--no-dashboard")
            for name in self.names:
                self.start_worker(name)
            self.wait_for(self.names)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for proc in reversed(list(self.procs.values())):
            kill_group(proc, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                kill_group(proc, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()
