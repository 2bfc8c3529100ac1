"""Which Ray cluster this server uses, and how a process joins it.

Everything that spans machines -- the device sessions and their dispatcher
(``bigmodels.cluster``), Ray Train runs on several devices, the model service
on Ray Serve (``bigmodels.serving``) -- runs on one Ray cluster:

* **Embedded (the default).** With ``BIGMODELS_RAY_ADDRESS`` unset, the first
  process that needs Ray starts a local head node holding this machine's CPU and
  GPUs (``ray start --head --block``, its own process group, ports chosen by
  Ray) and writes its address under ``<home>/ray/``; every later process of the
  same home joins that one. A laptop user still runs only ``streamlit run app.py``.
* **An existing cluster.** ``BIGMODELS_RAY_ADDRESS=auto`` (a cluster started
  with ``ray start`` on this host) or ``<head-ip>:6379`` joins it; GPU nodes
  join the head with ``ray start --address ...`` (see the README).

Offline and private by construction: usage statistics are off
(``RAY_USAGE_STATS_ENABLED=0``), the dashboard is not started, and the
embedded cluster requires a token (``RAY_AUTH_MODE=token``; a random one in
``~/.bigmodels/ray_auth_token``, mode 0600), so nobody else on the network can
submit work to it. It is reachable from this host only: GCS, raylet, the agents
(their Prometheus metrics too) and the workers listen on 127.0.0.1
(``RAY_CLUSTER_SWITCH``). For an external cluster the operator's own Ray settings
(``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``) are used as they are.
"""
from __future__ import annotations

import contextlib
import shutil
import fcntl
import hashlib
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bigmodels.base.child_process import PACKAGE_ROOT, child_env
from bigmodels.base.home import home_dir

ENV_RAY_ADDRESS = "BIGMODELS_RAY_ADDRESS"
ENV_RAY_TOKEN = "BIGMODELS_RAY_TOKEN_PATH"  # where the embedded clusters' token lives (default ~/.bigmodels/)
NAMESPACE = "bigmodels"  # actors and Serve applications of this project, apart from anyone else's
START_TIMEOUT_S = 120.0  # a cold head on 2 busy cores took 4-8 s; allow for a much busier machine
RAY_PRIVACY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
#: Ray's switch between a one-host cluster and a multi-host one, read at ``import ray``. The
#: embedded head serves this host only, but ``ray start --node-ip-address=127.0.0.1`` alone does
#: not make it so: Ray swaps a loopback address for the host's routable one
#: (``services.resolve_ip_for_localhost``), and GCS, raylet and workers bound to every interface,
#: the agents' Prometheus endpoints to 0.0.0.0. In one-host mode ("0", what Ray does on macOS
#: and Windows) 127.0.0.1 stays the node's address and every Ray server binds to it; a process
#: joining the head needs the same mode (Ray would otherwise rewrite 127.0.0.1 in the address it
#: dials), and no other host can join, which the embedded head never has. With
#: ``BIGMODELS_RAY_ADDRESS`` it is "1" (the operator's cluster spans hosts), unless that
#: address is a loopback one: a head that listens on this host only, like the embedded one.
RAY_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

PACKAGE_DIR = PACKAGE_ROOT / "bigmodels"
_lock = threading.Lock()
_joined: "Cluster | None" = None


@dataclass(frozen=True)
class Cluster:
    address: str
    embedded: bool  # started by this project for this home (not an operator's cluster)
    pid: int | None = None  # the embedded head's ``ray start --block`` process


class ClusterError(RuntimeError):
    """Ray could not be started or joined; the message says why, for a person."""


def ray_dir(home: str | os.PathLike | None = None) -> Path:
    path = home_dir(home) / "ray"
    path.mkdir(parents=True, exist_ok=True)
    return path


def token_path() -> Path:
    """The embedded clusters' token: one per user, not per home, because Ray reads
    it once per process (at import) and a process may meet several homes (tests)."""
    path = Path(os.environ.get(ENV_RAY_TOKEN) or Path.home() / ".bigmodels" / "ray_auth_token")
    if not path.is_file() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # the first writer's token wins; a second process reads that one
        os.unlink(tmp)
    return path


def ray_env() -> dict[str, str]:
    """Environment for anything that talks to this server's cluster."""
    env = dict(RAY_PRIVACY_ENV)
    address = os.environ.get(ENV_RAY_ADDRESS, "").strip()
    if not address:
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path()), RAY_CLUSTER_SWITCH: "0"})
    else:
        env[RAY_CLUSTER_SWITCH] = "0" if _loopback(address) else "1"
    return env


def _loopback(address: str) -> bool:
    """Does ``host:port`` name this host's loopback interface?"""
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def apply_ray_env() -> None:
    """Put ``ray_env`` in this process's environment, before ``import ray`` reads
    it (done when this module is imported; an operator's own settings win, but for
    RAY_CLUSTER_SWITCH, which this process's mode decides whatever its parent had)."""
    for key, value in ray_env().items():
        if key == RAY_CLUSTER_SWITCH:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)


def _temp_dir(home) -> str:
    # Ray's unix sockets live under the temp dir and a socket path may not exceed
    # 107 bytes, so not under a deep home: a short folder per home instead.
    digest = hashlib.sha1(str(home_dir(home).resolve()).encode()).hexdigest()[:10]
    return f"/tmp/bigmodels-ray/{digest}"


