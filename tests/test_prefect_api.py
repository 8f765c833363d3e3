"""The temporary Prefect server a command-line run starts at its first step."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import pytest

from catalog_intel.errors import ServerStartError
from catalog_intel.orchestration.prefect_api import TemporaryServer, start_api, using_api
from catalog_intel.orchestration import prefect_api


@pytest.fixture()
def no_api_url():
    """No PREFECT_API_URL, as for a user's first run (the session's test harness sets one)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


def test_a_run_without_an_api_url_gets_one_temporary_server_that_serves_prefect_and_stops(no_api_url):
    server = start_api()
    assert server is not None and start_api() is server  # one per process
    url = server.wait_ready()
    assert url == f"http://127.0.0.1:{server.port}/api"
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        assert json.load(response) is True
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_UI_URL

    @flow
    def which_api() -> str:
        return PREFECT_API_URL.value()

    with using_api(server):
        assert PREFECT_UI_URL.value() == ""  # this server serves no UI: no links to one
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None  # nothing outlives the run to read them
        assert which_api() == url
        runs = _post(f"{url}/flow_runs/filter", {"flows": {"name": {"any_": ["which-api"]}}})
        assert [run["state_type"] for run in runs] == ["COMPLETED"]  # the run was recorded by this server
    assert PREFECT_API_URL.value() is None  # only the run is pointed at it
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    fresh = start_api()
    assert fresh is not server and fresh.port != server.port  # a later run starts a fresh one
    fresh.stop()


def test_a_configured_api_url_starts_nothing():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert start_api() is None


def test_a_server_that_dies_at_start_is_reported_with_its_stderr_and_what_to_do(monkeypatch):
    def spawn(self) -> None:
        self.port = 9
        self.process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stderr.write('no database here'); "
                                         "sys.exit(1)"], stderr=self._stderr)

    monkeypatch.setattr(TemporaryServer, "_spawn", spawn)
    server = TemporaryServer()
    server._spawn()
    with pytest.raises(ServerStartError, match=r"exited with status 1 .*no database here.*PREFECT_API_URL"):
        server.wait_ready(timeout_s=30)


def test_a_server_that_never_answers_times_out_with_the_setting_to_raise(monkeypatch):
    def spawn(self) -> None:
        self.port = _closed_port()
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stderr=self._stderr)

    monkeypatch.setattr(TemporaryServer, "_spawn", spawn)
    server = TemporaryServer()
    server._spawn()
    process = server.process
    with pytest.raises(ServerStartError, match="did not answer within 1 s.*PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT"):
        server.wait_ready(timeout_s=1)
    assert process.poll() is not None  # not left running


def test_a_port_taken_before_uvicorn_binds_it_is_retried_on_another(monkeypatch):
    spawned = []
    real_spawn = TemporaryServer._spawn

    def spawn(self) -> None:
        if not spawned:  # the first attempt loses the race for its port: uvicorn exits with status 3
            self.port = 9
            self.process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
        else:
            real_spawn(self)
        spawned.append(self.port)

    monkeypatch.setattr(TemporaryServer, "_spawn", spawn)
    server = TemporaryServer()
    server._spawn()
    try:
        assert server.wait_ready() == f"http://127.0.0.1:{spawned[-1]}/api"
        assert len(spawned) == 2 and spawned[-1] != 9
    finally:
        server.stop()


def _post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _closed_port() -> int:
    return prefect_api._free_port()  # free now; nothing will listen on it
