"""A run's children die with it, even on SIGKILL of the run's own process (the OOM killer),
and storage credentials reach no child's environment, log or output file."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli, link_model, make_source, write_config

REPO = Path(__file__).resolve().parents[1]
SECRET = "AKIAFAKE123"


def _children() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descendants(root: int) -> dict[int, str]:
    """pid -> "start time|command line" of every process below `root`."""
    parents = _children()
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = _identity(child)
                todo.append(child)
    return {pid: ident for pid, ident in found.items() if ident}


def _identity(pid: int) -> str:
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
    return f"{start}|{cmd}"


def _alive(pid: int, ident: str) -> bool:
    """Still the same process and not a zombie (a pid may have been reused)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and _identity(pid) == ident


def _config(tmp_path: Path, tiny_clip: dict, **sections: dict) -> Path:
    return write_config(tmp_path / "catalog-intel.toml", tiny_clip, {
        **sections, "paths": {"storage_options": {"s3": {"key": SECRET, "secret": f"{SECRET}-secret"}}}}, llm=None)


def _cli(src: Path, out: Path, cache: Path, config: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """`catalog-intel run`; `env` (cli_env) points it at the session's Prefect server instead of a temporary one."""
    return cli("run", src, "--out", out, "--cache-dir", cache, "--config", config, *extra, env=env)


def _kill_when_started(run: subprocess.Popen, marker: str, timeout_s: float) -> dict[int, str]:
    """SIGKILL the run's own pid (not its group) once a descendant whose command line holds
    `marker` is up; returns every descendant it had at that moment."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert run.poll() is None, f"the run ended before its {marker} child was seen:\n{run.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no {marker} child within {timeout_s} s"
        children = _descendants(run.pid)
        if any(marker in ident for ident in children.values()):
            break
        time.sleep(0.05)
    for pid, ident in children.items():  # no child may carry the storage credentials
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:  # gone meanwhile
            continue
        assert SECRET.encode() not in environ, f"the secret is in the environment of {ident}"
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    run.stdout.close()
    return children


def _assert_all_gone(children: dict[int, str], within_s: float = 10) -> None:
    """Every recorded child gone within `within_s` (a dead process stays dead: no need to wait longer)."""
    deadline = time.monotonic() + within_s
    while any(_alive(pid, ident) for pid, ident in children.items()) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: ident.split("|", 1)[1][:160] for pid, ident in children.items() if _alive(pid, ident)}
    for pid in left:  # don't leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert left == {}, f"children alive 10 s after kill -9 of the run: {left}"


def _next_run_is_clean(src: Path, out: Path, cache: Path, config: Path, cli_env: dict) -> str:
    """The next run over the same output and cache succeeds and leaves no partial file (it reports to the
    session's Prefect server: what the killed run left behind is the question, not the server's start)."""
    run = _cli(src, out, cache, config, "--no-llm", env=cli_env)
    log, _ = run.communicate(timeout=600)
    assert run.returncode == 0, log[-3000:]
    assert [p.name for p in out.rglob(".*.tmp")] == [] and [p.name for p in cache.rglob(".*.partial")] == []
    assert "12 rows" in log or "rows 12" in log or (out / "catalog.parquet").exists(), log[-2000:]
    return log


def _assert_secret_nowhere(out: Path, log: str) -> None:
    assert SECRET not in log
    leaked = [str(p) for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []
    assert (out / "run_config.json").is_file() and (out / "report" / "index.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("runner, marker", [("local", "prefect.server.api.server"), ("dask", "spawn_main")],
                         ids=["prefect-server", "dask-workers"])
def test_kill_9_of_the_run_takes_its_children_with_it(tmp_path, tiny_clip, fake_llm, cli_env, runner, marker):
    if runner == "dask" and importlib.util.find_spec("prefect_dask") is None:
        pytest.skip("the dask extra is not installed")
    src = make_source(tmp_path / "src", 12)
    out, cache = tmp_path / "out", tmp_path / "cache"
    config = _config(tmp_path, tiny_clip, llm={"base_url": fake_llm.base_url, "timeout_s": 5},
                     runner={"task_runner": runner, "workers": 1})
    # the Dask case reports to the session's server: its question is the workers, the other one's the server
    first = _cli(src, out, cache, config, env=cli_env if runner == "dask" else None)
    children = _kill_when_started(first, marker, 300)
    _assert_all_gone(children)
    log = _next_run_is_clean(src, out, cache, config, cli_env)
    _assert_secret_nowhere(out, log)


@pytest.mark.slow
def test_kill_9_of_the_run_takes_the_embedded_llm_with_it(tmp_path, tiny_clip, real_gguf, cli_env):
    src = make_source(tmp_path / "src", 12)
    out, cache = tmp_path / "out", tmp_path / "cache"
    link_model(cache, real_gguf)  # the verified model in place: the run goes straight to starting llama.cpp
    config = _config(tmp_path, tiny_clip, llm={"embedded_threads": 1, "embedded_nice": 0})
    # killed while the llama.cpp child loads the model: it does not read its stdin yet, so only
    # the parent-death signal can stop it
    children = _kill_when_started(_cli(src, out, cache, config), "_child_main", 600)
    _assert_all_gone(children)
    _next_run_is_clean(src, out, cache, config, cli_env)


def test_a_worker_process_gets_storage_options_with_the_config_not_the_environment(tmp_path):
    """What a Dask worker sees: a fresh process, this process's environment, the task's config pickled;
    the task sets the options up there (building or unpickling settings has no side effect)."""
    import cloudpickle

    from catalog_intel.io import filesystem as storage
    from catalog_intel.settings import load_config

    config = load_config(None, {"paths.storage_options": {"s3": {"key": SECRET}}})
    storage.configure(config.paths.storage_options)
    try:
        assert all(SECRET not in v for v in os.environ.values())  # nothing for children to inherit
        worker = ("import pickle, sys, os; from catalog_intel.io import filesystem as storage; "
                  "from catalog_intel.orchestration.tasks import on_worker; "
                  "config = pickle.loads(sys.stdin.buffer.read()); assert storage._protocol_options('s3') == {}; "
                  "on_worker(config); print(storage._protocol_options('s3')['key'])")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        got = subprocess.run([sys.executable, "-c", worker], input=cloudpickle.dumps(config), env=env,
                             capture_output=True, check=True, timeout=120)
        assert got.stdout.decode().strip() == SECRET
    finally:
        storage.configure({})


DRIVER = """
import sys, threading
from catalog_intel import processes
box = []
t = threading.Thread(target=lambda: box.append(processes.spawn(["sleep", "120"])))
t.start(); t.join()  # the thread that asked is gone: the child must outlive it, not die with it
print(box[0].pid, flush=True)
sys.stdin.read()
"""


def test_a_spawned_child_outlives_the_asking_thread_and_dies_with_the_process():
    env = {**os.environ, "PYTHONPATH": str(REPO), "CATALOG_INTEL_STORAGE_OPTIONS": SECRET}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(driver.stdout.readline())
        ident = _identity(child)
        time.sleep(0.5)
        assert _alive(child, ident) and "sleep 120" in ident
        assert SECRET.encode() not in Path(f"/proc/{child}/environ").read_bytes()
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(child, ident) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child, ident), "the child outlived its parent's SIGKILL"
    finally:
        driver.kill()
        driver.wait()
        driver.stdin.close()
        driver.stdout.close()


def test_stop_asks_politely_then_forces():
    from catalog_intel import processes

    polite = processes.spawn([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    assert processes.stop(polite, 10, close_stdin=True) == 0  # exited on EOF, no signal needed
    stubborn = processes.spawn([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    stubborn.stdout.readline()
    started = time.monotonic()
    assert processes.stop(stubborn, 0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5
    stubborn.stdout.close()
    assert processes.stop(None) is None