def _free_port() -> int:
    import socket
    with socket.socket() as s:  # Ray's client server would take 10001 on every head of the host
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state_file(home) -> Path:
    return ray_dir(home) / "cluster.json"


def _read_state(home) -> dict | None:
    try:
        return json.loads(_state_file(home).read_text())
    except (OSError, ValueError):
        return None


def _head_alive(state: dict | None) -> bool:
    if not state:
        return False
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError, TypeError):
        return False
    return Path(state.get("temp_dir", ""), "ray_current_cluster").is_file()


def local_resources() -> dict[str, float]:
    """What the embedded head offers: every CPU core and GPU of this machine."""
    import torch  # only to count GPUs; the head itself is a separate process

    return {"num_cpus": float(os.cpu_count() or 1), "num_gpus": float(torch.cuda.device_count())}


@contextlib.contextmanager
def _start_lock(home):
    fd = os.open(ray_dir(home) / "start.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two processes needing Ray at once start one head
        yield
    finally:
        os.close(fd)


def start_embedded(home: str | os.PathLike | None = None, num_cpus: float | None = None,
                   num_gpus: float | None = None, resources: dict[str, float] | None = None) -> Cluster:
    """The embedded head for ``home``: the running one, or a new one."""
    with _start_lock(home):
        state = _read_state(home)
        if _head_alive(state):
            return Cluster(state["address"], True, int(state["pid"]))
        found = local_resources()
        temp_dir = _temp_dir(home)
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.remove(Path(temp_dir, "ray_current_cluster"))
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--port=0",
               "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}", "--include-dashboard=false",
               "--disable-usage-stats", "--dashboard-agent-listen-port=0",
               f"--ray-client-server-port={_free_port()}", f"--num-cpus={int(num_cpus if num_cpus is not None else found['num_cpus'])}",
               f"--num-gpus={int(num_gpus if num_gpus is not None else found['num_gpus'])}"]
        if resources:
            cmd.append("--resources=" + json.dumps(resources))
        log = open(ray_dir(home) / "head.log", "ab")
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=child_env(**ray_env()), start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        marker = Path(temp_dir, "ray_current_cluster")
        while not marker.is_file() or not marker.read_text().strip():
            if proc.poll() is not None:
                tail = (ray_dir(home) / "head.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise ClusterError("the local Ray head did not start: " + " | ".join(tail))
            if time.monotonic() > deadline:
                stop_embedded(home, proc.pid)
                raise ClusterError(f"the local Ray head did not start within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        address = marker.read_text().strip()
        tmp = _state_file(home).with_suffix(".tmp")
        tmp.write_text(json.dumps({"address": address, "pid": proc.pid, "temp_dir": temp_dir,
                                   "started_at": time.time()}))
        os.replace(tmp, _state_file(home))
        return Cluster(address, True, proc.pid)


def stop_embedded(home: str | os.PathLike | None = None, pid: int | None = None) -> bool:
    """Stop the embedded head of ``home`` (its whole process group). Never ``ray
    stop``: that kills every Ray process on the host, other users' included."""
    state = _read_state(home) or {}
    pid = pid or state.get("pid")
    if not pid:
        return False
    with contextlib.suppress(OSError):
        os.killpg(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except OSError:
            break
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(int(pid), os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        os.killpg(int(pid), signal.SIGKILL)  # what SIGTERM left (raylet children) goes now
    with contextlib.suppress(OSError):
        if state.get("pid") == pid:
            _state_file(home).unlink()
    if state.get("temp_dir", "").startswith("/tmp/bigmodels-ray/"):
        shutil.rmtree(state["temp_dir"], ignore_errors=True)  # the session's logs and sockets
    return True


def cluster_address(home: str | os.PathLike | None = None, start: bool = True) -> Cluster | None:
    """The cluster this server uses: ``BIGMODELS_RAY_ADDRESS``, else the embedded
    head (started now if ``start``; None if not running and not ``start``)."""
    address = os.environ.get(ENV_RAY_ADDRESS, "").strip()
    if address:
        return Cluster(address, False)
    if start:
        return start_embedded(home)
    state = _read_state(home)
    return Cluster(state["address"], True, int(state["pid"])) if _head_alive(state) else None


def connect(home: str | os.PathLike | None = None) -> Cluster:
    """Join this server's cluster from this process (once; later calls return it)."""
    global _joined
    with _lock:
        if _joined is not None:
            return _joined
        cluster = cluster_address(home, start=True)
        import ray  # after the environment is set: Ray reads it at import and init

        try:
            ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False,
                     configure_logging=False, runtime_env=code_runtime_env())
        except Exception as exc:  # ConnectionError, auth errors: say which cluster and why, in one line
            raise ClusterError(f"could not join the Ray cluster at {cluster.address}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                               ) from exc
        _joined = cluster
        return cluster


def code_runtime_env() -> dict:
    """This package travels with every job: a node needs the same Python packages
    (requirements.txt), not a checkout or a shared filesystem. Ray uploads it once
    per version (content-addressed) and caches it on each node."""
    return {"py_modules": [str(PACKAGE_DIR)], "excludes": ["__pycache__", "*.pyc"]}


def joined() -> bool:
    """Has this process joined a cluster (and not left it)?"""
    return _joined is not None


def disconnect() -> None:
    global _joined
    with _lock:
        if _joined is not None:
            import ray

            ray.shutdown()
            _joined = None


apply_ray_env()
