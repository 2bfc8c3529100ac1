"""A live ``streamlit run app.py`` for tests and benchmarks.

    with StreamlitServer(home, {"BIGMODELS_DATA_DIR": "/data/mnist"}) as server:
        server.url, server.port, server.process, server.log_path

``base_path`` serves it under ``/<base_path>`` (Streamlit's ``server.baseUrlPath``),
as ``deploy/`` runs it behind nginx (``bigmodels.harness.proxy``).

It runs the checkout's ``app.py`` on a free loopback port with its own run
store (``BIGMODELS_HOME``), waits until ``/_stcore/health`` answers, and logs
to ``test-artifacts/streamlit-<port>.log``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: app.py and pages/
ARTIFACTS = REPO / "test-artifacts"
STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """``streamlit run app.py`` on a free loopback port, with its own run home."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, base_path: str = ""):
        self.port = free_port()
        self.base_path = base_path.strip("/")
        self.url = f"http://127.0.0.1:{self.port}" + (f"/{self.base_path}" if self.base_path else "")
        self.home = home
        self.log_path = ARTIFACTS / f"streamlit-{self.port}.log"
        self.env = {**os.environ, "BIGMODELS_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "StreamlitServer":
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             *(["--server.baseUrlPath", self.base_path] if self.base_path else [])],
            cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.__exit__(None, None, None)
        raise RuntimeError(f"streamlit did not become healthy in {STARTUP_TIMEOUT_S} s; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        self._log.close()
