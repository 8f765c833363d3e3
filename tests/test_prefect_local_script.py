"""scripts/prefect-local.sh signals only the process groups it started, never a stale pid's.

`PREFECT` points at a stand-in for the prefect CLI (a real HTTP server answering /api/health for
`server start`, a process with a child for `worker start`), so the script's own start and stop run
for real, without a Prefect server's start-up cost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "prefect-local.sh"
FAKE_PREFECT = """#!/usr/bin/env bash
case "$1 $2" in
  "server start") mkdir -p "$FAKE_WWW/api"; echo ok >"$FAKE_WWW/api/health"
                  exec "$PYTHON" -m http.server "$PREFECT_PORT" --bind 127.0.0.1 --directory "$FAKE_WWW" ;;
  "worker start") sleep 300 & wait ;;
  *) exit 0 ;;
esac
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def env(tmp_path):
    fake = tmp_path / "prefect"
    fake.write_text(FAKE_PREFECT)
    fake.chmod(0o755)
    return {**os.environ, "PREFECT": str(fake), "PREFECT_LOCAL_STATE": str(tmp_path / "state"),
            "PREFECT_PORT": str(_free_port()), "FAKE_WWW": str(tmp_path / "www"), "PYTHON": sys.executable}


def _script(command: str, env: dict) -> str:
    done = subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _group(pgid: int) -> list[int]:
    members = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def _bystander() -> subprocess.Popen:
    """An unrelated live process that leads its own process group, as a reused pid could."""
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def test_stop_leaves_an_unrelated_process_behind_a_stale_pid_file_alone(env):
    state = Path(env["PREFECT_LOCAL_STATE"])
    state.mkdir()
    sleeper, legacy = _bystander(), _bystander()
    try:
        start = Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        (state / "server.pid").write_text(f"{sleeper.pid} {int(start) - 100}\n")  # same pid, earlier process
        (state / "worker.pid").write_text(f"{legacy.pid}\n")  # an old pid file: a bare pid proves nothing
        said = _script("stop", env)
        time.sleep(0.5)
        assert _alive(sleeper.pid) and _alive(legacy.pid)
        assert "server is not running (stale pid file" in said and "worker is not running (stale pid file" in said
        assert list(state.glob("*.pid")) == []
    finally:
        for p in (sleeper, legacy):
            p.kill()
            p.wait()


@pytest.mark.slow
def test_start_then_stop_stops_both_groups_and_only_them(env):
    sleeper = _bystander()
    try:
        said = _script("start", env)
        assert "Prefect server at" in said, said
        state = Path(env["PREFECT_LOCAL_STATE"])
        server, worker = (int((state / f"{n}.pid").read_text().split()[0]) for n in ("server", "worker"))
        deadline = time.monotonic() + 30
        while len(_group(worker)) < 2 and time.monotonic() < deadline:  # the worker's child is up
            time.sleep(0.1)
        members = _group(server) + _group(worker)
        assert len(members) >= 3, members
        assert "already running" in _script("start", env)  # the pid files are recognised as ours
        _script("stop", env)
        time.sleep(0.5)
        assert [p for p in members if _alive(p)] == []
        assert _alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
