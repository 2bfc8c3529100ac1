"""The training worker: a long-lived process that executes queued runs.

``python -m bigmodels worker --device cuda:0`` serves one device. It keeps a
*warm session* on it -- the device initialised, MNIST resident in its memory,
each architecture's kernels run once -- so a run submitted to an idle worker
starts training within a fraction of a second. Runs come from the run store
(``bigmodels.runs.store``); metrics, logs and the final status go back there.

One device, one worker, one job at a time. Two lock files per device, under
``<home>/locks``, enforce it across processes:

* ``worker-<device>.lock`` is held for the worker's life: a second worker for
  the same device exits, and anyone can tell whether a device is served (the
  kernel releases the lock when a process dies, even by SIGKILL);
* ``busy-<device>.lock`` is held while a job runs: a run on several GPUs takes
  the busy locks of every GPU it uses, so no other worker starts a job there.

A worker that starts on a device whose previous worker died marks the runs it
left as ``interrupted``; their last checkpoint stays, and resuming continues
from it (bit for bit on the CPU).
"""
from __future__ import annotations

import collections
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

from bigmodels.child_process import child_env
from bigmodels.data.mnist import ENV_DATA_DIR, MNIST, DeviceMNIST, load_mnist, normalize
from bigmodels.models.registry import create_model, get_spec, list_models
from bigmodels.problems import ConfigError, Problem
from bigmodels.provenance import git_commit, software_versions
from bigmodels.runs.processes import CpuMeter, pid_alive, process_memory
from bigmodels.runs.recorder import EventRecorder, StopWatch, record_outcome
from bigmodels.runs.store import ENV_HOME, Run, RunStore, device_key
from bigmodels.runs.torchrun import launch_command
from bigmodels.train.config import TrainConfig
from bigmodels.train.devices import describe_device
from bigmodels.train.engine import train
from bigmodels.train.plan import Resources, plan, resolve_device
from bigmodels.train.ranks import backend_for

POLL_SECONDS = 0.1  # how often an idle worker looks for a queued run
HEARTBEAT_SECONDS = 1.0  # also how often the system metrics are sampled
LOCK_WAIT_SECONDS = 5.0  # a lock probe by a page holds it for microseconds; wait that out
CPU_WORKER_NICE = 10  # below the app (nice 0): see serve_forever


