"""prefect.yaml works as documented: local server + process worker, `prefect deploy`,
`prefect deployment run`."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from conftest import make_source

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_deploy_and_run_adhoc_deployment(tmp_path, config_file):
    if shutil.which("curl") is None:
        pytest.skip("scripts/prefect-local.sh needs curl")
    bin_dir = str(Path(sys.executable).parent)
    port = _free_port()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_PORT": str(port), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_LOGGING_LEVEL": "INFO"}
    env.pop("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", None)
    work = tmp_path / "repo"  # a copy: the test must not leave state files in the checkout
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".venv", ".git", "out", "__pycache__", ".prefect-local"))
    out = tmp_path / "out"
    source = make_source(tmp_path / "src", 4)  # what the deployment runs on matters, not how much

    def sh(*cmd, timeout=240):
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)

    try:
        started = sh("scripts/prefect-local.sh", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        deployed = sh("prefect", "--no-prompt", "deploy", "--all")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "catalog/nightly" in deployed.stdout and "catalog/adhoc" in deployed.stdout
        ran = sh("prefect", "deployment", "run", "catalog/adhoc", "--param", f"source={source}",
                 "--param", f"out_dir={out}", "--param", f"config_path={config_file}", "--param", "no_llm=true",
                 "--param", f"cache_dir={tmp_path / 'cache'}", "--watch", "--watch-timeout", "300", timeout=330)
        assert "Completed" in ran.stdout, ran.stdout[-3000:] + ran.stderr[-3000:]
        assert pl.read_csv(out / "catalog.csv").height == 4
        nightly = sh("prefect", "deployment", "inspect", "catalog/nightly")
        assert "0 2 * * *" in nightly.stdout
    finally:
        sh("scripts/prefect-local.sh", "stop", timeout=60)
