"""The dispatcher and its Ray device sessions: placement, streaming into the
store, cancel, and the faults of issue #13 -- a session killed mid-run, the
dispatcher killed, a kill between checkpoint and epoch, store write errors, a
bad data folder.

One Ray head serves the whole session (``ray_cluster``); each test runs its own
dispatcher (in a thread, or as a process when the test kills it) on its own
home. Runs are tiny (LeNet-5 on 2,000 images, 32 steps an epoch)."""
import contextlib
import os
import signal
import subprocess
import threading
import time

import pytest
import ray
import torch

from bigmodels.cluster import control
from bigmodels.cluster.dispatcher import Dispatcher, ResilientStore
from bigmodels.cluster.placement import SessionView, choose_session
from bigmodels.cluster.runtime import ENV_RAY_ADDRESS
from bigmodels.models.checkpoints import load_checkpoint
from bigmodels.base.processes import pid_alive
from bigmodels.runs.queue import submit
from bigmodels.runs.store import RunStore, StoreError
from bigmodels.train.config import default_config
from bigmodels.train.engine import train
from bigmodels.harness.mounts import bind_read_only
from bigmodels.harness.waiting import wait_for
from tests.conftest import REPO, unavailable, write_mnist_folder

GiB = 1 << 30


def cfg(**changes):
    return default_config("cnn", **{"epochs": 1, "batch_size": 64, "train_subset": 2000, "device": "cpu",
                                    "seed": 3, **changes})


@pytest.fixture(scope="module")
def mnist_dir(small_mnist, tmp_path_factory):
    return write_mnist_folder(small_mnist, tmp_path_factory.mktemp("mnist"))


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


class Running:
    """A dispatcher serving in a thread of this process (joined to the test cluster)."""

    def __init__(self, store, data_dir, **kwargs):
        self.dispatcher = Dispatcher(store.home, data_dir=str(data_dir), warm_models=["cnn"], **kwargs)
        self.result = {}
        self.thread = threading.Thread(target=lambda: self.result.setdefault("code", self.dispatcher.serve()),
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.dispatcher

    def __exit__(self, *exc):
        self.dispatcher.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the dispatcher did not stop"


def warm_sessions(store, n=1, timeout=120):
    return wait_for(lambda: (s := control.read_state(store)) and
                    sum(x["state"] == "warm" for x in s["sessions"]) >= n and s, timeout=timeout,
                    what=f"{n} warm session(s)")


def finished(store, run_id, timeout=180):
    return wait_for(lambda: (r := store.get(run_id)).status not in ("queued", "running") and r, timeout=timeout,
                    what=f"run {run_id} to end")


# ----------------------------------------------------------------- placement
def view(key, kind="cpu", free=True, device_free=None, total=None, resources=None):
    return SessionView(key, kind, free, device_free, total, resources or {})


def why(choice):
    key, problem = choice
    return key, (str(problem) if problem is not None else "")


def test_placement_picks_a_fitting_free_session_or_says_why_it_waits():
    gpus = [view("a/gpu0", "cuda", True, 3 * GiB, 16 * GiB), view("b/gpu0", "cuda", True, 30 * GiB, 40 * GiB),
            view("c/cpu")]
    assert why(choose_session(gpus, "cuda", 1 * GiB)) == ("b/gpu0", "")  # the roomiest of those that fit
    assert why(choose_session(gpus, "cpu", 10 * GiB)) == ("c/cpu", "")  # the plan checked the host's memory
    key, reason = why(choose_session(gpus, "cuda", 31 * GiB))
    assert key is None and "with >= 41.3 GiB of memory" in reason and "largest has 40.0 GiB" in reason  # never fits
    key, reason = why(choose_session(gpus, "cuda", 25 * GiB))
    assert key is None and reason == "waiting for a GPU with >= 33.3 GiB free"  # fits the 40 GiB one once it frees
    key, reason = why(choose_session([view("a/gpu0", "cuda", True, 2 * GiB, 40 * GiB)], "cuda", 10 * GiB))
    assert key is None and reason == "waiting for a GPU with >= 13.3 GiB free"
    key, reason = why(choose_session([view("a/gpu0", "cuda", False, 30 * GiB, 40 * GiB)], "cuda", GiB))
    assert key is None and "busy" in reason
    assert "has none" in why(choose_session([view("c/cpu")], "cuda", 1))[1]
    nodes = [view("head/cpu"), view("gpu-box/cpu", resources={"a100": 1.0})]
    assert why(choose_session(nodes, "cpu", 1, needs="a100")) == ("gpu-box/cpu", "")
    assert "offering 'h100'" in why(choose_session(nodes, "cpu", 1, needs="h100"))[1]


# ----------------------------------------------------------- the happy path
def test_a_run_streams_from_a_warm_session_into_the_store(ray_cluster, store, mnist_dir, small_mnist):
    with Running(store, mnist_dir):
        state = warm_sessions(store)
        session = next(s for s in state["sessions"] if s["state"] == "warm")
        assert session["device"] == "cpu" and "train" in session["data"] and session["process_bytes"] > 0
        run = submit(store, cfg(epochs=2)).run
        done = finished(store, run.id)
        assert done.status == "succeeded", done.error
        assert done.first_step_at - done.queued_at < 5.0  # warm: seconds would mean a cold start
        assert [s["step"] for s in store.steps(run.id)] == list(range(1, 65))  # every step once, in order
        assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2]
        assert done.node and done.session == session["key"] and "CPU" in done.device_name
        ckpt = load_checkpoint(done.checkpoint)  # written on the server from the streamed bytes
        assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
        assert store.system_metrics(run.id), "system samples streamed with the steps"
        reference = train(cfg(epochs=2), small_mnist)  # the session trained exactly what the engine trains
        assert store.epochs(run.id)[-1]["test_accuracy"] == reference.history[-1]["test_accuracy"]

        slow = submit(store, cfg(epochs=20, train_subset=None)).run
        wait_for(lambda: store.get(slow.id).step > 3, what="the long run to train")
        assert store.request_cancel(slow.id) == "running"
        stopped = finished(store, slow.id, timeout=30)
        assert stopped.status == "cancelled" and stopped.step < stopped.total_steps


