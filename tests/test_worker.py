"""The worker: warm sessions, failures, cancel/stop, SIGKILL and resume, locks.

Runs are tiny (LeNet-5 on 2,000 images, 32 steps an epoch) so the whole file
stays around a minute on two shared cores."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from bigmodels.models.checkpoints import load_checkpoint
from bigmodels.runs.store import RunStore
from bigmodels.train.config import default_config
from bigmodels.train.engine import train
from bigmodels.runs.worker import FileLock, Worker, busy_lock, reap_orphans, worker_alive, worker_command, worker_lock
from bigmodels.runs.processes import pid_alive
from bigmodels.runs.queue import submit
from tests.conftest import REPO


def cfg(**changes):
    return default_config("cnn", **{"epochs": 1, "batch_size": 64, "train_subset": 2000, "device": "cpu",
                                    "seed": 3, **changes})


def wait_for(predicate, timeout=120.0, every=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


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


def in_background(worker):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", worker.serve()), daemon=True)
    thread.start()
    return thread, result


# ---------------------------------------------------------------- failures
def test_failures_are_recorded_and_the_worker_keeps_serving(store, small_mnist, monkeypatch):
    import bigmodels.runs.worker as worker_module

    nan_run = submit(store, default_config(
        "transformer", model_overrides={"patch_size": 7, "dim": 32, "depth": 1, "heads": 2}, optimizer="sgd",
        lr=10.0, momentum=0.99, schedule="constant", label_smoothing=0.0, epochs=1, batch_size=64,
        train_subset=640, device="cpu")).run
    oom_run = submit(store, cfg(seed=42)).run
    good_run = submit(store, cfg()).run

    real_train = worker_module.train

    def train_with_a_full_gpu(run_plan, *args, **kwargs):  # what torch raises when CUDA runs out of memory
        if run_plan.config.seed == 42:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.10 GiB total)")
        return real_train(run_plan, *args, **kwargs)

    monkeypatch.setattr(worker_module, "train", train_with_a_full_gpu)
    worker = Worker(store.home, "cpu", data=small_mnist, max_runs=3, warm_models=[])
    assert worker.serve() == 0

    nan_after, oom_after, good_after = (store.get(r.id) for r in (nan_run, oom_run, good_run))
    assert nan_after.status == "failed" and "numerical failure: loss became nan" in nan_after.error
    assert oom_after.status == "failed" and oom_after.error.startswith("out of memory on the device")
    assert "lower the batch size" in oom_after.error
    assert any("OutOfMemoryError" in line for _, line in store.logs(oom_run.id))
    assert good_after.status == "succeeded" and good_after.final_accuracy > 0.5
    # one device, one job at a time: the three runs did not overlap
    ordered = sorted((nan_after, oom_after, good_after), key=lambda r: r.started_at)
    for earlier, later in zip(ordered, ordered[1:]):
        assert later.started_at >= earlier.finished_at
    assert good_after.device == "cpu" and good_after.versions["torch"] == torch.__version__
    assert good_after.data_source and good_after.device_name
    assert load_checkpoint(good_after.checkpoint)["epoch"] == 1
    assert not worker_alive(store, "cpu")  # the lock went with the worker


def test_cancel_stops_a_running_run_and_stop_interrupts_it(store, small_mnist):
    run = submit(store, cfg(epochs=3, batch_size=32)).run
    worker = Worker(store.home, "cpu", data=small_mnist, max_runs=1, warm_models=["cnn"])
    thread, result = in_background(worker)
    wait_for(lambda: store.get(run.id).step >= 5, what="5 steps")
    assert worker_alive(store, "cpu")
    assert store.request_cancel(run.id) == "running"
    thread.join(60)
    assert result["code"] == 0
    cancelled = store.get(run.id)
    assert cancelled.status == "cancelled" and cancelled.step < cancelled.total_steps
    ckpt = load_checkpoint(cancelled.checkpoint)
    steps_per_epoch = 2000 // 32 + (2000 % 32 > 0)
    stopped_at = ckpt["epoch"] * steps_per_epoch + ckpt["step_in_epoch"]
    # stopped before the end (on a busy machine, maybe past an epoch boundary), resumable from there
    assert ckpt["epoch"] < 3 and 0 < stopped_at < cancelled.total_steps

    store.resume(run.id)
    worker = Worker(store.home, "cpu", data=small_mnist, max_runs=1, warm_models=["cnn"])
    thread, result = in_background(worker)
    wait_for(lambda: store.get(run.id).step >= stopped_at + 5, what="resumed steps")
    worker.stop()  # what SIGTERM does to `python -m bigmodels worker`
    thread.join(60)
    stopped = store.get(run.id)
    assert stopped.status == "interrupted" and "resume continues" in stopped.error
    assert stopped.attempts == 2 and stopped.start_step == stopped_at


# -------------------------------------------------------- SIGKILL + resume
def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_weights(store, small_mnist, small_mnist_dir, processes):
    config = cfg(epochs=3, label_smoothing=0.1)
    run = submit(store, config).run
    env = {**os.environ, "BIGMODELS_DATA_DIR": str(small_mnist_dir), "PYTHONPATH": str(REPO)}
    command = worker_command(store.home, "cpu", threads=torch.get_num_threads(), warm_models=["cnn"])
    proc = subprocess.Popen(command + ["--idle-exit", "60"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    processes.append(proc)
    wait_for(lambda: store.get(run.id).epoch >= 1 or proc.poll() is not None, timeout=180, what="epoch 1")
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)

    left = store.get(run.id)
    assert left.status == "running" and not pid_alive(left.worker_pid)  # nobody told the store
    ckpt = load_checkpoint(left.checkpoint)  # written atomically: intact whatever the moment of the kill
    assert 1 <= ckpt["epoch"] < 3 and ckpt["step_in_epoch"] == 0

    worker = Worker(store.home, "cpu", data=small_mnist, max_runs=1, warm_models=[])
    thread, result = in_background(worker)
    interrupted = wait_for(lambda: (r := store.get(run.id)).status == "interrupted" and r, what="interrupted")
    assert "previous worker" in interrupted.error
    store.resume(run.id)
    thread.join(180)
    assert result["code"] == 0
    resumed = store.get(run.id)
    assert resumed.status == "succeeded" and resumed.attempts == 2
    assert [h["epoch"] for h in store.epochs(run.id)] == [1, 2, 3]
    assert [s["step"] for s in store.steps(run.id)] == list(range(1, 97))

    reference = train(config, small_mnist)  # never interrupted, same process settings
    final = load_checkpoint(resumed.checkpoint)["state_dict"]
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(tensor, final[name]), name
    assert store.epochs(run.id)[-1]["test_accuracy"] == reference.history[-1]["test_accuracy"]


def test_reaping_marks_runs_of_dead_workers_only(store):
    dead = submit(store, cfg(seed=1)).run
    store.claim_next("cpu", "gone-worker", 2**22 + 12345)  # no such process
    alive = submit(store, cfg(seed=2)).run
    with store._write() as db:  # a run taken by a live process on another device
        db.execute("UPDATE runs SET status='running', target='mps', worker_pid=? WHERE id=?", (os.getpid(), alive.id))
    assert reap_orphans(store) == [dead.id]
    assert store.get(dead.id).status == "interrupted" and store.get(alive.id).status == "running"


# ------------------------------------------------------------------- locks
def test_one_worker_per_device(store, monkeypatch):
    import bigmodels.runs.worker as worker_module

    monkeypatch.setattr(worker_module, "LOCK_WAIT_SECONDS", 0.2)
    first = worker_lock(store, "cpu")
    assert first.acquire() and worker_alive(store, "cpu")
    assert Worker(store.home, "cpu").serve() == 3  # refused: the device is served
    first.release()
    assert not worker_alive(store, "cpu")


def test_a_busy_device_is_not_given_another_job(store):
    worker = Worker(store.home, "cpu")
    run = store.get(submit(store, cfg()).run.id)
    other = busy_lock(store, "cpu")
    assert other.acquire()
    assert not worker._take_devices(run)
    assert store.claim_next("cpu", worker.id, os.getpid(), can_run=worker._take_devices) is None
    other.release()
    assert store.claim_next("cpu", worker.id, os.getpid(), can_run=worker._take_devices).id == run.id
    assert worker._busy and worker._busy[0].held and busy_lock(store, "cpu").held_elsewhere()
    worker._release_devices()


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


def test_the_app_starts_one_worker_however_many_sessions_ask(store, monkeypatch):
    import bigmodels.app.launcher as lui
    import bigmodels.runs.worker as worker_module

    started = []

    class Running:
        def poll(self):
            return None

    def fake_start(home, device, data_dir=None, owned=True, threads=None):
        time.sleep(0.05)  # widen the race window
        started.append(device)
        return Running()

    monkeypatch.setattr(lui, "start_worker", fake_start)
    lui._workers.clear()
    barrier = threading.Barrier(6)
    answers = []

    def session():
        barrier.wait()
        answers.append(lui.ensure_worker(store, "cpu"))

    threads = [threading.Thread(target=session) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert started == ["cpu"] and sorted(answers) == ["started"] + ["starting"] * 5
    held = worker_lock(store, "cpu")
    held.acquire()  # a worker an operator started by hand serves the device
    try:
        assert lui.ensure_worker(store, "cpu") == "running"
    finally:
        held.release()
    lui._workers.clear()


def test_a_worker_exits_when_the_app_that_started_it_dies(store, small_mnist_dir, processes):
    env = {**os.environ, "BIGMODELS_DATA_DIR": str(small_mnist_dir), "PYTHONPATH": str(REPO)}
    command = worker_command(store.home, "cpu", threads=1, warm_models=[])
    app = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen({command!r} + ['--parent-pid', str(os.getpid())], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n")], cwd=REPO, env=env, stdout=subprocess.PIPE)
    processes.append(app)
    worker_pid = int(app.stdout.readline())
    wait_for(lambda: worker_alive(store, "cpu"), timeout=120, what="the worker to start")
    app.send_signal(signal.SIGKILL)
    app.wait(10)
    wait_for(lambda: not pid_alive(worker_pid), timeout=120, what="the orphaned worker to exit")
    assert not worker_alive(store, "cpu")


# --------------------------------------------------------------------- GPU
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@needs_cuda
def test_a_warm_gpu_session_starts_runs_at_once_and_reports_memory(store, small_mnist):
    first = submit(store, cfg(device="cuda")).run
    second = submit(store, cfg(device="cuda", seed=4)).run
    assert first.target == "cuda:0"
    worker = Worker(store.home, "cuda:0", data=small_mnist, max_runs=2, warm_models=["cnn"])
    assert worker.serve() == 0
    done = store.get(second.id)
    assert done.status == "succeeded" and store.get(first.id).status == "succeeded"
    assert done.launch_latency < 1.0  # the second run on a warm session
    assert store.epochs(done.id)[-1]["memory_bytes"] > 0
    assert "GiB" in done.device_name


@pytest.mark.cuda
@needs_cuda
def test_real_cuda_out_of_memory_fails_the_run_and_the_worker_goes_on(store, small_mnist):
    # 8192 images through the wide CNN's first convolution alone need ~0.8 GB
    too_big = submit(store, cfg(device="cuda", preset="wide", batch_size=8192, train_subset=None)).run
    fine = submit(store, cfg(device="cuda")).run
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(0.3 * 2**30 / torch.cuda.get_device_properties(0).total_memory, 0)
    try:
        Worker(store.home, "cuda:0", data=small_mnist, max_runs=2, warm_models=[]).serve()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    failed = store.get(too_big.id)
    assert failed.status == "failed" and failed.error.startswith("out of memory on the device")
    assert store.get(fine.id).status == "succeeded"


def test_the_heartbeat_records_the_workers_cpu_and_memory_while_it_trains(store, small_mnist):
    run = submit(store, cfg(epochs=30, batch_size=16, seed=21)).run  # long: it is cancelled once sampled
    worker = Worker(store.home, "cpu", data=small_mnist, max_runs=1, warm_models=["cnn"])
    thread, result = in_background(worker)
    samples = wait_for(lambda: len(store.system_metrics(run.id)) >= 2 and store.system_metrics(run.id),
                       what="two system samples")
    store.request_cancel(run.id)
    thread.join(60)
    assert result["code"] == 0
    assert all(s["memory_bytes"] > 10 * 2**20 for s in samples)  # the worker's resident memory (torch, MNIST)
    assert any(s["cpu_percent"] is not None and s["cpu_percent"] > 5 for s in samples)  # it was training
    assert all(s["gpu_percent"] is None and s["gpu_memory_bytes"] is None for s in samples)  # no GPU here
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
