"""A second Ray node on this machine, as a second "host" for tests and benchmarks.

``TwoHosts`` starts a Ray head and a worker node that joins it. Where the
kernel allows (root, ``ip netns``, ``unshare``), the worker node is as far
from the head as one machine can make it:

* its own **network namespace**, joined to the host by a veth pair with
  addresses made here (``10.<x>.<y>.1`` host side, ``.2`` node side), so
  the two talk over a real (virtual) link, by IP;
* its own **mount namespace** in which the server's ``BIGMODELS_HOME`` is
  covered by an empty tmpfs: the node *cannot* read the run store or the
  checkpoints, whatever it tries;
* its own working directory and temp dir, and no ``BIGMODELS_*`` variables;
  the project's code reaches it as a Ray ``py_modules`` package.

Where namespaces are not available, the node is a second ``ray start`` on
this host with its own temp dir and working directory (``isolated`` is False).
Either way it offers a custom resource (``NODE_RESOURCE``) so a run can ask
for it. Everything is torn down on exit (process groups killed, the namespace
and its veth deleted).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bigmodels.base.child_process import child_env
from bigmodels.cluster.runtime import RAY_CLUSTER_SWITCH, ray_env

NODE_RESOURCE = "second_host"
START_TIMEOUT_S = 120.0


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def namespaces_available() -> str | None:
    """None if this process can make network and mount namespaces, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("ip") or not shutil.which("unshare"):
        return "needs ip (iproute2) and unshare (util-linux)"
    name = f"bmprobe{os.getpid()}"
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "netns", "del", name)
        subprocess.run(["unshare", "--mount", "true"], check=True, capture_output=True, timeout=10)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"namespaces refused here: {exc}"
    return None


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in child_env(**ray_env()).items() if not k.startswith("BIGMODELS_") and k != "PYTHONPATH"}
    return {**env, RAY_CLUSTER_SWITCH: "1", **extra}  # two hosts: a multi-host cluster, not the embedded one


def _ray_start(extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats", *extra]


def _wait_for(predicate, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not predicate():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: " + " | ".join(log.read_text(errors="replace").splitlines()[-3:]))
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


class TwoHosts:
    """``with TwoHosts(hidden=home) as hosts:`` -> ``hosts.address`` (the head's),
    ``hosts.isolated``; ``hosts.stop_node()`` takes the second node away."""

    def __init__(self, hidden: str | os.PathLike, use_namespaces: bool | None = None):
        self.hidden = Path(hidden).resolve()
        reason = namespaces_available() if use_namespaces is not False else "not asked for"
        self.isolated = reason is None
        self.why_not_isolated = reason
        self.workdir = Path(tempfile.mkdtemp(prefix="bigmodels-hosts-"))
        self.head: subprocess.Popen | None = None
        self.node: subprocess.Popen | None = None
        self.address: str | None = None
        tag = random.randint(1, 250)
        self.netns = f"bmnode{os.getpid()}"
        self.veth = (f"bmh{os.getpid() % 100000}", f"bmn{os.getpid() % 100000}")
        self.head_ip = f"10.{200 + tag % 50}.{tag}.1" if self.isolated else "127.0.0.1"
        self.node_ip = f"10.{200 + tag % 50}.{tag}.2" if self.isolated else "127.0.0.1"

    # ------------------------------------------------------------- network
    def _make_network(self) -> None:
        host, node = self.veth
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", host, "type", "veth", "peer", "name", node)
        _run("ip", "link", "set", node, "netns", self.netns)
        _run("ip", "addr", "add", f"{self.head_ip}/30", "dev", host)
        _run("ip", "link", "set", host, "up")
        _run("ip", "netns", "exec", self.netns, "ip", "addr", "add", f"{self.node_ip}/30", "dev", node)
        _run("ip", "netns", "exec", self.netns, "ip", "link", "set", node, "up")
        _run("ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up")

    def _remove_network(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _run("ip", "netns", "del", self.netns)  # takes the node end of the veth, and so the pair
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _run("ip", "link", "del", self.veth[0])

    # --------------------------------------------------------------- start
    def __enter__(self) -> "TwoHosts":
        try:
            if self.isolated:
                self._make_network()
            self._start_head()
            self._start_node()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_head(self) -> None:
        temp = Path(f"/tmp/bigmodels-ray/hosts-head-{os.getpid()}")
        temp.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "head.log"
        cmd = _ray_start(["--head", "--port=0", f"--node-ip-address={self.head_ip}", f"--temp-dir={temp}",
                          "--include-dashboard=false", "--dashboard-agent-listen-port=0", "--num-cpus=2",
                          "--num-gpus=0"])
        with open(log, "ab") as out:
            self.head = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_clean_env(),
                                         start_new_session=True, cwd=self.workdir)
        marker = temp / "ray_current_cluster"
        _wait_for(lambda: marker.is_file() and marker.read_text().strip(), "the head", self.head, log)
        self.address = marker.read_text().strip()

    def _start_node(self) -> None:
        node_dir = self.workdir / "node"
        node_dir.mkdir()
        log = self.workdir / "node.log"
        ray_cmd = _ray_start([f"--address={self.address}", f"--node-ip-address={self.node_ip}", "--num-cpus=1",
                              "--num-gpus=0", "--resources=" + json.dumps({NODE_RESOURCE: 1}),
                              "--dashboard-agent-listen-port=0"])
        if self.isolated:
            # a new mount namespace in which the server's home is an empty tmpfs: unreadable here
            script = f"mount -t tmpfs none {self.hidden} && exec " + " ".join(f"'{c}'" for c in ray_cmd)
            cmd = ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private",
                   "sh", "-c", script]
        else:
            cmd = ray_cmd
        with open(log, "ab") as out:
            self.node = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_clean_env(HOME=str(node_dir)),
                                         start_new_session=True, cwd=node_dir)
        _wait_for(self._node_joined, "the second node", self.node, log)

    def _node_joined(self) -> bool:
        # not ray.nodes(): the caller may be joined to another cluster (a test session's)
        return "Ray runtime started" in (self.workdir / "node.log").read_text(errors="replace")

    # ---------------------------------------------------------------- stop
    def node_pids(self) -> list[int]:
        """Every process of the second node (its ``ray start``'s session)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getsid(int(entry.name)) == (self.node.pid if self.node else -1):
                        pids.append(int(entry.name))
        return pids

    def stop_node(self) -> None:
        """The second host goes away (its processes killed), as a machine that fails."""
        if self.node is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.node.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.node.wait(10)

    def __exit__(self, *exc) -> None:
        _stop(self.node)
        _stop(self.head)
        if self.isolated:
            self._remove_network()
        shutil.rmtree(self.workdir, ignore_errors=True)
