"""The dispatcher as the app sees it: is it running, start it, what does it report.

This module never imports Ray: the app's pages call it on every rerun. One
dispatcher serves one home (``BIGMODELS_HOME``) on the app's host; a lock file
held for its whole life (``<home>/locks/dispatcher.lock``, released by the
kernel even on SIGKILL) makes a second one exit and tells anyone whether one
runs. What it knows of the cluster -- nodes, devices, sessions, why each queued
run waits, any problem with the store or the data -- it writes to
``<home>/dispatcher/state.json`` about once a second (atomically), so a page
reads a small file instead of asking Ray.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bigmodels.base.child_process import child_env
from bigmodels.base.i18n import DEFAULT_LANGUAGE
from bigmodels.base.problems import Problem
from bigmodels.base.processes import pid_alive
from bigmodels.runs.store import Run, RunStore
from bigmodels.train.plan import Device, Resources

STATE_STALE_S = 10.0  # a state file older than this describes a dispatcher that stopped writing
LOCK_WAIT_S = 5.0  # a page's probe holds the lock for microseconds; a starting dispatcher waits that out


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

    def held_elsewhere(self) -> bool:
        """True if another process holds the lock right now."""
        if self._fd is not None or not self.path.exists():
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)  # flock needs no write access: a read-only disk can be asked
        except FileNotFoundError:
            return False  # gone since
        except OSError:
            return True  # unreadable here: assume it is held rather than reap or start a second dispatcher
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops our lock, if we got it
        return False

    def holder_pid(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None


def dispatcher_lock(store: RunStore) -> FileLock:
    return FileLock(store.locks_dir / "dispatcher.lock")


def dispatcher_alive(store: RunStore) -> bool:
    return dispatcher_lock(store).held_elsewhere()


# How far a dispatcher's start has come, in order (its state file's "phase"): the process
# importing, the Ray cluster starting or joined, MNIST loading, the first session warming.
STARTUP_PHASES = ("starting", "cluster", "data", "sessions", "ready")


def startup_phase(store: RunStore, launched_at: float | None = None) -> tuple[str, float] | None:
    """(phase, seconds since the dispatcher started) while this home's cluster is starting;
    None once it is ready, or when no dispatcher runs. ``launched_at``: when this app
    launched one that has not reported yet (it is still importing)."""
    state = read_state(store)
    if state is not None:
        phase = state.get("phase", "ready")
        if phase == "ready" or phase not in STARTUP_PHASES:
            return None
        return phase, time.time() - float(state.get("started_at") or time.time())
    if launched_at is not None or dispatcher_alive(store):
        return "starting", time.time() - launched_at if launched_at is not None else 0.0
    return None


def state_path(store: RunStore) -> Path:
    return store.home / "dispatcher" / "state.json"


def read_state(store: RunStore) -> dict[str, Any] | None:
    """The dispatcher's last report, or None if there is none or it stopped reporting."""
    try:
        state = json.loads(state_path(store).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or time.time() - float(state.get("updated_at", 0)) > STATE_STALE_S:
        return None
    return state


def write_state(store: RunStore, state: dict[str, Any]) -> None:
    path = state_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, default=str))
    os.replace(tmp, path)