def test_a_queued_run_that_cannot_be_placed_says_why(ray_cluster, store, mnist_dir):
    with Running(store, mnist_dir):
        warm_sessions(store)
        run = submit(store, cfg(), needs="no-such-resource").run
        reason = wait_for(lambda: control.wait_reasons(control.read_state(store)).get(run.id),
                          timeout=30, what="a wait reason")
        assert "no-such-resource" in control.wait_reasons(control.read_state(store), "zh")[run.id]
        assert reason == "waiting for a CPU on a node offering 'no-such-resource': the cluster has none (yet)"
        assert store.get(run.id).status == "queued"
        store.request_cancel(run.id)


# -------------------------------------------------------------------- faults
def test_a_killed_session_interrupts_its_run_and_resume_is_bit_for_bit(ray_cluster, store, mnist_dir, small_mnist):
    config = cfg(epochs=3, label_smoothing=0.1)
    with Running(store, mnist_dir) as dispatcher:
        warm_sessions(store)
        run = submit(store, config).run
        wait_for(lambda: store.get(run.id).epoch >= 1, what="epoch 1")
        victim = next(s for s in dispatcher.sessions.values() if s.run_id == run.id)
        ray.kill(victim.actor)  # as a SIGKILL of its process would
        left = finished(store, run.id, timeout=60)
        assert left.status == "interrupted" and "stopped while training" in left.error
        ckpt = load_checkpoint(left.checkpoint)  # intact: it was written on the server, atomically
        assert 1 <= ckpt["epoch"] < 3 and ckpt["step_in_epoch"] == 0
        assert len(store.epochs(run.id)) == ckpt["epoch"]  # the store agrees with its checkpoint
        replacement = wait_for(lambda: next((s for s in dispatcher.sessions.values()
                                             if s.state == "warm" and s is not victim), None), what="a new session")
        assert replacement.key == victim.key
        store.resume(run.id)
        resumed = finished(store, run.id)
    assert resumed.status == "succeeded" and resumed.attempts == 2
    assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2, 3]
    assert [s["step"] for s in store.steps(run.id)] == list(range(1, 97))
    reference = train(config, small_mnist)
    final = load_checkpoint(resumed.checkpoint)["state_dict"]
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(tensor, final[name]), name


