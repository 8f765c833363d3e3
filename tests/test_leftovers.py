"""Temporary files of a killed run: the start-up sweep removes them, never a live writer's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from catalog_intel.io import leftovers
from catalog_intel.io.runlock import RunLock
from test_local_llm import BLOB, CHUNKS, TINY, _make_parts

REPO = Path(__file__).resolve().parents[1]
HOUR_AGO = time.time() - 3600

# The real assembly, stopped half-way: its second part is a FIFO nobody writes to.
ASSEMBLE = """
import sys
from pathlib import Path
from catalog_intel.copywriting import local_llm
from test_local_llm import TINY
parts, models = [Path(p) for p in sys.argv[1:3]], Path(sys.argv[3])
local_llm._assemble(parts, models, models / "tiny-test-model.gguf", TINY.sha256, TINY.size, TINY, False)
"""
HOLD = """
import os, sys, tempfile, time
from catalog_intel.io import leftovers
fd, name = tempfile.mkstemp(prefix=".live.", suffix=".partial", dir=sys.argv[1])
leftovers.hold(fd)
print(name, flush=True)
time.sleep(120)
"""


def _python(code: str, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, stdout=subprocess.PIPE, text=True)


def _wait_for(pred, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while not (found := pred()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.05)
    return found


def _open_writer(fifo: Path) -> int | None:
    """The FIFO's write end once a reader has it open (None before)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def test_a_killed_assembly_leaves_a_partial_that_the_next_one_removes(tmp_path):
    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    fifo = tmp_path / "stuck-part"
    os.mkfifo(fifo)
    first = _make_parts(tmp_path / "parts", CHUNKS)[0]
    killed = _python(ASSEMBLE, first, fifo, models)
    partial = _wait_for(lambda: list(models.glob(".tiny-test-model.gguf.*.partial")), "the .partial file")[0]
    stuck = _wait_for(lambda: _open_writer(fifo), "the assembly reaching the stuck part")  # part 1 copied
    # A live writer's old file is kept: only a file nobody holds is stale.
    live = _python(HOLD, models)
    live_partial = Path(live.stdout.readline().strip())
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    os.close(stuck)
    try:
        os.utime(partial, (HOUR_AGO, HOUR_AGO))  # the killed run was an hour ago
        os.utime(live_partial, (HOUR_AGO, HOUR_AGO))
        from catalog_intel.copywriting.local_llm import ensure_gguf

        out = ensure_gguf(tmp_path / "cache", progress=False, spec=TINY,
                          parts=_make_parts(tmp_path / "parts", CHUNKS))
        assert out.read_bytes() == BLOB
        assert not partial.exists(), "the killed assembly's .partial is still there"
        assert live_partial.exists(), "the sweep removed a file a live process is writing"
        assert sorted(p.name for p in models.iterdir()) == sorted([out.name, out.name + ".sha256", live_partial.name])
    finally:
        live.kill()
        live.wait()
        live.stdout.close()
        killed.stdout.close()


def test_sweep_keeps_fresh_and_ordinary_files(tmp_path):
    stale = tmp_path / "a" / ".catalog.csv.x1.tmp"
    fresh = tmp_path / ".catalog.csv.x2.tmp"
    ordinary = tmp_path / "a" / "notes.partial"  # not a hidden temp file of ours
    for p in (stale, fresh, ordinary):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    os.utime(stale, (HOUR_AGO, HOUR_AGO))
    os.utime(ordinary, (HOUR_AGO, HOUR_AGO))
    said = []
    assert leftovers.sweep(tmp_path, say=said.append) == [stale]
    assert fresh.exists() and ordinary.exists()
    assert said == [f"removed 1 temporary file(s) left by an interrupted run under {tmp_path}: {stale.name}"]


def test_taking_the_output_lock_removes_the_temp_files_a_killed_run_left_there(tmp_path):
    out = tmp_path / "out"
    (out / "report").mkdir(parents=True)
    left = [out / ".catalog.parquet.abc.tmp", out / "report" / ".index.html.def.tmp"]
    for p in left:
        p.write_bytes(b"half")
    (out / "catalog.csv").write_text("image\n")
    time.sleep(0.05)  # older than the lock (file times have a coarse clock on some file systems)
    with RunLock(out):
        assert [p for p in left if p.exists()] == []
        assert (out / "catalog.csv").exists()
