"""A real S3-compatible server for the tests: moto in server mode on 127.0.0.1.

`S3Server` starts `moto_server` on a free port; as a context manager it also points the
standard AWS environment (AWS_ENDPOINT_URL, keys, region) at it until exit (the session's
`s3` fixture sets that environment per test instead). The pipeline sees nothing but s3:// URLs
and the environment, as in production."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from catalog_intel import processes

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret-4242",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


def forget_clients() -> None:
    """fsspec caches one S3 client per set of arguments; the endpoint comes from the environment,
    so a client made for an earlier server (another port) must not be reused."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._saved: dict[str, str | None] = {}
        self._proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def start(self) -> "S3Server":
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
        self._proc = processes.spawn([*cmd, "-H", "127.0.0.1", "-p", str(self.port)],  # dies with the tests
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).read()
                break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start on {self.endpoint}")
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        processes.stop(self._proc, 10)
        self._proc = None

    def __enter__(self) -> "S3Server":
        self.start()
        for key, value in self.env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        forget_clients()
        return self

    def __exit__(self, *exc) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        forget_clients()
        self.stop()

    def bucket(self, name: str) -> str:
        from catalog_intel.io.filesystem import url_to_fs

        fs, _ = url_to_fs(f"s3://{name}")
        fs.mkdir(name)
        return f"s3://{name}"
