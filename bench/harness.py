"""The one bench harness: one way to run the pipeline under a timer, one report format, one machine description.

    run_pipeline(source, out, settings={...})  the real `catalog-intel run` in a child process: wall time, CPU time of
                                               it and every process it started, peak RSS, and its run summary
    Timer()                                    wall and CPU time of a block in this process, and the other load
    report(name, figures, json_path)           {"bench", "date", "command", "machine", "figures"}, printed and written

A bench's current result is bench/results/<bench>.json (`--json bench/results/<bench>.json`); history lives in git.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
for _path in (str(REPO), str(REPO / "tests")):  # this checkout's catalog_intel, and the tests' tiny model
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the machine


def machine() -> dict:
    """Cores, memory, CPU model, load average, and the versions that move figures."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
                            "python": platform.python_version(), "platform": platform.platform()}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
        with open("/proc/meminfo") as fh:
            info["memory_gib"] = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    for package in ("torch", "prefect"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[package] = importlib.metadata.version(package)
    if shutil.which("nvidia-smi"):
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True)
        info["gpu"] = gpu.stdout.strip() or None
    return info


# ----------------------------------------------------------------------------- timing in this process


def _busy_s() -> float:
    """CPU seconds every process on the machine has spent (from /proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = (fields + [0] * 7)[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and of the children it has reaped."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    """Wall and CPU time (this process and its reaped children) of a block, and how many cores other processes kept
    busy meanwhile (`foreign_cores`): a busy machine changes every figure."""

    def __enter__(self) -> "Timer":
        self.t0, self.busy0, self.cpu0 = time.perf_counter(), _busy_s(), own_cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = own_cpu_s() - self.cpu0
        other = _busy_s() - self.busy0 - self.cpu
        self.foreign_cores = max(0.0, other / self.wall) if self.wall > 0 else 0.0  # jiffies are coarse: clamp


# ----------------------------------------------------------------------------- running the pipeline


@dataclass
class Run:
    """One `catalog-intel run`: what it cost and what it said."""

    label: str
    wall_s: float
    cpu_s: float  # the CLI process and every process it started and reaped (decode workers, Prefect's server)
    peak_rss_mb: float  # the largest of those processes
    returncode: int
    summary: dict = field(default_factory=dict)  # parse_summary of its accounting line
    output: str = ""  # its stdout

    def figures(self) -> dict:
        return {"label": self.label, "wall_s": round(self.wall_s, 2), "cpu_s": round(self.cpu_s, 2),
                "peak_rss_mb": round(self.peak_rss_mb, 1), "summary": self.summary}


_LINE = re.compile(
    r"catalog-intel: (?P<inputs>\d+) inputs = (?P<rows>\d+) rows \+ (?P<rejects>\d+) rejects"
    r"(?: \+ (?P<skipped>\d+) skipped)? \| embeddings (?P<embeddings_computed>\d+) computed, "
    r"(?P<embeddings_cached>\d+) cached \| LLM (?P<llm_calls>\d+) calls, (?P<llm_cached>\d+) cached, "
    r"(?P<llm_failed>\d+) failed, (?P<llm_retries>\d+) retries \| (?P<seconds>[\d.]+) s"
    r"(?: \((?P<phases>[^)]*)\))?(?: \| (?P<runner>.*))?")


def parse_summary(text: str) -> dict:
    """The run's accounting line (the last one in `text`) as numbers: inputs, rows, rejects, skipped, embeddings and
    LLM counts, `seconds` (the flow's own time), `phases` ({task: seconds}) and `runner`. {} if there is none."""
    matches = list(_LINE.finditer(text))
    if not matches:
        return {}
    m = matches[-1].groupdict()
    summary: dict[str, Any] = {k: int(v) for k, v in m.items() if v is not None and k not in ("seconds", "phases",
                                                                                              "runner")}
    summary["seconds"] = float(m["seconds"])
    summary["phases"] = {name: float(secs) for name, secs in re.findall(r"([\w-]+) ([\d.]+) s", m["phases"] or "")}
    summary["runner"] = (m["runner"] or "").strip()
    return summary


def toml_text(settings: Mapping[str, Any]) -> str:
    """{dotted config key: value} as a TOML file (`clip.batch_size` -> [clip] batch_size = ...)."""
    tables: dict[str, list[str]] = {}
    for key, value in settings.items():
        if value is None:
            continue
        table, _, name = key.rpartition(".")
        if isinstance(value, Path):
            value = str(value)
        tables.setdefault(table, []).append(f"{name} = {json.dumps(value)}")
    return "".join(f"[{t}]\n" + "\n".join(lines) + "\n" for t, lines in tables.items())


def run_pipeline(source: str | Path, out: str | Path, *, settings: Mapping[str, Any] | None = None,
                 cache: str | Path | None = None, no_llm: bool = True, flags: tuple[str, ...] = (),
                 env: Mapping[str, str] | None = None, repo: Path = REPO, label: str = "",
                 check: bool = True) -> Run:
    """`catalog-intel run SOURCE --out OUT` of checkout `repo`, in a child process, as a user starts it. `settings`
    ({dotted config key: value}) become its --config file; `flags` are further CLI flags. The child's stderr (progress)
    goes to ours; its stdout is kept and its accounting line parsed. `check`: a failed run raises, with its output."""
    label = label or Path(out).name
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        config = Path(tmp) / "settings.toml"
        config.write_text(toml_text({"run.max_reject_share": 1.0, **(settings or {})}))
        cmd = [sys.executable, "-m", "catalog_intel.cli", "run", str(source), "--out", str(out), "--config",
               str(config), *(["--cache-dir", str(cache)] if cache else []), *(["--no-llm"] if no_llm else []), *flags]
        child_env = {**os.environ, "PYTHONPATH": str(Path(repo).resolve()), "PREFECT_LOGGING_LEVEL": "WARNING",
                     **(env or {})}
        log(f"  [{label}] catalog-intel run {source} --out {out} ...")
        with open(Path(tmp) / "stdout", "w+") as stdout:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=repo, env=child_env, stdout=stdout, text=True)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, its reaped descendants included
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            stdout.seek(0)
            output = stdout.read()
    run = Run(label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode,
              parse_summary(output), output)
    if check and (run.returncode or not run.summary):
        raise RuntimeError(f"[{label}] catalog-intel run exited with {run.returncode} (its stderr is above):\n"
                           + output[-3000:])
    log(f"  [{label}] {wall:.1f} s wall, {run.cpu_s:.1f} s CPU, flow {run.summary.get('seconds')} s, "
        f"peak RSS {run.peak_rss_mb:.0f} MB")
    return run


