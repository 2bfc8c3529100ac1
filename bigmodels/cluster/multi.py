"""Runs on several devices: Ray Train's ``TorchTrainer`` over the one training loop.

A run with ``world_size > 1`` starts ``world_size`` Ray Train workers (one GPU
each, or CPU processes), which Ray Train joins into a torch.distributed
process group (NCCL between GPUs, gloo on the CPU). Every worker runs
``bigmodels.train.engine.train`` with its ``Ranks``; DistributedDataParallel
averages the gradients. As with one device, nodes need no shared filesystem:
the data and a resume checkpoint arrive as Ray objects, and rank 0 sends its
events and checkpoints back through a ``RunChannel`` actor the dispatcher
reads. A stop request travels the other way through the same channel, and
the ranks' stop vote (``Ranks.any``) brings them all to the same step.

While such a run trains it holds every session of its device kind (they stay
warm but take no run), so nothing else trains on the devices it uses.
"""
from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from bigmodels.cluster.batching import EventBatcher
from bigmodels.cluster.messages import Message, Outcome, Provenance
from bigmodels.base.problems import Key, Problem
from bigmodels.base.provenance import git_commit, software_versions
from bigmodels.train.config import TrainConfig
from bigmodels.base.devices import describe_device
from bigmodels.train.engine import train
from bigmodels.train.plan import Resources, plan
from bigmodels.train.ranks import Ranks, backend_for
from bigmodels.train.session import describe_failure



@ray.remote(num_cpus=0, max_concurrency=4)
class RunChannel:
    """Messages from rank 0 to the dispatcher, and the stop request back."""

    def __init__(self):
        self._messages: queue.Queue = queue.Queue()
        self._stop = False

    def put(self, message: dict[str, Any]) -> None:
        self._messages.put(message)

    def take(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """Every waiting message; waits up to ``timeout`` for the first."""
        try:
            out = [self._messages.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                out.append(self._messages.get_nowait())
            except queue.Empty:
                return out

    def request_stop(self) -> None:
        self._stop = True

    def stop_requested(self) -> bool:
        return self._stop


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    """What each Ray Train worker runs: its rank of the one training loop."""
    channel = cfg["channel"]

    def send(message: Message) -> None:
        # Waited for: the channel is a threaded actor, which runs calls in any order, so
        # an unwaited outcome could overtake the last steps and the dispatcher, reading to
        # the outcome, would lose them. A few calls a second; each a round trip of ~1 ms.
        ray.get(channel.put.remote(message))

    device = ray.train.torch.get_device()
    ranks = Ranks.from_process_group(device)
    workdir = Path(tempfile.mkdtemp(prefix=f"bigmodels-{cfg['run_id']}-r{ranks.rank}-"))
    try:
        config = TrainConfig.from_dict(cfg["config"])
        mnist = ray.get(cfg["data"])
        run_plan = plan(config, Resources.local(), world_size=ranks.world, data_size=len(mnist.train_labels))
        checkpoint = workdir / "checkpoint.pt"
        resume_path = None
        if cfg.get("resume") is not None:
            resume_path = workdir / "resume.pt"
            resume_path.write_bytes(cfg["resume"])
        if ranks.is_main:
            send(Provenance(run_plan.target, f"{describe_device(device)} x{ranks.world}", mnist.describe(),
                            software_versions(), git_commit(), ray.util.get_node_ip_address()))
        batcher = EventBatcher(checkpoint)

        def on_event(event) -> None:  # rank 0 only (the engine emits nowhere else)
            batcher.add(event)
            now = time.monotonic()
            if batcher.due(now):
                send(batcher.take(now))

        def should_stop() -> bool:
            return ranks.is_main and ray.get(channel.stop_requested.remote())

        result = train(run_plan, mnist, on_event=on_event, should_stop=should_stop, checkpoint_path=checkpoint,
                       resume_from=resume_path, ranks=ranks)
        if ranks.is_main:
            send(Outcome("stopped" if result.stopped else "succeeded"))
    except BaseException as exc:
        if ranks.is_main:
            send(Outcome.failure(describe_failure(exc), exc))
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cluster_cpus_free() -> float:
    try:
        return float(ray.available_resources().get("CPU", 0.0))
    except Exception:
        return 0.0


def multi_wait_reason(sessions: list, kind: str, world_size: int, cpus_free: float) -> Problem | None:
    """None if a run on ``world_size`` devices of ``kind`` can start now, else why it waits.
    ``sessions``: (kind, state) of every session."""
    of_kind = [state for k, state in sessions if k == kind]
    if kind == "cuda" and len(of_kind) < world_size:
        return Problem.of("launcher.wait.gpus", n=world_size, have=len(of_kind))
    if any(state != "warm" for state in of_kind) or not of_kind:
        return Problem.of("launcher.wait.all_sessions", what=Key("launcher.word." + ("cuda" if kind == "cuda" else "cpu")),
                          n=world_size)
    if kind != "cuda" and cpus_free < world_size:
        return Problem.of("launcher.wait.cores", n=world_size, free=f"{cpus_free:g}")
    return None


def make_trainer(run_id: str, config: dict, world_size: int, kind: str, data_ref, resume: bytes | None, channel,
                 storage: Path) -> TorchTrainer:
    gpu = kind == "cuda"
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"run_id": run_id, "config": config, "data": data_ref, "resume": resume,
                           "channel": channel},
        torch_config=TorchConfig(backend=backend_for("cuda" if gpu else "cpu")),
        scaling_config=ScalingConfig(num_workers=world_size, use_gpu=gpu,
                                     resources_per_worker={"GPU": 1} if gpu else {"CPU": 1}),
        run_config=RunConfig(name=run_id, storage_path=str(storage), failure_config=FailureConfig(max_failures=0)),
    )


class MultiRun:
    """One run on several devices: the trainer in a thread, its channel read as a stream."""

    def __init__(self, trainer: TorchTrainer, channel):
        self.trainer, self.channel = trainer, channel
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._fit, daemon=True)

    def _fit(self) -> None:
        try:
            self.trainer.fit()
        except BaseException as exc:  # a worker failed: rank 0 usually sent the reason already
            self.error = exc

    def messages(self):
        """The channel's messages until the outcome (or the trainer's end)."""
        self.thread.start()
        while True:
            batch = ray.get(self.channel.take.remote(0.5))
            for message in batch:
                yield message
                if isinstance(message, Outcome):
                    self.thread.join()
                    return
            if not batch and not self.thread.is_alive():
                final = ray.get(self.channel.take.remote(0.1))  # anything sent just before the end
                yield from final
                if not any(isinstance(m, Outcome) for m in final):
                    yield Outcome("failed", f"the Ray Train workers ended without an outcome: {self.error!r}"[:500])
                return

    @staticmethod
    def cleanup(storage: Path) -> None:
        shutil.rmtree(storage, ignore_errors=True)
