"""scripts/prefect-local.sh stop stops everything start started, children included
(the server's uvicorn child, the worker's flow-run processes), using a stand-in `prefect`
whose processes leave children behind the way the real ones do."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FAKE_PREFECT = textwrap.dedent('''\
    #!{python}
    """Stand-in for the prefect CLI: `server start` and `worker start` each start a child that
    outlives them (like uvicorn / a flow run) and record every pid in $FAKE_PIDS."""
    import http.server, os, subprocess, sys, time

    def record(pid):
        with open(os.environ["FAKE_PIDS"], "a") as fh:
            fh.write(f"{{pid}}\\n")

    args = sys.argv[1:]
    if args[:2] in (["server", "start"], ["worker", "start"]):
        record(os.getpid())
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        record(child.pid)
        if args[0] == "server":
            port = int(args[args.index("--port") + 1])

            class Health(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200); self.end_headers(); self.wfile.write(b"true")

                def log_message(self, *a):
                    pass

            http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
        time.sleep(600)
    sys.exit(0)  # work-pool inspect / create
''')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as stopped
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def test_stop_stops_every_process_start_started(tmp_path):
    if shutil.which("curl") is None or shutil.which("setsid") is None:
        pytest.skip("scripts/prefect-local.sh needs curl and setsid")
    work = tmp_path / "repo"
    (work / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "prefect-local.sh", work / "scripts")
    fake = tmp_path / "prefect"
    fake.write_text(FAKE_PREFECT.format(python=sys.executable))
    fake.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pids = tmp_path / "pids"
    env = {**os.environ, "PREFECT": str(fake), "PREFECT_PORT": str(port), "FAKE_PIDS": str(pids)}
    script = str(work / "scripts" / "prefect-local.sh")
    try:
        started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        for _ in range(100):  # the worker records its pids just after start returns
            if pids.exists() and len(pids.read_text().split()) == 4:
                break
            time.sleep(0.1)
        recorded = [int(p) for p in pids.read_text().split()]
        assert len(recorded) == 4 and all(_alive(p) for p in recorded)
        stopped = subprocess.run([script, "stop"], env=env, capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and "stopped worker" in stopped.stdout and "stopped server" in stopped.stdout
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in recorded) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in recorded if _alive(p)] == []
        assert not list((work / ".prefect-local").glob("*.pid"))
    finally:
        for p in [int(x) for x in pids.read_text().split()] if pids.exists() else []:
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