@contextlib.contextmanager
def prefect_server() -> Iterator[str]:
    """A Prefect server that is already up when the runs start (the one `catalog-intel run` would start itself);
    yields its API URL, for runs that report to it (PREFECT_API_URL), as deployments do."""
    from catalog_intel.orchestration.prefect_api import TemporaryServer

    server = TemporaryServer.launch()
    try:
        url = server.wait_ready()
        log(f"  Prefect server up at {url}")
        yield url
    finally:
        server.stop()


# ----------------------------------------------------------------------------- inputs


def random_checkpoint(path: Path, model: str = "ViT-B-32") -> Path:
    """Random open_clip weights (the same compute as the real ones), written once."""
    path = Path(path)
    if not path.is_file():
        log(f"writing random {model} weights to {path}")
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_random_checkpoint.py"), str(path),
                        "--model", model], check=True)
    return path


def tiny_clip(folder: Path) -> dict:
    """The tests' tiny random open_clip model (tests/conftest.py::make_tiny_clip): its settings."""
    from conftest import make_tiny_clip

    return make_tiny_clip(Path(folder))


def load_settings(config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None):
    """The product's settings, as a run resolves them (defaults <- file <- {dotted key: value})."""
    from catalog_intel.settings import resolve_settings

    return resolve_settings(config_file, keys=dict(overrides or {}))


# ----------------------------------------------------------------------------- the report


def add_report_args(parser, name: str) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help=f"write the report here (bench/results/{name}.json holds the current figures)")


def report(name: str, figures: Any, json_path: Path | None = None, section: str | None = None) -> dict:
    """The bench's report: printed, and written to `json_path`. With `section`, the file holds one report per section
    (a tool with sub-commands), and only this one is replaced."""
    result = {"bench": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]),
              "machine": machine(), "figures": figures}
    print(json.dumps(result, indent=1, default=str, ensure_ascii=False))
    if json_path:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        if section:
            kept = json.loads(json_path.read_text()) if json_path.is_file() else {}
            result = {**kept, section: result}
        json_path.write_text(json.dumps(result, indent=1, default=str, ensure_ascii=False) + "\n")
        log(f"report written to {json_path}")
    return result