def test_a_killed_dispatcher_stops_its_sessions_and_the_next_one_recovers(ray_cluster, store, mnist_dir):
    env = {**os.environ, ENV_RAY_ADDRESS: ray_cluster.address, "PYTHONPATH": str(REPO)}
    command = control.dispatcher_command(store.home, str(mnist_dir), warm_models=["cnn"])
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        warm_sessions(store)
        run = submit(store, cfg(epochs=30)).run
        wait_for(lambda: store.get(run.id).epoch >= 1, timeout=120, what="epoch 1")
        session_pid = wait_for(lambda: next((s["pid"] for s in control.read_state(store)["sessions"]
                                             if s["run_id"] == run.id and s.get("pid")), None), what="its session")
        assert control.dispatcher_alive(store)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not control.dispatcher_alive(store)  # the kernel dropped its lock
    wait_for(lambda: not pid_alive(session_pid), timeout=30, what="Ray to kill the dead driver's session")
    step_at_kill = store.get(run.id).step
    time.sleep(1)
    assert store.get(run.id).step == step_at_kill and store.get(run.id).status == "running"  # nobody trains on
    assert control.reap_orphans(store) == [run.id]  # what a page load does
    left = store.get(run.id)
    assert left.status == "interrupted" and "dispatcher" in left.error
    epochs_before = [e["epoch"] for e in store.epochs(run.id)]
    with Running(store, mnist_dir):  # a new dispatcher: the run resumes, nothing is recorded twice
        store.resume(run.id)
        wait_for(lambda: store.get(run.id).epoch >= len(epochs_before) + 1, what="an epoch after the resume")
        store.request_cancel(run.id)
        finished(store, run.id, timeout=60)
    epochs = [e["epoch"] for e in store.epochs(run.id)]
    assert epochs == list(range(1, len(epochs) + 1)) and epochs[:len(epochs_before)] == epochs_before
    steps = [s["step"] for s in store.steps(run.id)]
    assert steps == list(range(1, len(steps) + 1))


def test_a_checkpoint_ahead_of_the_store_is_reconciled_and_partial_files_go(ray_cluster, store, mnist_dir,
                                                                            small_mnist):
    run = submit(store, cfg(epochs=2)).run
    result = train(cfg(epochs=2), small_mnist, checkpoint_path=store.checkpoint_path(run.id))
    store.claim(run.id, "killed", 999_999_999)  # a dispatcher that died (no such pid)
    store.set_provenance(run.id, "cpu", "cpu", "test", {}, None, str(store.checkpoint_path(run.id)))
    store.record_epoch(run.id, result.history[0])  # epoch 2's checkpoint landed, its row never did
    leftover = store.checkpoints_dir / f".{run.id}.pt.abc123.tmp"
    leftover.write_bytes(b"x" * 1000)
    other = store.checkpoints_dir / ".other-run.pt.def456.tmp"
    other.write_bytes(b"y")
    with Running(store, mnist_dir):
        wait_for(lambda: store.get(run.id).status == "interrupted", timeout=60, what="the orphan interrupted")
    assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2]  # epoch 2 recorded from the checkpoint
    assert store.epochs(run.id)[1]["test_accuracy"] == result.history[1]["test_accuracy"]
    assert store.get(run.id).final_accuracy == result.history[1]["test_accuracy"]
    assert not leftover.exists() and not other.exists()  # a killed writer's temp files are cleaned up
    again = store.checkpoints_dir / f".{run.id}.pt.zzz.tmp"
    again.write_bytes(b"z")
    removed = store.delete(run.id)
    assert again in removed and store.checkpoint_path(run.id) in removed and not again.exists()


def test_store_write_errors_are_retried_shown_and_lose_nothing(ray_cluster, store, mnist_dir, monkeypatch):
    failures = {"left": 4}
    real = RunStore.record_epoch

    def flaky(self, run_id, record):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise StoreError(self.explain(Exception("attempt to write a readonly database")))
        return real(self, run_id, record)

    monkeypatch.setattr(RunStore, "record_epoch", flaky)
    with Running(store, mnist_dir) as dispatcher:
        warm_sessions(store)
        run = submit(store, cfg(epochs=2)).run
        problem = wait_for(lambda: dispatcher.problems.get("store"), timeout=120, what="the problem reported")
        assert "read-only" in problem and "move the file aside" not in problem
        wait_for(lambda: "store" in ((control.read_state(store) or {}).get("problems") or {}), timeout=30,
                 what="the problem in the launcher's state file")
        done = finished(store, run.id)
        assert done.status == "succeeded" and [e["epoch"] for e in store.epochs(run.id)] == [1, 2]
        wait_for(lambda: "store" not in dispatcher.problems, timeout=10, what="the problem cleared")
        assert not dispatcher.stopping.is_set()


def test_a_deleted_store_file_does_not_kill_the_dispatcher(ray_cluster, store, mnist_dir):
    with Running(store, mnist_dir) as dispatcher:
        warm_sessions(store)
        store.path.unlink()
        for suffix in ("-wal", "-shm"):
            store.path.with_name(store.path.name + suffix).unlink(missing_ok=True)
        fresh = RunStore(store.home)  # someone starts over with an empty store
        run = submit(fresh, cfg()).run
        assert finished(fresh, run.id).status == "succeeded"
        assert not dispatcher.stopping.is_set()