def dispatcher_command(home: str | os.PathLike, data_dir: str | None = None, parent_pid: int | None = None,
                       threads: int | None = None, warm_models: list[str] | None = None,
                       idle_exit: float | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "bigmodels", "dispatcher", "--home", str(home)]
    if idle_exit is not None:
        cmd += ["--idle-exit", str(idle_exit)]
    if warm_models is not None:
        cmd += ["--warm", ",".join(warm_models)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    if parent_pid:
        cmd += ["--parent-pid", str(parent_pid)]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd


def start_dispatcher(home: str | os.PathLike, data_dir: str | None = None, owned: bool = True,
                     threads: int | None = None, warm_models: list[str] | None = None,
                     idle_exit: float | None = None) -> subprocess.Popen:
    """Start ``python -m bigmodels dispatcher`` in the background; ``owned``: it exits
    when this process does (the app's), instead of outliving it; ``idle_exit``: it
    leaves after that many seconds without work."""
    store = RunStore(home)
    log = open(store.logs_dir / "dispatcher.log", "ab")
    try:
        return subprocess.Popen(dispatcher_command(store.home, data_dir, os.getpid() if owned else None, threads,
                                                   warm_models, idle_exit),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env(), start_new_session=True)
    finally:
        log.close()  # the child has its own copy of the descriptor


def reap_orphans(store: RunStore) -> list[str]:
    """Mark runs interrupted whose dispatcher is gone (safe from any page load);
    their checkpoints stay, and the next dispatcher reconciles their epochs."""
    if dispatcher_alive(store):
        return []
    orphaned = []
    for run in store.list_runs(statuses=["running"]):
        if pid_alive(run.dispatcher_pid) and run.dispatcher_pid != os.getpid():
            continue  # a dispatcher still starting (the lock comes first, but be safe)
        orphaned += store.interrupt([run.id], f"the dispatcher (pid {run.dispatcher_pid}) stopped while the run "
                                              f"was in progress")
    return orphaned


def resources_from_state(state: dict[str, Any] | None) -> Resources | None:
    """What a run can be planned on across the cluster, from the dispatcher's report:
    every GPU session (numbered cuda:0.. over all nodes, free memory as last read),
    then the CPU (the roomiest node's memory; cores over all nodes). None: no report,
    or no session warm yet."""
    if not state or not state.get("sessions"):
        return None
    sessions = [s for s in state["sessions"] if s.get("state") in ("warm", "busy")]
    if not sessions:
        return None
    gpus = [s for s in sessions if s.get("device") == "cuda"]
    devices = [Device(f"cuda:{i}", f"{s.get('device_name') or 'GPU'} on {s.get('host')}", s.get("device_free"))
               for i, s in enumerate(gpus)]
    cpu = [s for s in sessions if s.get("device") == "cpu"]
    if cpu:
        memory = [n.get("memory_bytes") for n in state.get("nodes", []) if n.get("memory_bytes")]
        devices.append(Device("cpu", cpu[0].get("device_name") or "CPU", int(max(memory)) if memory else None))
    cores = int(sum(n.get("cpus") or 0 for n in state.get("nodes", []))) or 1
    return Resources(tuple(devices), cores)


def wait_reasons(state: dict[str, Any] | None, lang: str = DEFAULT_LANGUAGE) -> dict[str, str]:
    """Why each queued run waits, in ``lang``, from the dispatcher's report."""
    out = {}
    for run_id, reason in ((state or {}).get("waiting") or {}).items():
        try:
            out[run_id] = Problem.from_json(reason).text(lang)
        except (KeyError, TypeError, ValueError, IndexError):
            continue  # a report from another version: not worth a broken page
    return out


# A dispatcher the CLI starts serves the queued runs (a sweep's, say), then leaves after this long without work
# (the CLI may have exited long before; nobody else would stop it).
DISPATCHER_IDLE_EXIT_SECONDS = 120.0


def ensure_dispatcher(store: RunStore, runs: list[Run], data_dir: str | None = None) -> list[str]:
    """Make sure something executes the queued ``runs`` of this home: this home's
    dispatcher (``bigmodels.cluster``), which places them on free device sessions,
    in parallel where the cluster has several. Returns what was started.

    The one place that knows what executes queued runs; a dispatcher started here
    leaves after ``DISPATCHER_IDLE_EXIT_SECONDS`` without work (the app's own, if it
    runs, serves the home already)."""
    if not any(r.status == "queued" for r in runs) or dispatcher_alive(store):
        return []
    start_dispatcher(store.home, data_dir=data_dir, owned=False, idle_exit=DISPATCHER_IDLE_EXIT_SECONDS)
    return ["the dispatcher"]
