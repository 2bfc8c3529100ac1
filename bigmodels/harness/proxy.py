"""nginx in front of several app processes, configured from ``deploy/`` itself.

    with NginxPool([8501, 8502]) as pool:
        pool.url  # http://127.0.0.1:<port>/bigmodels

Tests and ``benchmarks/load_test.py --processes`` run the very files an operator
installs -- ``deploy/nginx-upstream.conf`` (the sticky-session pool) and
``deploy/nginx.conf`` (the locations) -- with only the backend ports and the
listening port replaced, in a private prefix: its own config, pid file, logs
and temp folders, so nothing of a system nginx is touched. Needs the ``nginx``
binary (``apt-get install nginx-light``).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bigmodels.harness.server import REPO, free_port

DEPLOY = REPO / "deploy"
UPSTREAM_CONF = DEPLOY / "nginx-upstream.conf"
LOCATIONS_CONF = DEPLOY / "nginx.conf"
BASE_PATH = "bigmodels"  # deploy/nginx.conf serves the app under /bigmodels/
ROUTE_COOKIE = "bigmodels_route"  # the sticky-session cookie deploy/nginx-upstream.conf sets
REVEAL_HEADER = "X-Bigmodels-Upstream"  # tests only: which process answered
STARTUP_TIMEOUT_S = 15
_SERVER_LINE = re.compile(r"^\s*server\s+127\.0\.0\.1:\d+;\s*$", re.M)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")  # sbin is not on every PATH


def pool_config(backend_ports: list[int], listen_port: int, prefix: Path, reveal_upstream: bool = False) -> str:
    """A complete nginx.conf: deploy's upstream with ``backend_ports``, deploy's locations, on loopback.
    ``reveal_upstream`` adds a header naming the process that answered (for tests)."""
    upstream = UPSTREAM_CONF.read_text()
    lines = list(_SERVER_LINE.finditer(upstream))
    if not lines:
        raise ValueError(f"{UPSTREAM_CONF} lists no 'server 127.0.0.1:PORT;' line")
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in backend_ports)
    upstream = upstream[:lines[0].start()] + servers.rstrip("\n") + upstream[lines[-1].end():]
    locations = LOCATIONS_CONF.read_text()
    if reveal_upstream:
        cookie_line = "add_header Set-Cookie $bigmodels_route_cookie;"
        if cookie_line not in locations:
            raise ValueError(f"{LOCATIONS_CONF} does not set the route cookie ({cookie_line})")
        locations = locations.replace(cookie_line, f"{cookie_line}\n    add_header {REVEAL_HEADER} $upstream_addr always;")
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may write the private temp folders
    temp = "".join(f"    {name}_temp_path {prefix / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\ndaemon off;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{\n    access_log off;\n{temp}{upstream}\n"
            f"server {{\n    listen 127.0.0.1:{listen_port};\n{locations}\n}}\n}}\n")


class NginxPool:
    """nginx on a free loopback port, pooling ``backend_ports`` as deploy/ does."""

    def __init__(self, backend_ports: list[int], reveal_upstream: bool = False):
        self.backend_ports = list(backend_ports)
        self.reveal_upstream = reveal_upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/{BASE_PATH}"
        self.prefix = Path(tempfile.mkdtemp(prefix="bigmodels-nginx-"))
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "NginxPool":
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
        conf = self.prefix / "nginx.conf"
        conf.write_text(pool_config(self.backend_ports, self.port, self.prefix, self.reveal_upstream))
        check = subprocess.run([binary, "-t", "-q", "-p", str(self.prefix), "-c", str(conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the pool config: {check.stderr.strip()}")
        self.process = subprocess.Popen([binary, "-p", str(self.prefix), "-c", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self.error_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"nginx did not listen within {STARTUP_TIMEOUT_S} s: {self.error_log()}")

    def error_log(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text()[-2000:] if log.is_file() else ""

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)  # master and worker
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        shutil.rmtree(self.prefix, ignore_errors=True)