# ------------------------------------------------------------------- locks
class FileLock:
    """An exclusive ``flock`` on a file; released by the kernel if the process dies."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def held_elsewhere(self) -> bool:
        """True if another process holds the lock right now."""
        if self._fd is not None:
            return False
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops our lock, if we got it
        return False


def worker_lock(store: RunStore, device: str) -> FileLock:
    return FileLock(store.locks_dir / f"worker-{device_key(device)}.lock")


def busy_lock(store: RunStore, device: str) -> FileLock:
    return FileLock(store.locks_dir / f"busy-{device_key(device)}.lock")


def worker_alive(store: RunStore, device: str) -> bool:
    """Is some process serving ``device`` for this store right now?"""
    return worker_lock(store, device).held_elsewhere()


def reap_orphans(store: RunStore) -> list[str]:
    """Mark runs interrupted whose worker is gone: no process serves their device
    and the process that took them is dead. Safe to call from any page load."""
    orphaned = []
    for run in store.list_runs(statuses=["running"]):
        if worker_alive(store, run.target) or pid_alive(run.worker_pid):
            continue
        orphaned += store.interrupt([run.id], f"the worker (pid {run.worker_pid}) stopped while the run was in "
                                              f"progress")
    return orphaned


# ---------------------------------------------------------- warm sessions
class DeviceSession:
    """A device made ready once and reused by every run: MNIST on the device,
    kernels warmed, provenance collected."""

    MAX_SUBSETS = 4

    def __init__(self, device: str, data: MNIST | None = None, data_dir: str | None = None,
                 warm_models: list[str] | None = None):
        self.device = torch.device(serving_device(device))
        self.mnist = data if data is not None else load_mnist(data_dir)
        self.full = DeviceMNIST(self.mnist, self.device)
        self._subsets: collections.OrderedDict[tuple[int, int], DeviceMNIST] = collections.OrderedDict()
        self.device_name = describe_device(self.device)
        self.versions = software_versions()
        self.git_commit = git_commit()
        self.warm_models = list_models() if warm_models is None else [get_spec(m).name for m in warm_models]
        self.warm_seconds = self._warm_up()

    def _warm_up(self) -> float:
        """One forward and backward pass of each architecture, so the first real step
        does not pay for kernel selection, allocator growth and lazy imports."""
        start = time.perf_counter()
        batch = normalize(self.full.test_x[:64])
        for name in self.warm_models:
            model = create_model(name).to(self.device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            loss = torch.nn.functional.cross_entropy(model(batch), self.full.test_y[:64])
            loss.backward()
            opt.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def data_for(self, train_subset: int | None, seed: int) -> DeviceMNIST | MNIST:
        """The resident data ``train`` will accept without reloading for this run."""
        if train_subset is None or train_subset >= self.full.train_size:
            if train_subset is not None:
                return self.mnist  # the engine builds it; a subset as large as the data is the data
            chosen = self.full
        else:
            key = (train_subset, seed)
            if key not in self._subsets:
                self._subsets[key] = DeviceMNIST(self.mnist, self.device, train_subset=train_subset, subset_seed=seed)
                while len(self._subsets) > self.MAX_SUBSETS:
                    self._subsets.popitem(last=False)
            self._subsets.move_to_end(key)
            chosen = self._subsets[key]
        return chosen

    def memory(self) -> tuple[int | None, str]:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device), "device"
        return process_memory(), "process"

    def gpu_use(self) -> tuple[float | None, int | None]:
        """(utilisation in percent, bytes allocated) of a CUDA device; (None, None) elsewhere
        (utilisation needs NVML, which not every machine has)."""
        if self.device.type != "cuda":
            return None, None
        try:
            utilisation = float(torch.cuda.utilization(self.device))
        except Exception:  # no pynvml / NVML: the memory alone is still worth recording
            utilisation = None
        return utilisation, torch.cuda.memory_allocated(self.device)


# ------------------------------------------------------------------ worker
def serving_device(requested: str) -> str:
    """The device a worker for ``requested`` serves, named as the plan names it
    ("cuda:0", "cpu"); ConfigError if this machine has none such."""
    resources = Resources.local()
    found = resolve_device(requested, resources)
    if found is None:
        raise ConfigError([Problem.of("plan.problem.no_device", device=requested,
                                      present=", ".join(d.name for d in resources.devices))])
    return found


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, torch.OutOfMemoryError):
        first = str(exc).splitlines()[0] if str(exc) else ""
        return (f"out of memory on the device ({first}); lower the batch size or the model size, or use "
                f"bf16")
    if isinstance(exc, FloatingPointError):
        return f"numerical failure: {exc}"
    if isinstance(exc, ConfigError):
        return "invalid configuration: " + "; ".join(exc.errors)
    return f"{type(exc).__name__}: {exc}"


class Worker:
    """Serves one device: claims queued runs from the store and trains them."""

    def __init__(self, home: str | os.PathLike | None = None, device: str = "cpu", data: MNIST | None = None,
                 data_dir: str | None = None, parent_pid: int | None = None, idle_exit: float | None = None,
                 max_runs: int | None = None, poll: float = POLL_SECONDS, warm_models: list[str] | None = None):
        self.store = RunStore(home)
        self.device = serving_device(device)
        self.data, self.data_dir, self.warm_models = data, data_dir, warm_models
        self.parent_pid, self.idle_exit, self.max_runs, self.poll = parent_pid, idle_exit, max_runs, poll
        self.id = f"{socket.gethostname()}:{os.getpid()}:{self.device}"
        self.lock = worker_lock(self.store, self.device)
        self.session: DeviceSession | None = None
        self.current: str | None = None
        self.current_is_distributed = False
        self.stopping = threading.Event()
        self.runs_done = 0
        self._busy: list[FileLock] = []

    # ---- lifecycle
    def stop(self, *_args) -> None:
        self.stopping.set()

    def should_exit(self) -> bool:
        if self.stopping.is_set():
            return True
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self.stopping.set()  # the app that started us is gone; so are we
            return True
        return False

    def serve(self) -> int:
        """Run until stopped, idle for ``idle_exit`` seconds, or ``max_runs`` done.
        Returns a process exit code (3: another worker already serves the device)."""
        if not self.lock.acquire(wait=LOCK_WAIT_SECONDS):
            print(f"another worker already serves {self.device} for {self.store.home}; exiting", file=sys.stderr)
            return 3
        heartbeat = threading.Thread(target=self._heartbeat_loop, daemon=True)
        try:
            self.store.forget_workers(self.device)
            self.store.register_worker(self.id, os.getpid(), socket.gethostname(), self.device)
            # runs our dead predecessor left (a torchrun started by hand may still be alive: its pid says so)
            stale = [r.id for r in self.store.list_runs(statuses=["running"])
                     if r.target == self.device and not pid_alive(r.worker_pid)]
            left = self.store.interrupt(stale, "the previous worker on this device stopped while the run was in "
                                               "progress")
            for run_id in left:
                print(f"marked run {run_id} interrupted (its worker had stopped)", file=sys.stderr)
            self.store.set_worker_state(self.id, "warming")
            start = time.perf_counter()
            self.session = DeviceSession(self.device, self.data, self.data_dir, self.warm_models)
            print(f"worker {self.id}: warm in {time.perf_counter() - start:.1f}s ({self.session.mnist.describe()})",
                  file=sys.stderr, flush=True)
            self.store.set_worker_state(self.id, "idle")
            heartbeat.start()
            idle_since = time.monotonic()
            while not self.should_exit():
                run = self.store.claim_next(self.device, self.id, os.getpid(), can_run=self._take_devices)
                if run is None:
                    if self.idle_exit is not None and time.monotonic() - idle_since > self.idle_exit:
                        break
                    time.sleep(self.poll)
                    continue
                self.execute(run)
                self.runs_done += 1
                idle_since = time.monotonic()
                if self.max_runs is not None and self.runs_done >= self.max_runs:
                    break
            return 0
        finally:
            self.stopping.set()
            try:
                self.store.set_worker_state(self.id, "gone")
            except Exception:  # the store may be what failed; the lock release below matters more
                pass
            self.lock.release()

    def _heartbeat_loop(self) -> None:
        cpu = CpuMeter()
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                memory, kind = self.session.memory() if self.session else (None, "process")
                system = None
                if self.current_is_distributed:  # the ranks train, not this process: its numbers would mislead
                    memory = None
                    cpu.sample()
                elif self.session is not None:
                    gpu_percent, gpu_memory = self.session.gpu_use()
                    system = {"cpu_percent": cpu.sample(), "memory_bytes": process_memory(),
                              "gpu_percent": gpu_percent, "gpu_memory_bytes": gpu_memory}
                self.store.heartbeat(self.current, self.id, memory, kind, system=system)
            except Exception as exc:  # a busy or broken store must not kill training
                print(f"heartbeat failed: {exc}", file=sys.stderr)

    # ---- device reservation
    def _devices_of(self, run: Run) -> list[str]:
        if run.world_size > 1 and run.target.startswith("cuda"):
            return [f"cuda:{i}" for i in range(run.world_size)]
        return [self.device]

    def _take_devices(self, run: Run) -> bool:
        locks = [busy_lock(self.store, d) for d in self._devices_of(run)]
        taken = []
        for lock in locks:
            if not lock.acquire():
                for held in taken:
                    held.release()
                return False
            taken.append(lock)
        self._busy = taken
        return True

    def _release_devices(self) -> None:
        for lock in self._busy:
            lock.release()
        self._busy = []

    # ---- executing
    def execute(self, run: Run) -> str:
        """Train one claimed run to a final status; never raises for a run's failure."""
        self.current, self.current_is_distributed = run.id, run.world_size > 1
        self.store.set_worker_state(self.id, "busy", run.id)
        try:
            if run.world_size > 1:
                status = self._execute_distributed(run)
            else:
                status = self._execute_local(run)
        finally:
            self._release_devices()
            self.current = None
            self.store.set_worker_state(self.id, "idle")
        return status

    def _execute_local(self, run: Run) -> str:
        checkpoint = self.store.checkpoint_path(run.id)
        session = self.session
        try:
            config = TrainConfig.from_dict(run.config)
            run_plan = plan(config, Resources.local(), data_size=session.full.train_size)
            self.store.set_provenance(run.id, run_plan.target, session.device_name, session.mnist.describe(),
                                      session.versions, session.git_commit, str(checkpoint))
            resume = checkpoint if run.resume and checkpoint.is_file() else None
            data = session.data_for(config.train_subset, config.seed)
            recorder = EventRecorder(self.store, run.id, config.batch_size)
            should_stop = StopWatch(self.store, run.id, also=self.should_exit)
            result = train(run_plan, data, on_event=recorder, should_stop=should_stop, checkpoint_path=checkpoint,
                           resume_from=resume)
        except Exception as exc:
            reason = _describe_failure(exc)
            self.store.log(run.id, "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000])
            self.store.finish(run.id, "failed", reason)
            if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            return "failed"
        return record_outcome(self.store, run.id, result.stopped)

    def _execute_distributed(self, run: Run) -> str:
        backend = backend_for("cuda" if run.target.startswith("cuda") else "cpu")
        data_dir = self.data_dir or os.environ.get(ENV_DATA_DIR)
        command = launch_command(run.id, self.store.home, run.world_size, backend, data_dir)
        command += ["--parent-pid", str(os.getpid())]
        log_path = self.store.logs_dir / f"{run.id}.torchrun.log"
        self.store.log(run.id, f"launching {run.world_size} processes with torchrun ({backend}); "
                               f"output in {log_path}")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    env=child_env(**{ENV_HOME: str(self.store.home)}))
            stop_sent = False
            while proc.poll() is None:
                if self.should_exit() and not stop_sent:
                    proc.send_signal(signal.SIGTERM)  # rank 0 checkpoints and records the interruption
                    stop_sent = True
                time.sleep(0.2)
        after = self.store.get(run.id)
        if after is not None and after.status == "running":  # rank 0 never recorded an end
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            status = "interrupted" if self.should_exit() else "failed"
            self.store.finish(run.id, status, f"torchrun exited with code {proc.returncode}: " + " | ".join(tail))
            return status
        return after.status if after is not None else "failed"


