"""What the app's children expose: the embedded Ray head listens on this host only,
and no child inherits the operator token.

The head is started as the app starts it (``runtime.start_embedded``) from a process
holding the operator token; a driver process joins it and starts an actor (a worker,
as a device session or a Serve replica is one). Then every listening socket of the
head's processes, the worker and the driver is read with psutil, and every one of
their environments from /proc."""
from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time

import psutil

from bigmodels.base.access import ENV_TOKEN
from bigmodels.base.child_process import child_env
from bigmodels.cluster import control, runtime
from bigmodels.runs.store import RunStore
from tests.conftest import REPO

TOKEN = "operator-token-that-must-stay-home-7f3a"

DRIVER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
import ray
ray.init(address=sys.argv[2], namespace="exposure-test", log_to_driver=False, configure_logging=False)

@ray.remote(num_cpus=0)
class Worker:
    def pid(self):
        return os.getpid()

worker = Worker.remote()
print("WORKER", ray.get(worker.pid.remote()), flush=True)
time.sleep(600)
"""


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _tree(pid: int) -> list[psutil.Process]:
    """``pid`` and every process it started, theirs too (the head: ray start, GCS, raylet,
    the agents, and the workers the raylet forks)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _listening(procs) -> list[tuple[str, int, str]]:
    out = []
    for proc in procs:
        try:
            out += [(c.laddr.ip, c.laddr.port, proc.name()) for c in proc.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    return out


def _holding_token(procs) -> list[str]:
    holding = []
    for proc in procs:
        try:
            if ENV_TOKEN in proc.environ():
                holding.append(f"{proc.pid} {proc.name()}")
        except psutil.Error:
            continue
    return holding


def test_child_env_withholds_the_operator_token(monkeypatch):
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    env = child_env(EXTRA="1")
    assert ENV_TOKEN not in env and TOKEN not in env.values()
    assert env["EXTRA"] == "1" and env["PATH"] == os.environ["PATH"]  # the rest is passed on


def test_the_embedded_head_listens_on_loopback_only_and_no_child_holds_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_TOKEN, TOKEN)  # as the app's process has it
    monkeypatch.delenv(runtime.ENV_RAY_ADDRESS, raising=False)
    home = tmp_path / "home"
    cluster = runtime.start_embedded(home, num_cpus=1, num_gpus=0)
    driver = None
    try:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(REPO), cluster.address], stdout=subprocess.PIPE,
                                  text=True, env={**child_env(**runtime.ray_env())}, start_new_session=True)
        line = driver.stdout.readline()
        assert line.startswith("WORKER"), line
        worker = psutil.Process(int(line.split()[1]))
        head = _tree(cluster.pid)
        assert worker.pid in {p.pid for p in head}  # the raylet's child
        time.sleep(2)  # the agents open their metrics ports a moment after the node is up
        sockets = _listening([*head, psutil.Process(driver.pid)])
        names = {name for _, _, name in sockets}
        assert {"gcs_server", "raylet"} <= names and len(sockets) >= 5, sockets
        exposed = [s for s in sockets if not _loopback(s[0])]
        assert exposed == [], f"listening beyond this host: {exposed}"
        assert _holding_token(head) == [], "the operator token reached the Ray head's processes"
    finally:
        if driver is not None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        runtime.stop_embedded(home, cluster.pid)


def test_the_dispatcher_does_not_inherit_the_operator_token(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    store = RunStore(tmp_path / "home")
    lock = control.dispatcher_lock(store)
    assert lock.acquire()  # held here: the dispatcher gives up after LOCK_WAIT_S instead of starting Ray
    try:
        proc = control.start_dispatcher(store.home)
        try:
            assert _holding_token([psutil.Process(proc.pid)]) == []  # exec is done when Popen returns
            proc.wait(timeout=120)  # it leaves by itself, having started nothing
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        lock.release()


def test_the_units_that_start_children_unset_the_token():
    """Under systemd the dispatcher and the model service read the shared env file,
    which holds the token for the app: they must drop it (systemd's UnsetEnvironment)."""
    from bigmodels.base.child_process import WITHHELD

    for unit in ("bigmodels-dispatcher.service", "bigmodels-serve.service"):
        lines = (REPO / "deploy" / unit).read_text().splitlines()
        unset = {name for line in lines if line.startswith("UnsetEnvironment=")
                 for name in line.split("=", 1)[1].split()}
        assert set(WITHHELD) <= unset, unit
