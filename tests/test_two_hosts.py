"""Two "machines": the app's host and a GPU-less second node (its own network and
mount namespaces where the kernel allows, else a second ``ray start`` here).

A run asking for the second node's custom resource trains there; its metrics and
checkpoint arrive in the head's store, though the node cannot read
``BIGMODELS_HOME`` (hidden by a tmpfs in its mount namespace) and holds no file
of it open. Then the node is stopped mid-run: its run is interrupted, the other
device is unaffected, and queued runs go to what remains."""
import os
import subprocess
import pytest
from pathlib import Path


from bigmodels.cluster import control
from bigmodels.cluster.runtime import ENV_RAY_ADDRESS
from bigmodels.harness.nodes import NODE_RESOURCE, TwoHosts
from bigmodels.models.checkpoints import load_checkpoint
from bigmodels.runs.queue import submit
from bigmodels.runs.store import RunStore
from tests.conftest import REPO, write_mnist_folder
from tests.test_dispatcher import cfg, finished, wait_for

pytestmark = pytest.mark.cluster  # starts two Ray heads in network namespaces


def open_files_under(pids, folder: Path) -> list[str]:
    found = []
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(str(folder)):
                    found.append(f"{pid}: {target}")
        except OSError:
            continue
    return found


def test_a_run_on_a_second_host_streams_back_and_a_lost_host_interrupts_only_its_run(tmp_path, small_mnist):
    store = RunStore(tmp_path / "home")
    folder = write_mnist_folder(small_mnist, tmp_path / "mnist")
    with TwoHosts(hidden=store.home) as hosts:
        env = {**os.environ, ENV_RAY_ADDRESS: hosts.address, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(control.dispatcher_command(store.home, str(folder), warm_models=["cnn"]), cwd=REPO,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            state = wait_for(lambda: (s := control.read_state(store)) and len(s["nodes"]) == 2 and
                             sum(x["state"] == "warm" for x in s["sessions"]) == 2 and s, timeout=240,
                             what="two nodes, two warm sessions")
            second = next(n for n in state["nodes"] if NODE_RESOURCE in n["custom"])
            remote = next(s for s in state["sessions"] if s["node_id"] == second["node_id"])
            if hosts.isolated:
                assert second["address"] == hosts.node_ip  # over the veth, by IP
                node_view = f"/proc/{hosts.node_pids()[0]}/root{store.home}"
                assert os.listdir(node_view) == []  # the node sees an empty folder where the store lives

            run = submit(store, cfg(epochs=2), needs=NODE_RESOURCE).run
            done = finished(store, run.id, timeout=240)
            assert done.status == "succeeded", done.error
            assert done.session == remote["key"]  # trained on the second host's session
            assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2]
            assert [s["step"] for s in store.steps(run.id)] == list(range(1, 65))
            assert load_checkpoint(store.checkpoint_path(run.id))["epoch"] == 2  # arrived on the head's disk
            assert open_files_under(hosts.node_pids(), store.home) == []  # it never opened the store

            doomed = submit(store, cfg(epochs=50, seed=11), needs=NODE_RESOURCE).run
            wait_for(lambda: store.get(doomed.id).step > 5, timeout=120, what="the remote run to train")
            hosts.stop_node()
            lost = finished(store, doomed.id, timeout=120)
            assert lost.status == "interrupted" and remote["key"] in lost.error
            local = submit(store, cfg(seed=12)).run  # the head's CPU is unaffected
            assert finished(store, local.id, timeout=180).status == "succeeded"
            assert store.get(local.id).session != remote["key"]
            stranded = submit(store, cfg(seed=13), needs=NODE_RESOURCE).run
            # until Ray declares the node dead (its health checks time out) a session is being
            # restarted there; then the node is gone and the reason says so
            reason = wait_for(lambda: "has none" in (r := control.wait_reasons(control.read_state(store))
                                                       .get(stranded.id, "")) and r, timeout=180,
                              what="the lost node to be forgotten")
            assert reason == f"waiting for a CPU on a node offering {NODE_RESOURCE!r}: the cluster has none (yet)"
            store.request_cancel(stranded.id)
        finally:
            proc.terminate()
            proc.wait(90)
