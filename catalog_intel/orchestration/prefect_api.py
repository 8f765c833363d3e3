"""The Prefect API that a command-line run reports to.

With PREFECT_API_URL set (a Prefect server, as for deployments and nightly schedules) the run
uses it. Without it Prefect starts a temporary server when the flow begins and waits for it
(5-12 s). `TemporaryServer.launch()` starts that same server, the uvicorn command of Prefect 3's
`SubprocessASGIServer`, as the run's first step instead: it comes up in its own process, on
the other core, while this one imports torch and loads CLIP, and the flow runs with its URL.
Prefect's launcher itself is not called because importing it (`prefect.server`, 2.5 s under this
process's GIL) would cost most of what the early start saves.

The server lives until this process exits, after Prefect has drained its log and event queues
into it (Prefect stops its own temporary server the same way), and one serves every run
of the process.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from catalog_intel.errors import ServerStartError

from catalog_intel import processes

# Prefect's own temporary server sets these: no UI, no background services.
_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
_PORT_IN_USE = 3  # uvicorn's exit status when it cannot bind


class TemporaryServer:
    _instance: TemporaryServer | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._stderr = tempfile.TemporaryFile()
        self._ready = False

    @classmethod
    def launch(cls) -> TemporaryServer:
        """The process's temporary server, started (not yet waited for) on first use."""
        with cls._lock:
            if cls._instance is None or cls._instance.process is None:
                cls._instance = cls()
                cls._instance._spawn()
                atexit.register(cls._instance.stop)
            return cls._instance

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self) -> None:
        import prefect
        from prefect.settings import get_current_settings

        self.port = _free_port()
        env = {**_SERVER_ENV, **get_current_settings().to_environment_variables(exclude_unset=True)}
        self._stderr.seek(0)
        self._stderr.truncate()
        # Dies with this process even on SIGKILL (a parent-death signal); no storage credentials.
        self.process = processes.spawn(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parents[1]), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"],
            env=env, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def wait_ready(self, timeout_s: float | None = None) -> str:
        """Block until the server answers its health check; returns the API URL."""
        if self._ready:
            return self.api_url
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        timeout_s = timeout_s or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status == _PORT_IN_USE:  # another process took the port between the pick and the bind
                self._spawn()
                continue
            if status is not None:
                raise ServerStartError(f"Prefect's temporary server exited with status {status} before it was "
                                       f"ready: {self._stderr_tail()}. Start one yourself (`prefect server start`) "
                                       "and set PREFECT_API_URL to its /api address.")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        self._ready = True
                        return self.api_url
            time.sleep(0.1)
        self.stop()
        raise ServerStartError(f"Prefect's temporary server did not answer within {timeout_s:.0f} s "
                               f"({self._stderr_tail() or 'nothing on its stderr'}). Raise "
                               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS on a slow or busy machine, or start a "
                               "server (`prefect server start`) and set PREFECT_API_URL to its /api address.")

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-1500:].decode(errors="replace").strip()

    def stop(self) -> None:
        process, self.process, self._ready = self.process, None, False
        processes.stop(process)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_api() -> TemporaryServer | None:
    """The run's first step: a temporary server starts now, unless PREFECT_API_URL (environment or
    profile) names a server, or temporary servers are switched off (then Prefect says what is missing)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    return TemporaryServer.launch()


@contextlib.contextmanager
def using_api(server: TemporaryServer | None):
    """Run the flow against `server` (waited for here), or the configured API when None. The URL
    is set in Prefect's settings, so Dask workers, which get the flow's settings, report to it."""
    if server is None:
        yield
        return
    from prefect.settings import (PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_UI_URL,
                                  temporary_settings)

    # No UI URL: this server serves no UI, so Prefect must not print links to one. No heartbeats:
    # they let a lasting server mark crashed runs, and this one ends with the run; the heartbeat
    # thread also held up the end of every flow by up to a second (it sleeps in 1 s steps).
    with temporary_settings(updates={PREFECT_API_URL: server.wait_ready(), PREFECT_UI_URL: "",
                                     PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
