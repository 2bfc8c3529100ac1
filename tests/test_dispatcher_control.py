"""The dispatcher as the app sees it: one per home, started once however many
sessions ask, gone when its app is gone; orphaned runs reaped; the lock; GPU
sessions (on a machine with one)."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from bigmodels.cluster import control
from bigmodels.cluster.control import FileLock, dispatcher_alive, dispatcher_lock, reap_orphans, resources_from_state
from bigmodels.cluster.dispatcher import Dispatcher
from bigmodels.cluster.runtime import ENV_RAY_ADDRESS
from bigmodels.base.processes import pid_alive
from bigmodels.runs.queue import submit
from bigmodels.runs.store import RunStore
from tests.conftest import REPO, write_mnist_folder
from tests.test_dispatcher import Running, cfg, finished, wait_for, warm_sessions


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


@pytest.fixture
def processes():
    """Every process a test starts is killed at the end, whatever happens."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def test_reaping_marks_runs_interrupted_only_when_no_dispatcher_runs(store):
    run = submit(store, cfg(seed=1)).run
    store.claim(run.id, "gone", 2**22 + 12345)  # no such process
    held = dispatcher_lock(store)
    held.acquire()  # a dispatcher serves the home: its runs are its business
    try:
        assert reap_orphans(store) == []
    finally:
        held.release()
    assert reap_orphans(store) == [run.id]
    assert store.get(run.id).status == "interrupted" and "dispatcher" in store.get(run.id).error


def test_one_dispatcher_per_home(store, monkeypatch):
    monkeypatch.setattr("bigmodels.cluster.dispatcher.LOCK_WAIT_S", 0.2)
    first = dispatcher_lock(store)
    assert first.acquire() and dispatcher_alive(store)
    assert Dispatcher(store.home).serve() == 3  # refused: the home is served
    first.release()
    assert not dispatcher_alive(store)


def test_file_lock_is_released_when_the_holder_dies(tmp_path, processes):
    path = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"import fcntl,os,time; fd=os.open({str(path)!r}, "
                               f"os.O_RDWR|os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
                               f"time.sleep(600)"], stdout=subprocess.PIPE)
    processes.append(holder)
    assert holder.stdout.readline().strip() == b"held"
    assert FileLock(path).held_elsewhere()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert not FileLock(path).held_elsewhere()


def test_the_app_starts_one_dispatcher_however_many_sessions_ask(store, monkeypatch):
    import bigmodels.app.launcher as lui

    started = []

    class Alive:
        def poll(self):
            return None

    def fake_start(home, data_dir=None, owned=True, threads=None, warm_models=None, idle_exit=None):
        time.sleep(0.05)  # widen the race window
        started.append(str(home))
        return Alive()

    monkeypatch.setattr(lui, "start_dispatcher", fake_start)
    lui._dispatchers.clear()
    barrier = threading.Barrier(6)
    answers = []

    def session():
        barrier.wait()
        answers.append(lui.ensure_dispatcher(store))

    threads = [threading.Thread(target=session) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert started == [str(store.home)] and sorted(answers) == ["started"] + ["starting"] * 5
    held = dispatcher_lock(store)
    held.acquire()  # one an operator (or systemd) runs serves the home
    try:
        assert lui.ensure_dispatcher(store) == "running"
    finally:
        held.release()
    lui._dispatchers.clear()


def test_a_dispatcher_exits_when_the_app_that_started_it_dies(ray_cluster, store, small_mnist, tmp_path, processes):
    folder = write_mnist_folder(small_mnist, tmp_path / "mnist")
    env = {**os.environ, "PYTHONPATH": str(REPO), ENV_RAY_ADDRESS: ray_cluster.address}
    command = control.dispatcher_command(store.home, str(folder), warm_models=[])
    app = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen({command!r} + ['--parent-pid', str(os.getpid())], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n")], cwd=REPO, env=env, stdout=subprocess.PIPE)
    processes.append(app)
    dispatcher_pid = int(app.stdout.readline())
    wait_for(lambda: dispatcher_alive(store), timeout=120, what="the dispatcher to start")
    app.send_signal(signal.SIGKILL)
    app.wait(10)
    wait_for(lambda: not pid_alive(dispatcher_pid), timeout=120, what="the orphaned dispatcher to exit")
    assert not dispatcher_alive(store)


def test_the_form_plans_against_the_clusters_devices():
    state = {"sessions": [{"device": "cuda", "state": "warm", "device_name": "H100 (80 GiB)", "host": "gpu-1",
                           "device_free": 70 << 30},
                          {"device": "cuda", "state": "busy", "device_name": "H100 (80 GiB)", "host": "gpu-2",
                           "device_free": 10 << 30},
                          {"device": "cpu", "state": "warm", "device_name": "CPU", "host": "web"},
                          {"device": "cuda", "state": "warming", "host": "gpu-3"}],
             "nodes": [{"cpus": 2, "memory_bytes": 8 << 30}, {"cpus": 64, "memory_bytes": 500 << 30}]}
    resources = resources_from_state(state)
    assert [d.name for d in resources.devices] == ["cuda:0", "cuda:1", "cpu"]  # GPUs of other nodes count
    assert "gpu-2" in resources.devices[1].description and resources.cpu_cores == 66
    assert resources_from_state(None) is None and resources_from_state({"sessions": []}) is None


# --------------------------------------------------------------------- GPU
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@needs_cuda
def test_a_warm_gpu_session_starts_runs_at_once_and_reports_memory(ray_cluster, store, small_mnist, tmp_path):
    folder = write_mnist_folder(small_mnist, tmp_path / "mnist")
    with Running(store, folder):
        state = warm_sessions(store, n=2, timeout=300)
        gpu = next(s for s in state["sessions"] if s["device"] == "cuda")
        assert gpu["device_total"] > 0 and gpu["device_free"] > 0
        first = submit(store, cfg(device="cuda")).run
        second = submit(store, cfg(device="cuda", seed=4)).run
        done = finished(store, second.id)
        assert done.status == "succeeded" and finished(store, first.id).status == "succeeded"
    assert done.launch_latency < 1.0  # the second run on a warm session
    assert store.epochs(done.id)[-1]["memory_bytes"] > 0 and "GiB" in done.device_name
