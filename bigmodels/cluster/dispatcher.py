"""The dispatcher: one per server, on the app's host, feeding runs to device sessions.

``python -m bigmodels dispatcher`` (started by the app on first need, or by
systemd) joins this server's Ray cluster (``bigmodels.cluster.runtime``),
keeps one warm ``SessionActor`` per device of every node, takes queued runs
from the run store in order and places each on a free session that fits it
(``bigmodels.cluster.placement``), and writes what the session streams back
into the store: steps, epochs, logs, system samples, and after every epoch the
checkpoint, atomically under ``BIGMODELS_HOME`` -- the checkpoint first, then
its epoch, and on any interruption the epochs a checkpoint holds but the store
lacks are recorded from it, so the two always agree. Runs on several devices
go through Ray Train (``bigmodels.cluster.multi``).

Faults, and what happens:

* a session's process dies (SIGKILL, ``ray.kill``, out of host memory): its run
  is interrupted with its last checkpoint intact, and a new session is started;
* a node leaves: its runs are interrupted, its sessions forgotten, queued runs
  go to the remaining devices;
* the dispatcher dies: Ray kills the actors it owns, so training stops within
  seconds; the next dispatcher marks those runs interrupted (resumable) and
  records nothing twice (metrics are keyed by run and step / epoch);
* the store cannot be written (read-only, deleted, disk full): every write is
  retried with back-off; training goes on, messages wait in memory, the
  launcher shows the problem, and no finished run is lost;
* the data cannot be loaded: runs fail at once with the data error as reason.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from bigmodels.cluster import runtime
from bigmodels.cluster.control import LOCK_WAIT_S, dispatcher_lock, write_state
from bigmodels.cluster.messages import Events, Outcome, Provenance
from bigmodels.cluster.multi import MultiRun, RunChannel, cluster_cpus_free, make_trainer, multi_wait_reason
from bigmodels.cluster.placement import SessionView, choose_session
from bigmodels.cluster.session import SessionActor
from bigmodels.data.mnist import DataError, load_mnist
from bigmodels.models.checkpoints import CheckpointError, atomic_write_bytes, load_checkpoint
from bigmodels.base.problems import ConfigError, Problem
from bigmodels.base.processes import pid_alive, process_memory
from bigmodels.runs.recorder import INTERRUPTED_REASON, EventRecorder, final_status
from bigmodels.runs.store import Run, RunStore, StoreError
from bigmodels.train.config import TrainConfig
from bigmodels.train.plan import memory_need

POLL_S = 0.05  # how often the queue is looked at: part of the submit-to-first-step latency
CANCEL_POLL_S = 0.3  # how often running runs' cancel flags are read
REFRESH_S = 2.0  # nodes and sessions looked at again
STATE_EVERY_S = 1.0
RETRY_FIRST_S, RETRY_MAX_S = 0.2, 10.0  # back-off of a failing store write
STOP_GRACE_S = 20.0  # on shutdown, how long runs get to checkpoint and record their end
SESSION_LOST = (ray.exceptions.RayActorError, ray.exceptions.ActorDiedError, ray.exceptions.ObjectLostError,
                ray.exceptions.OwnerDiedError, ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError)


# ------------------------------------------------------------ the store
class ResilientStore:
    """The run store, with every call retried with back-off until it succeeds.

    A failing store must never kill the dispatcher or lose a finished run:
    a call that fails is repeated (on a freshly opened store, so a deleted
    file is set up again) until it works; ``on_problem`` hears the message
    while it fails and ``None`` once it works again. Retries give up only when
    ``giving_up()`` is true (the dispatcher is stopping and waited long enough).
    """

    def __init__(self, home, on_problem: Callable[[str | None], None], giving_up: Callable[[], bool]):
        self.home, self.on_problem, self.giving_up = home, on_problem, giving_up
        self._store = RunStore(home)

    def __getattr__(self, name: str):
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self.retry(lambda: getattr(self._store, name)(*args, **kwargs))

    def retry(self, write: Callable[[], Any]) -> Any:
        """``write()`` until it succeeds (a store call, or a checkpoint file under the home)."""
        delay, failed = RETRY_FIRST_S, False
        while True:
            try:
                result = write()
                if failed:
                    self.on_problem(None)
                return result
            except (StoreError, OSError) as exc:
                failed = True
                # a checkpoint write's OSError in the store's words (read-only, full), as a store error's
                self.on_problem(str(exc) if isinstance(exc, StoreError) else self._store.explain(exc))
                if self.giving_up():
                    raise
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                try:
                    self._store = RunStore(self.home)  # a deleted or replaced file gets its schema again
                except (StoreError, OSError):
                    pass  # cannot even open it yet: the next attempt tries again


# ------------------------------------------------------------- sessions
@dataclass
class Session:
    key: str  # "<host>/<device>", unique in the cluster
    node_id: str
    host: str
    device: str  # "cpu" or "cuda" (a GPU session sees its one GPU as cuda:0)
    actor: Any
    ready: Any  # the ObjectRef of its first describe(); None once ready
    state: str = "warming"  # warming | warm | busy | dead
    run_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    error: str | None = None

    def view(self, node_resources: dict[str, float]) -> SessionView:
        return SessionView(self.key, self.device.split(":")[0], self.state == "warm",
                           self.info.get("device_free"), self.info.get("device_total"), node_resources)


def _kill(actor) -> None:
    """``ray.kill``, for an actor that may be dead already (its node gone, killed by a test)."""
    try:
        ray.kill(actor)
    except Exception:  # nothing is left to stop
        pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


class Dispatcher:
    """Places queued runs of one home on the cluster's device sessions."""

    def __init__(self, home=None, data_dir: str | None = None, parent_pid: int | None = None,
                 warm_models: list[str] | None = None, threads: int | None = None, idle_exit: float | None = None,
                 poll: float = POLL_S):
        self.raw_store = RunStore(home)
        self.home = self.raw_store.home
        self.data_dir, self.parent_pid, self.warm_models, self.threads = data_dir, parent_pid, warm_models, threads
        self.idle_exit, self.poll = idle_exit, poll
        self.id = f"dispatcher@{socket.gethostname()}:{os.getpid()}"
        # How far its start has come, for the pages (STARTUP_PHASES), and since when.
        self.phase, self.started_at = "starting", time.time()
        self.stopping = threading.Event()
        self._stop_deadline: float | None = None
        self.problems: dict[str, str] = {}  # what is wrong now ("store", "data", "cluster"), for the launcher
        self.store = ResilientStore(self.home, self._store_problem, self._giving_up)
        self.lock = dispatcher_lock(self.raw_store)
        self.sessions: dict[str, Session] = {}
        self.nodes: list[dict[str, Any]] = []
        self.running: dict[str, dict[str, Any]] = {}  # run id -> {"thread", "sessions", "stop_sent", ...}
        self.waiting: dict[str, Problem] = {}  # run id -> why it waits
        self.data_ref = None
        self._needs: dict[str, int] = {}  # run id -> its plan's memory need (a run's config never changes)
        self._describing: dict[Any, Session] = {}  # describe() asked, not yet answered
        self._joined_here = False
        self.orphaned = False
        self.cluster: runtime.Cluster | None = None
        self._mutex = threading.RLock()

    # ------------------------------------------------------------ problems
    def _store_problem(self, message: str | None) -> None:
        if message is None:
            self.problems.pop("store", None)
            print("run store writable again", file=sys.stderr, flush=True)
        elif self.problems.get("store") != message:
            self.problems["store"] = message
            print(f"run store write failed, retrying: {message}", file=sys.stderr, flush=True)

    def _giving_up(self) -> bool:
        return self._stop_deadline is not None and time.monotonic() > self._stop_deadline

    def stop(self, *_args) -> None:
        self.stopping.set()

    def should_exit(self) -> bool:
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self.orphaned = True  # the app that started us is gone; so are we
            self.stopping.set()
        return self.stopping.is_set()

    # ------------------------------------------------------------ lifecycle
    def serve(self) -> int:
        """Run until stopped (or idle for ``idle_exit`` s). Exit code 3: another
        dispatcher already serves this home."""
        if not self.lock.acquire(wait=LOCK_WAIT_S):
            print(f"another dispatcher already serves {self.home}; exiting", file=sys.stderr)
            return 3
        try:
            self._recover()
            self._set_phase("cluster")
            self._joined_here = not runtime.joined()  # a test's process may have joined already: stay joined
            self.cluster = runtime.connect(self.home)
            if threading.current_thread() is threading.main_thread():
                # ray.init installs its own SIGTERM handler (which kills the process): ours come after
                signal.signal(signal.SIGTERM, self.stop)
                signal.signal(signal.SIGINT, self.stop)
            print(f"{self.id}: joined Ray at {self.cluster.address} "
                  f"({'embedded' if self.cluster.embedded else 'external'})", file=sys.stderr, flush=True)
            self._set_phase("data")
            self._load_data()
            self._set_phase("sessions")
            self._loop()
            return 0
        finally:
            self._shutdown()
            self.lock.release()

    def _recover(self) -> None:
        """What the previous dispatcher left: runs it was training, half-written files."""
        stale = [r for r in self.store.list_runs(statuses=["running"]) if not pid_alive(r.dispatcher_pid)
                 or r.dispatcher_pid == os.getpid()]
        for run in stale:
            self._interrupt(run.id, "the dispatcher stopped while the run was in progress")
        removed = self.store.remove_partial_checkpoints()
        if removed:
            print(f"removed {len(removed)} partial checkpoint file(s) a killed writer left", file=sys.stderr)

    def _load_data(self) -> None:
        try:
            mnist = load_mnist(self.data_dir)
        except (DataError, OSError, ValueError) as exc:
            self.problems["data"] = f"the training data cannot be loaded: {exc}"
            print(self.problems["data"], file=sys.stderr, flush=True)
            return
        self.data_ref = ray.put(mnist)  # every session on every node gets it from here: no shared disk

    def _loop(self) -> None:
        last_refresh = last_cancel = last_state = 0.0
        idle_since = time.monotonic()
        while not self.should_exit():
            now = time.monotonic()
            if now - last_refresh >= REFRESH_S:
                self._refresh_sessions()
                last_refresh = now
            self._collect_ready()
            if now - last_cancel >= CANCEL_POLL_S:
                self._forward_cancels()
                last_cancel = now
            placed = self._place_queued()
            if now - last_state >= STATE_EVERY_S:
                self._write_state()
                last_state = now
            if self.running or placed or self.waiting:
                idle_since = now
            elif self.idle_exit is not None and now - idle_since > self.idle_exit:
                break
            self.stopping.wait(self.poll)

    def _shutdown(self) -> None:
        """Stop every run (each checkpoints and is recorded interrupted), then leave."""
        self.stopping.set()
        self._stop_deadline = time.monotonic() + STOP_GRACE_S
        with self._mutex:
            running = list(self.running.items())
        for run_id, job in running:
            self._send_stop(run_id, job)
        for _run_id, job in running:
            job["thread"].join(timeout=max(0.0, self._stop_deadline - time.monotonic()))
        try:
            write_state(self.raw_store, {**self._state(), "stopped": True, "updated_at": 0})
        except OSError:
            pass
        for session in self.sessions.values():  # our actors die with this driver anyway; in a shared
            _kill(session.actor)                # process (tests) they must not outlive the dispatcher
        if getattr(self, "_joined_here", False):
            runtime.disconnect()
        if self.orphaned and self.cluster is not None and self.cluster.embedded:
            # the app that started us (and so the embedded head) is gone: nobody needs the head
            # now, and it would hold ~1 GB for ever. A restart (systemd, an operator) keeps it warm.
            runtime.stop_embedded(self.home)

    # ------------------------------------------------------------- sessions
    def _refresh_sessions(self) -> None:
        """Nodes as Ray sees them; a session for every device of every alive node."""
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            self.problems.pop("cluster", None)
        except Exception as exc:  # the head unreachable for a moment: keep what we have
            self.problems["cluster"] = f"the Ray cluster does not answer: {_short(exc)}"
            return
        alive = {n["NodeID"] for n in nodes}
        self.nodes = nodes
        for session in list(self.sessions.values()):
            if session.node_id not in alive and session.state != "dead":
                session.state, session.error = "dead", "its node left the cluster"
        for key in [k for k, s in self.sessions.items() if s.state == "dead" and s.run_id is None]:
            del self.sessions[key]
        if self.data_ref is None:
            return
        for node in nodes:
            host = node.get("NodeManagerHostname") or node.get("NodeManagerAddress")
            resources = node.get("Resources", {})
            gpus = 0 if self._gpus_lent() else int(resources.get("GPU", 0))  # lent to a Ray Train run
            devices = ["cpu"] + [f"cuda:{i}" for i in range(gpus)]
            for device in devices:
                key = self._unique_key(f"{host or node['NodeID'][:8]}/{device}", node["NodeID"])
                if key in self.sessions:
                    continue
                self._start_session(key, node["NodeID"], host, device)

    def _unique_key(self, key: str, node_id: str) -> str:
        existing = self.sessions.get(key)
        if existing is None or existing.node_id == node_id:
            return key
        return f"{key}@{node_id[:8]}"  # two nodes on one host (a test, or containers)

    def _start_session(self, key: str, node_id: str, host: str, device: str) -> None:
        gpu = device.startswith("cuda")
        actor = SessionActor.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            # Logical resources: the dispatcher, not Ray's scheduler, decides which run uses a
            # device, so a session holds no CPU (Ray Train workers and Serve replicas need them)
            # and a GPU session holds its GPU.
            num_cpus=0, num_gpus=1 if gpu else 0, max_restarts=0, max_concurrency=4,
        ).remote("cuda" if gpu else "cpu", self.data_ref, self.warm_models, self.threads)
        self.sessions[key] = Session(key, node_id, host, "cuda" if gpu else "cpu", actor, actor.describe.remote())
        print(f"starting session {key}", file=sys.stderr, flush=True)

    def _collect_ready(self) -> None:
        pending = {s.ready: s for s in self.sessions.values() if s.ready is not None}
        if not pending:
            return
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in done:
            session = pending[ref]
            session.ready = None
            try:
                session.info = ray.get(ref)
                session.state = "warm" if session.run_id is None else "busy"
                print(f"session {session.key} warm in {session.info.get('ready_seconds', 0):.1f}s",
                      file=sys.stderr, flush=True)
            except Exception as exc:
                session.state, session.error = "dead", _short(exc)
                print(f"session {session.key} failed to start: {session.error}", file=sys.stderr, flush=True)

    def _describe_sessions(self) -> None:
        """Fresh memory and utilisation of every ready session, without waiting: the
        answers asked for last time are collected, new questions are sent (a busy
        session answers between steps; placing a queued run must not wait for it)."""
        asked = self._describing
        if asked:
            done, _ = ray.wait(list(asked), num_returns=len(asked), timeout=0)
            for ref in done:
                session = asked.pop(ref)
                try:
                    session.info = ray.get(ref)
                except Exception as exc:
                    session.state, session.error = "dead", _short(exc)
        pending = {id(s) for s in asked.values()}
        for session in self.sessions.values():
            if session.ready is None and session.state in ("warm", "busy") and id(session) not in pending:
                asked[session.actor.describe.remote()] = session

    # ------------------------------------------------------------ placing
    def _place_queued(self) -> int:
        queued = self._queued_runs()
        placed = 0
        waiting: dict[str, Problem] = {}
        for run in queued:
            if run.id in self.running:
                continue
            if "data" in self.problems:
                self._fail_queued(run, self.problems["data"])
                continue
            try:
                need = self._memory_need(run)
            except ConfigError as exc:
                self._fail_queued(run, "invalid configuration: " + "; ".join(exc.errors))
                continue
            if run.world_size > 1:
                from_multi = self._place_multi(run, need)
                if from_multi is None:
                    placed += 1
                else:
                    waiting[run.id] = from_multi
                continue
            views = [s.view(self._node_resources(s.node_id)) for s in self.sessions.values()]
            chosen, reason = choose_session(views, run.target.split(":")[0], need, run.needs)
            if chosen is None:
                waiting[run.id] = reason
                continue
            self._start_run(run, [self.sessions[chosen]])
            placed += 1
        self.waiting = waiting
        return placed

    def _queued_runs(self) -> list[Run]:
        """The queue. While the store is known to fail, one read without retrying (the loop
        asks again in ``poll`` seconds; the failing write is being retried elsewhere)."""
        source = self.raw_store if "store" in self.problems else self.store
        try:
            return source.list_runs(statuses=["queued"])
        except (StoreError, OSError):
            return []  # the store problem is already reported; nothing new is placed meanwhile

    def _node_resources(self, node_id: str) -> dict[str, float]:
        return next((n.get("Resources", {}) for n in self.nodes if n["NodeID"] == node_id), {})

    def _memory_need(self, run: Run) -> int:
        """Bytes one process of ``run`` needs on its device: planned when it was queued and
        stored with it. A run queued before runs kept it gets the same estimate, once."""
        if run.memory_need is not None:
            return run.memory_need
        if run.id not in self._needs:
            self._needs[run.id] = memory_need(TrainConfig.from_dict(run.config))
        return self._needs[run.id]

    def _fail_queued(self, run: Run, reason: str) -> None:
        try:
            self.store.claim(run.id, self.id, os.getpid())
            self.store.finish(run.id, "failed", reason)
        except Exception as exc:  # it was cancelled meanwhile, or the store failed (reported)
            print(f"could not fail {run.id}: {_short(exc)}", file=sys.stderr)

    def _start_run(self, run: Run, sessions: list[Session], multi: dict | None = None) -> None:
        try:
            where = sessions[0].key if sessions else f"ray-train x{run.world_size}"
            claimed = self.store.claim(run.id, where, os.getpid())
        except Exception:  # cancelled between the query and the claim
            return
        for session in sessions:
            session.state, session.run_id = "busy", run.id
        job = {"sessions": sessions, "stop_sent": False, "multi": multi}
        target = self._execute_multi if multi is not None else self._execute
        job["thread"] = threading.Thread(target=target, args=(claimed, job), name=f"run-{run.id}", daemon=True)
        with self._mutex:
            self.running[run.id] = job
        job["thread"].start()

    def _release(self, run_id: str, lost: bool = False, reason: str | None = None) -> None:
        with self._mutex:
            job = self.running.pop(run_id, None)
        self._needs.pop(run_id, None)
        for session in (job or {}).get("sessions", []):
            session.run_id = None
            if lost:
                session.state, session.error = "dead", reason
            elif session.state == "busy":
                session.state = "warm"

    # -------------------------------------------------------- cancelling
    def _forward_cancels(self) -> None:
        with self._mutex:
            running = list(self.running.items())
        for run_id, job in running:
            if job["stop_sent"]:
                continue
            try:
                wanted = self.raw_store.cancel_requested(run_id)
            except (StoreError, OSError):
                continue
            if wanted:
                self._send_stop(run_id, job)

    def _send_stop(self, run_id: str, job: dict) -> None:
        job["stop_sent"] = True
        if job.get("multi") is not None:
            job["multi"]["channel"].request_stop.remote()
            return
        for session in job["sessions"]:
            try:
                session.actor.stop.remote(run_id)
            except Exception:
                pass  # a dead session stops nothing; its stream reports the loss

    # ------------------------------------------------------------ executing
    def _resume_bytes(self, run: Run) -> bytes | None:
        path = self.raw_store.checkpoint_path(run.id)
        if not (run.resume and path.is_file()):
            return None
        self._restore_epochs(run.id)
        return path.read_bytes()

    def _execute(self, run: Run, job: dict) -> None:
        session = job["sessions"][0]
        status, reason, lost = "failed", None, False
        try:
            resume = self._resume_bytes(run)
            stream = session.actor.train.options(num_returns="streaming").remote(run.id, run.config, resume)
            status, reason = self._consume(run, (ray.get(ref) for ref in stream), session.key)
        except SESSION_LOST as exc:
            lost = True
            status, reason = "interrupted", f"the session {session.key} stopped while training ({_short(exc)})"
        except Exception as exc:  # a bug here must not leave the run 'running' for ever
            traceback.print_exc()
            status, reason = "failed", f"the dispatcher failed while recording the run: {_short(exc)}"
        self._finish(run.id, status, reason)
        self._release(run.id, lost=lost, reason=reason)
        if lost:
            with self._mutex:  # a new session takes its place at the next refresh
                if self.sessions.get(session.key) is session:
                    del self.sessions[session.key]

    def _consume(self, run: Run, messages, where: str) -> tuple[str, str | None]:
        """Write a session's (or rank 0's) messages into the store; returns (status, reason)."""
        recorder = EventRecorder(self.store, run.id, int(run.config.get("batch_size", 1)))
        checkpoint_path = self.raw_store.checkpoint_path(run.id)
        outcome = Outcome("failed", "the session ended without an outcome")
        for message in messages:
            match message:
                case Provenance():
                    self.store.set_provenance(run.id, message.device, message.device_name, message.data_source,
                                              message.versions, message.git_commit, str(checkpoint_path),
                                              node=message.host)
                    self.store.log(run.id, f"placed on session {where} (node {message.host}, {message.device_name})")
                case Events():
                    if message.checkpoint is not None:  # first the checkpoint, then the epoch it follows
                        data = message.checkpoint
                        self.store.retry(lambda: atomic_write_bytes(checkpoint_path, data))
                    for event in message.events:
                        recorder(event)
                    if message.system is not None:
                        system = message.system
                        self.store.heartbeat(run.id, system.held_bytes, system.held_kind, system=asdict(system))
                case Outcome():
                    outcome = message
        if outcome.detail:
            self.store.log(run.id, outcome.detail)
        if outcome.status == "stopped":
            return final_status(True, self._cancel_requested(run.id))
        if outcome.status == "refused":
            return "interrupted", outcome.reason
        return outcome.status, outcome.reason

    def _cancel_requested(self, run_id: str) -> bool:
        """Was the stop a cancel? (An unreadable store: no, so the run is resumable.)"""
        try:
            return self.raw_store.cancel_requested(run_id)
        except (StoreError, OSError):
            return False

    def _finish(self, run_id: str, status: str, reason: str | None) -> None:
        if status == "interrupted":
            self._interrupt(run_id, reason or INTERRUPTED_REASON)
            return
        try:
            self.store.finish(run_id, status, reason)
        except (StoreError, OSError) as exc:
            print(f"could not record the end of {run_id} ({status}): {exc}", file=sys.stderr, flush=True)

    def _interrupt(self, run_id: str, reason: str) -> None:
        try:
            self.store.interrupt([run_id], reason)
        except (StoreError, OSError) as exc:
            print(f"could not record {run_id} interrupted: {exc}", file=sys.stderr, flush=True)
            return
        self._restore_epochs(run_id)

    def _restore_epochs(self, run_id: str) -> None:
        """Epochs the checkpoint holds but the store lacks (see ``RunStore.restore_epochs``)."""
        path = self.raw_store.checkpoint_path(run_id)
        if not path.is_file():
            return
        try:
            history = load_checkpoint(path).get("history", [])
        except CheckpointError as exc:
            print(f"checkpoint of {run_id} unreadable: {exc}", file=sys.stderr)
            return
        self.store.restore_epochs(run_id, history)

    # ---------------------------------------------------- several devices
    def _place_multi(self, run: Run, need: int) -> Problem | None:
        """Start ``run`` on several devices if it can start now; else why it waits."""
        kind = run.target.split(":")[0]
        reason = multi_wait_reason([(s.device, s.state) for s in self.sessions.values()], kind, run.world_size,
                                   cluster_cpus_free())
        if reason is not None:
            return reason
        holds = [s for s in self.sessions.values() if s.device == kind]
        if kind == "cuda":
            # A GPU session holds its GPU as a Ray resource; Ray Train's workers need those GPUs,
            # so the sessions make way (and are started warm again when the run ends). CPU sessions
            # hold no Ray CPU and stay.
            for session in holds:
                _kill(session.actor)
                self.sessions.pop(session.key, None)
            holds = []
        self._start_run(run, holds, multi={"channel": RunChannel.remote(), "kind": kind})
        return None

    def _gpus_lent(self) -> bool:
        with self._mutex:
            return any((job.get("multi") or {}).get("kind") == "cuda" for job in self.running.values())

    def _execute_multi(self, run: Run, job: dict) -> None:
        channel = job["multi"]["channel"]
        storage = self.home / "ray_train" / run.id
        status, reason = "failed", None
        try:
            trainer = make_trainer(run.id, run.config, run.world_size, run.target.split(":")[0], self.data_ref,
                                   self._resume_bytes(run), channel, storage)
            self.store.log(run.id, f"starting {run.world_size} Ray Train workers")
            status, reason = self._consume(run, MultiRun(trainer, channel).messages(),
                                           f"ray-train x{run.world_size}")
        except Exception as exc:
            traceback.print_exc()
            status, reason = "failed", f"the Ray Train run failed to start: {_short(exc)}"
        finally:
            MultiRun.cleanup(storage)
            _kill(channel)
        self._finish(run.id, status, reason)
        self._release(run.id)

    # -------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        nodes = []
        for node in self.nodes:
            resources = node.get("Resources", {})
            nodes.append({"node_id": node["NodeID"], "host": node.get("NodeManagerHostname"),
                          "address": node.get("NodeManagerAddress"), "cpus": resources.get("CPU"),
                          "gpus": resources.get("GPU", 0),
                          "memory_bytes": resources.get("memory"),
                          "custom": sorted(k for k in resources if k not in ("CPU", "GPU", "memory",
                                                                            "object_store_memory")
                                           and not k.startswith("node:") and not k.startswith("accelerator_type"))})
        sessions = [{"key": s.key, "node_id": s.node_id, "host": s.host, "device": s.device, "state": s.state,
                     "run_id": s.run_id, "error": s.error, "started_at": s.started_at,
                     **{k: s.info.get(k) for k in ("pid", "device_name", "device_free", "device_total", "device_allocated",
                                                  "process_bytes", "gpu_percent", "warm_seconds", "ready_seconds",
                                                  "data")}} for s in self.sessions.values()]
        return {"pid": os.getpid(), "id": self.id, "updated_at": time.time(), "phase": self.phase,
                "started_at": self.started_at,
                "cluster": dataclasses.asdict(self.cluster) if self.cluster else None,
                "nodes": nodes, "sessions": sessions, "waiting": {run_id: p.to_json() for run_id, p in self.waiting.items()},
                "running": sorted(self.running), "problems": dict(self.problems),
                "dispatcher_memory_bytes": process_memory()}

    def _set_phase(self, phase: str) -> None:
        """Say how far the start has come at once: a visitor waits on it (the first launch)."""
        self.phase = phase
        self._write_state()

    def _write_state(self) -> None:
        if self.phase == "sessions" and any(s.state in ("warm", "busy") for s in self.sessions.values()):
            self.phase = "ready"
        if self.cluster is not None:
            self._describe_sessions()
        try:
            write_state(self.raw_store, self._state())
        except OSError as exc:  # a full disk: the store retry loop reports the same cause
            self.problems.setdefault("state", f"cannot write the dispatcher's state file: {exc}")


def serve_forever(home: str | None, data_dir: str | None = None, parent_pid: int | None = None,
                  warm_models: list[str] | None = None, threads: int | None = None,
                  idle_exit: float | None = None) -> int:
    """The ``python -m bigmodels dispatcher`` process: SIGTERM / SIGINT stop it cleanly."""
    dispatcher = Dispatcher(home, data_dir=data_dir, parent_pid=parent_pid, warm_models=warm_models,
                            threads=threads, idle_exit=idle_exit)
    signal.signal(signal.SIGTERM, dispatcher.stop)  # until Ray is joined; serve() sets them again after
    signal.signal(signal.SIGINT, dispatcher.stop)
    return dispatcher.serve()