# --------------------------------------------------------------- start it
def worker_command(home: str | os.PathLike, device: str, data_dir: str | None = None,
                   parent_pid: int | None = None, threads: int | None = None,
                   warm_models: list[str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "bigmodels", "worker", "--home", str(home), "--device", device]
    if warm_models is not None:
        cmd += ["--warm", ",".join(warm_models)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    if parent_pid:
        cmd += ["--parent-pid", str(parent_pid)]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd


def start_worker(home: str | os.PathLike, device: str, data_dir: str | None = None,
                 owned: bool = True, threads: int | None = None) -> subprocess.Popen:
    """Start ``python -m bigmodels worker`` in the background. ``owned``: it exits
    when this process does (the app's worker, which watches its parent), instead
    of outliving it."""
    store = RunStore(home)
    log = open(store.logs_dir / f"worker-{device_key(device)}.log", "ab")
    try:
        return subprocess.Popen(worker_command(store.home, device, data_dir, os.getpid() if owned else None, threads),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env())
    finally:
        log.close()  # the child has its own copy of the descriptor


def serve_forever(home: str | None, device: str, data_dir: str | None = None, parent_pid: int | None = None,
                  idle_exit: float | None = None, max_runs: int | None = None, threads: int | None = None,
                  warm_models: list[str] | None = None) -> int:
    """The ``python -m bigmodels worker`` process: signals stop it cleanly."""
    if threads:
        torch.set_num_threads(threads)
    if device == "cpu":
        # Training on the CPU the app also serves pages from: the pages come first, so a
        # visitor's click is answered promptly and training takes the cycles left over.
        os.nice(CPU_WORKER_NICE)
    worker = Worker(home, device, data_dir=data_dir, parent_pid=parent_pid, idle_exit=idle_exit, max_runs=max_runs,
                    warm_models=warm_models)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    return worker.serve()