def test_a_bad_data_folder_fails_runs_at_once_with_the_reason(ray_cluster, store, tmp_path):
    with Running(store, tmp_path / "no-such-folder"):
        run = submit(store, cfg()).run
        failed = finished(store, run.id, timeout=60)
    assert failed.status == "failed" and "no-such-folder" in failed.error and "no such folder" in failed.error


def test_resilient_store_gives_up_only_when_told(tmp_path, monkeypatch):
    problems = []
    stopping = {"now": False}
    wrapped = ResilientStore(tmp_path / "home", problems.append, lambda: stopping["now"])
    calls = {"n": 0}

    def broken(self):
        calls["n"] += 1
        if calls["n"] == 3:
            stopping["now"] = True
        raise StoreError("the disk holding the run store is full")

    monkeypatch.setattr(RunStore, "counts", broken)  # on every store it opens afresh, too
    with pytest.raises(StoreError):
        wrapped.counts()
    assert calls["n"] >= 3 and problems and all("full" in p for p in problems)


def test_store_messages_fit_the_failure(tmp_path):
    store = RunStore(tmp_path / "home")
    assert "read-only" in store.explain(Exception("attempt to write a readonly database"))
    assert "full" in store.explain(Exception("database or disk is full"))
    assert "move the file aside" in store.explain(Exception("file is not a database"))
    for text in ("attempt to write a readonly database", "database or disk is full"):
        assert "move the file aside" not in store.explain(Exception(text))


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs for the run store (root only: unavailable, a failure under CI, where
    mounting is refused)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "none", str(mount)], capture_output=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_pauses_the_records_and_loses_nothing(ray_cluster, small_disk, mnist_dir):
    """A real full disk: SQLite and the checkpoint writes fail with ENOSPC while the
    run trains on; the launcher is told; once space is freed every epoch is there."""
    store = RunStore(small_disk / "home")
    with Running(store, mnist_dir) as dispatcher:
        warm_sessions(store)
        run = submit(store, cfg(epochs=3)).run
        wait_for(lambda: store.get(run.id).step > 0, what="training")
        filler = small_disk / "filler"
        with open(filler, "wb") as f:  # fill every byte left
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:  # ENOSPC: the disk is full, which is the point
                pass
        with contextlib.suppress(OSError):
            with open(small_disk / "filler2", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        problem = wait_for(lambda: dispatcher.problems.get("store"), timeout=120, what="the full disk reported")
        assert "full" in problem.lower() or "no space" in problem.lower()
        assert "move the file aside" not in problem
        filler.unlink()
        (small_disk / "filler2").unlink(missing_ok=True)
        done = finished(store, run.id)
        assert done.status == "succeeded", done.error
        assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2, 3]
        assert [s["step"] for s in store.steps(run.id)] == list(range(1, 97))
        assert load_checkpoint(done.checkpoint)["epoch"] == 3
        assert not list(store.checkpoints_dir.glob(".*.tmp"))
        wait_for(lambda: "store" not in dispatcher.problems, timeout=30, what="the problem cleared")


def test_a_read_only_store_pauses_the_records_and_loses_nothing(ray_cluster, small_disk, mnist_dir):
    """The store's file system remounted read-only mid-run (as root can't be kept out
    by file modes): writes are refused for real, retried, and land once it is writable."""
    store = RunStore(small_disk / "home")
    with Running(store, mnist_dir) as dispatcher:
        warm_sessions(store)
        run = submit(store, cfg(epochs=3)).run
        wait_for(lambda: store.get(run.id).step > 0, what="training")
        # a read-only bind mount over the home, in one step (the dispatcher writes all the
        # while: between a bind and a remount its opens made the remount fail, EBUSY)
        bind_read_only(store.home)
        try:
            problem = wait_for(lambda: dispatcher.problems.get("store"), timeout=120, what="the read-only store")
            assert "read-only" in problem and "move the file aside" not in problem
        finally:
            subprocess.run(["umount", "-l", str(store.home)], check=True)
        done = finished(store, run.id)
        assert done.status == "succeeded", done.error
        assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2, 3]
        assert [s["step"] for s in store.steps(run.id)] == list(range(1, 97))
        assert load_checkpoint(done.checkpoint)["epoch"] == 3
