"""A device session as a Ray actor: warm on one device of any node, one run at a time.

The dispatcher (``bigmodels.cluster.dispatcher``) starts one ``SessionActor``
per device of the cluster, pinned to its node. Each keeps a ``DeviceSession``
warm (``bigmodels.train.session``) and trains a run with the project's one
training loop when asked, streaming what happens back as it happens (a Ray
streaming generator), grouped by ``bigmodels.cluster.batching``: the start,
the steps, every epoch with the checkpoint written after it, and the end.

A node needs no shared filesystem and never opens the run store: the data
arrives as a Ray object, a resume checkpoint arrives as bytes, and the
checkpoint the engine writes after each epoch goes back as bytes in the same
message as that epoch's record -- the dispatcher writes both on the server, so
the store and the checkpoint cannot drift apart on a node's disk. The node's
temporary files are removed when the run ends, however it ends.

The actor is threaded (``max_concurrency``): ``stop`` and ``describe`` are
answered while ``train`` runs. If the dispatcher (the actor's owner) dies, Ray
kills its actors, so a run never trains on with nobody recording it.
"""
from __future__ import annotations

import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import ray
import torch

from bigmodels.cluster.batching import FLUSH_S, EventBatcher
from bigmodels.cluster.messages import Message, Outcome, Provenance, SystemSample
from bigmodels.data.mnist import MNIST
from bigmodels.base.processes import CpuMeter
from bigmodels.train.config import TrainConfig
from bigmodels.train.engine import train
from bigmodels.train.plan import Resources, plan
from bigmodels.train.session import DeviceSession, describe_failure

SYSTEM_EVERY_S = 1.0  # CPU / memory / GPU samples sent with the steps
CPU_SESSION_NICE = 10  # a CPU session sharing a host with the app trains below the pages (nice 0)


@ray.remote(max_concurrency=4)
class SessionActor:
    """One warm device; ``train`` streams a run's events back."""

    def __init__(self, device: str, data: MNIST, warm_models: list[str] | None = None, threads: int | None = None,
                 nice: bool = True):
        if device == "cpu" and nice:
            os.nice(CPU_SESSION_NICE)  # pages first, training takes the cycles left over
        # Ray sets OMP_NUM_THREADS=1 in an actor that holds no CPU (ours hold none: the
        # dispatcher decides what uses a device), and PyTorch would train on one thread.
        torch.set_num_threads(threads or os.cpu_count() or 1)
        started = time.perf_counter()
        self.session = DeviceSession(device, data=data, warm_models=warm_models)
        self.ready_seconds = time.perf_counter() - started
        context = ray.get_runtime_context()
        self.node_id, self.host, self.pid = context.get_node_id(), socket.gethostname(), os.getpid()
        self.current: str | None = None
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------- questions
    def describe(self) -> dict[str, Any]:
        """What the launcher shows of this session (cheap: no device sync)."""
        return {"node_id": self.node_id, "host": self.host, "pid": self.pid, "device": str(self.session.device),
                "device_name": self.session.device_name, "data": self.session.mnist.describe(),
                "train_size": self.session.full.train_size, "warm_seconds": self.session.warm_seconds,
                "ready_seconds": self.ready_seconds, "run_id": self.current,
                "gpu_percent": self.session.gpu_percent(), **self.session.memory()}

    def stop(self, run_id: str) -> bool:
        """Ask the run to stop at its next step (it checkpoints first)."""
        with self._lock:
            event = self._stops.get(run_id)
        if event is not None:
            event.set()
        return event is not None

    # ------------------------------------------------------------- train
    def train(self, run_id: str, config: dict[str, Any], resume: bytes | None = None) -> Iterator[Message]:
        """Train ``config``; yields messages (``bigmodels.cluster.messages``): its
        ``Provenance`` first, then ``Events`` batches, then its ``Outcome``."""
        stop = threading.Event()
        with self._lock:
            if self.current is not None:
                yield Outcome("refused", f"session busy with {self.current}")
                return
            self.current = run_id
            self._stops[run_id] = stop
        workdir = Path(tempfile.mkdtemp(prefix=f"bigmodels-{run_id}-"))
        try:
            yield from self._train(run_id, config, resume, stop, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            with self._lock:
                self.current = None
                self._stops.pop(run_id, None)

    def _train(self, run_id: str, config: dict[str, Any], resume: bytes | None, stop: threading.Event,
               workdir: Path) -> Iterator[Message]:
        session = self.session
        try:
            train_config = TrainConfig.from_dict(config)
            run_plan = plan(train_config, Resources.local(), data_size=session.full.train_size)
        except Exception as exc:
            yield Outcome.failure(describe_failure(exc), exc)
            return
        yield Provenance(run_plan.target, session.device_name, session.mnist.describe(), session.versions,
                         session.git_commit, self.host)
        checkpoint = workdir / "checkpoint.pt"
        resume_path = None
        if resume is not None:
            resume_path = workdir / "resume.pt"
            resume_path.write_bytes(resume)
        events: queue.Queue = queue.Queue()
        done: list[Outcome] = []

        def run() -> None:
            try:
                result = train(run_plan, session.data_for(train_config.train_subset, train_config.seed),
                               on_event=events.put, should_stop=stop.is_set, checkpoint_path=checkpoint,
                               resume_from=resume_path)
                done.append(Outcome("stopped" if result.stopped else "succeeded"))
            except BaseException as exc:  # the run failed, the session lives on
                done.append(Outcome.failure(describe_failure(exc), exc))
                if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
                    torch.cuda.empty_cache()
            finally:
                events.put(None)

        trainer = threading.Thread(target=run, name=f"train-{run_id}", daemon=True)
        trainer.start()
        cpu = CpuMeter()
        batcher = EventBatcher(checkpoint)
        last_system = float("-inf")  # the first message carries a sample: a short run still has one
        finished = False
        while not finished:
            try:
                event = events.get(timeout=FLUSH_S)
            except queue.Empty:
                event = "tick"
            if event is None:
                finished = True
            elif event != "tick":
                batcher.add(event)
            now = time.monotonic()
            system_due = now - last_system >= SYSTEM_EVERY_S
            if not (batcher.due(now, finished) or system_due):
                continue
            system = None
            if system_due:
                memory = session.memory()
                system = SystemSample(cpu.sample(), memory["process_bytes"], session.gpu_percent(),
                                      memory.get("device_allocated"))
                last_system = now
            yield batcher.take(now, system)
        trainer.join()
        yield done[0]
