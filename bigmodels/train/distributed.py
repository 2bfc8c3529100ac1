"""Training on several processes with PyTorch's DistributedDataParallel.

A run with ``world_size > 1`` is executed by ``torchrun`` (``python -m
torch.distributed.run``), which starts one process per device and this module
in each: NCCL between GPUs, gloo between CPU processes. Every process holds the
same model; each step, every process takes its own slice of the global batch,
and DDP averages the gradients so the replicas stay identical.

What is the same as the one-process engine (``bigmodels.train.engine``): the
optimizer, schedule, precision, seed, checkpoint format (so the sandbox loads a
DDP run like any other) and the per-epoch records. What differs, on purpose:
``batch_size`` is per process, so one optimizer step sees ``batch_size x
world_size`` images and an epoch has ``world_size`` times fewer steps.

Only rank 0 touches the run store and writes checkpoints; the configuration
and a checkpoint to resume from reach the other ranks through the process
group, so on several nodes only the head node needs the store.

Entry points:

    # what a worker runs for a queued run
    python -m torch.distributed.run --standalone --nproc-per-node 2 -m bigmodels.train.distributed --run-id ID
    # a run started by hand on several nodes (the same command on every node)
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint head:29500 \\
        -m bigmodels.train.distributed --config '{"model": "transformer", "epochs": 10}'
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from bigmodels.models.checkpoints import load_checkpoint, save_checkpoint
from bigmodels.data.mnist import MNIST, DeviceMNIST, normalize
from bigmodels.train.devices import memory_in_use
from bigmodels.models.registry import create_model
from bigmodels.train.engine import (
    TrainConfig, TrainEvent, TrainResult, _build_optimizer, _build_schedule, autocast_context, optimizer_step,
)

STOP_CHECK_EVERY = 5  # steps between the ranks' vote on stopping (a collective, so not every step)


# ------------------------------------------------------------ the pure parts
def steps_per_epoch(train_size: int, batch_size: int, world_size: int) -> int:
    return math.ceil(train_size / (batch_size * world_size))


def shard_batches(order: torch.Tensor, batch_size: int, world_size: int, rank: int) -> list[torch.Tensor]:
    """This rank's index batches for one epoch of ``order``.

    Every rank computes the same ``order`` (same generator state), cuts it into
    global batches of ``batch_size * world_size`` and takes its part of each, so
    one epoch covers every image exactly once across the ranks and every rank
    takes the same number of steps (the last global batch is split as evenly as
    it goes).
    """
    return [chunk.tensor_split(world_size)[rank] for chunk in order.split(batch_size * world_size)]


def backend_for(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


def launch_command(run_id: str, home: str | os.PathLike, world_size: int, backend: str = "gloo",
                   data_dir: str | None = None, nnodes: int = 1, rdzv_endpoint: str | None = None) -> list[str]:
    """The ``torchrun`` command line that executes a queued run on ``world_size``
    processes per node (``nnodes > 1`` needs a rendezvous endpoint host:port)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={world_size}"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        if not rdzv_endpoint:
            raise ValueError("several nodes need a rendezvous endpoint (host:port of the head node)")
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    cmd += ["-m", "bigmodels.train.distributed", "--home", str(home), "--run-id", run_id, "--backend", backend]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    return cmd


# -------------------------------------------------------------- the loop
def _vote(flag: bool, device: torch.device) -> bool:
    """True on every rank if any rank says True (a MAX all-reduce)."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _sum(values: list[float], device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def _test_metrics(model, data: DeviceMNIST, device, precision: str, rank: int, world: int,
                  batch_size: int = 2000) -> dict[str, float]:
    """Test loss and accuracy over the whole test split, each rank scoring a share."""
    model.eval()
    n = len(data.test_y)
    mine = torch.arange(rank, n, world, device=data.test_y.device)
    loss_sum, correct = 0.0, 0.0
    for idx in mine.split(batch_size):
        x, y = normalize(data.test_x[idx]), data.test_y[idx]
        with autocast_context(device, precision):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    loss_sum, correct = _sum([loss_sum, correct], device)
    return {"test_loss": loss_sum / n, "test_accuracy": correct / n}


def train_distributed(
    config: TrainConfig,
    data: MNIST,
    device: torch.device,
    on_event: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_path: str | Path | None = None,
    resume_from: dict | None = None,
) -> TrainResult:
    """Train ``config`` in an initialised process group. Every rank calls this;
    events, stop requests and checkpoints matter on rank 0 only."""
    config.validate()
    rank, world = dist.get_rank(), dist.get_world_size()
    emit = on_event if (on_event is not None and rank == 0) else (lambda event: None)
    dev_data = DeviceMNIST(data, device, train_subset=config.train_subset, subset_seed=config.seed)
    per_epoch = steps_per_epoch(dev_data.train_size, config.batch_size, world)
    total_steps = per_epoch * config.epochs

    torch.manual_seed(config.seed)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    model = create_model(config.model, config.preset, **config.model_overrides).to(device)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = _build_optimizer(config, model)
    scheduler = _build_schedule(config, optimizer, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    order_gen = torch.Generator().manual_seed(config.seed)

    history: list[dict[str, Any]] = []
    start_epoch, skip_steps, elapsed_before = 0, 0, 0.0
    if resume_from is not None:
        if resume_from.get("train_config") != config.to_dict() or resume_from.get("world_size") != world:
            raise ValueError("the checkpoint was trained with a different configuration or process count")
        model.load_state_dict(resume_from["state_dict"])
        optimizer.load_state_dict(resume_from["optimizer"])
        scheduler.load_state_dict(resume_from["scheduler"])
        if resume_from.get("scaler"):
            scaler.load_state_dict(resume_from["scaler"])
        torch.set_rng_state(resume_from["rng"]["torch"])
        order_gen.set_state(resume_from["rng"]["order_at_epoch_start"])
        start_epoch, skip_steps = resume_from["epoch"], resume_from["step_in_epoch"]
        history = list(resume_from.get("history", []))
        elapsed_before = float(resume_from.get("elapsed", 0.0))

    def checkpoint(epoch: int, step_in_epoch: int, order_state: torch.Tensor, elapsed: float) -> Path | None:
        if checkpoint_path is None or rank != 0:
            return None
        return save_checkpoint({
            "model_name": config.model,
            "model_config": dataclasses.asdict(model.config),
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "train_config": config.to_dict(),
            "world_size": world,
            "epoch": epoch, "step_in_epoch": step_in_epoch,
            "rng": {"torch": torch.get_rng_state(), "order_at_epoch_start": order_state},
            "history": history, "elapsed": elapsed,
        }, checkpoint_path)

    global_step = start_epoch * per_epoch + skip_steps
    emit(TrainEvent("start", start_epoch, global_step, total_steps, {
        "device": f"{device.type} x{world} ({dist.get_backend()})", "train_size": dev_data.train_size,
        "steps_per_epoch": per_epoch, "resumed": resume_from is not None}))
    t0 = time.perf_counter() - elapsed_before
    stopped, saved = False, None
    for epoch in range(start_epoch, config.epochs):
        order_state = order_gen.get_state()
        batches = shard_batches(torch.randperm(dev_data.train_size, generator=order_gen),
                                config.batch_size, world, rank)
        ddp.train()
        epoch_start, seen, loss_sum = time.perf_counter(), 0, torch.zeros((), device=device)
        for i, idx in enumerate(batches):
            if i < skip_steps:
                continue
            if i % STOP_CHECK_EVERY == 0 and _vote(should_stop is not None and should_stop(), device):
                stopped = True
                saved = checkpoint(epoch, i, order_state, time.perf_counter() - t0)
                break
            idx = idx.to(device)
            x, y = normalize(dev_data.train_x[idx]), dev_data.train_y[idx]
            loss = optimizer_step(ddp, x, y, optimizer, scheduler, scaler, device, config)  # DDP averages grads
            global_step += 1
            seen += len(y)
            loss_sum += loss.detach() * len(y)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss became {loss_value} at step {global_step} on rank {rank}; "
                                         f"lower the learning rate or use fp32")
            emit(TrainEvent("step", epoch + 1, global_step, total_steps,
                            {"loss": loss_value, "lr": scheduler.get_last_lr()[0]}))
        skip_steps = 0
        if stopped:
            break
        train_seconds = time.perf_counter() - epoch_start
        total_loss, total_seen = _sum([loss_sum.item(), float(seen)], device)
        metrics = _test_metrics(model, dev_data, device, config.precision, rank, world)
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(total_seen, 1),
            **metrics,
            "samples_per_second": total_seen / train_seconds if train_seconds > 0 else 0.0,
            "lr": scheduler.get_last_lr()[0],
            "elapsed": time.perf_counter() - t0,
            "memory_bytes": memory_in_use(device),
        }
        history.append(record)
        saved = checkpoint(epoch + 1, 0, order_gen.get_state(), record["elapsed"])
        emit(TrainEvent("epoch", epoch + 1, global_step, total_steps, record))
    model.eval()
    emit(TrainEvent("end", len(history), global_step, total_steps, {"stopped": stopped}))
    return TrainResult(model, history, stopped, saved, str(device))


# ---------------------------------------------------------- process entry
_terminate_requested = False


def _on_sigterm(signum, frame) -> None:
    # torchrun forwards SIGTERM when its worker is stopped: finish the step,
    # vote to stop, write a checkpoint, and let the run be marked interrupted.
    global _terminate_requested
    _terminate_requested = True


def _share(obj: Any, device: torch.device) -> Any:
    """Rank 0's ``obj`` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=device if device.type == "cuda" else None)
    return box[0]


def _rank0_setup(args) -> dict[str, Any]:
    """Open the store, find or create the run, load a checkpoint to resume from."""
    from bigmodels.runs.store import RunStore

    store = RunStore(args.home)
    if args.run_id:
        run = store.get(args.run_id)
        if run is None:
            raise SystemExit(f"error: run {args.run_id} is not in {store.path}")
        if run.world_size != dist.get_world_size():
            raise SystemExit(f"error: run {run.id} asks for {run.world_size} processes, torchrun started "
                             f"{dist.get_world_size()}")
        if run.status == "queued":  # started by hand rather than by a worker
            run = store.claim(run.id, f"torchrun@{socket.gethostname()}", os.getpid())
        elif run.status != "running":
            raise SystemExit(f"error: run {run.id} is {run.status}; resume it first to train it again")
    else:
        config = TrainConfig.from_dict(json.loads(Path(args.config[1:]).read_text() if args.config.startswith("@")
                                                  else args.config))
        target = f"torchrun-{socket.gethostname()}-{os.getpid()}"
        run = store.submit(config, world_size=dist.get_world_size(), train_again=True, target=target).run
        run = store.claim(run.id, f"torchrun@{socket.gethostname()}", os.getpid())
        print(f"run {run.id} recorded in {store.path}", file=sys.stderr)
    resume = None
    if run.resume and run.checkpoint and Path(run.checkpoint).is_file():
        resume = load_checkpoint(run.checkpoint)
    return {"run_id": run.id, "config": run.config, "checkpoint": str(store.checkpoint_path(run.id)),
            "resume": resume, "target": run.target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bigmodels.train.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="a run in the store (queued, or claimed by the worker that launched this)")
    which.add_argument("--config", help="a TrainConfig as JSON (or @file.json): record a new run and train it")
    parser.add_argument("--home", help="the run store's folder (default $BIGMODELS_HOME, then ./runs)")
    parser.add_argument("--backend", choices=["nccl", "gloo"],
                        help="default: nccl when CUDA is available, else gloo")
    parser.add_argument("--data-dir", help="MNIST folder (default $BIGMODELS_DATA_DIR, then ./data)")
    parser.add_argument("--parent-pid", type=int, help="stop when this process (the worker) has gone")
    args = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("run me under torchrun (python -m torch.distributed.run ... -m bigmodels.train.distributed)")

    signal.signal(signal.SIGTERM, _on_sigterm)
    backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    dist.init_process_group(backend, device_id=device if backend == "nccl" else None)
    rank = dist.get_rank()
    store = recorder = None
    setup: dict[str, Any] = {}
    try:
        setup_error = None
        if rank == 0:
            try:
                setup = _rank0_setup(args)
            except BaseException as exc:  # tell the other ranks rather than leave them waiting
                setup_error = f"{type(exc).__name__}: {exc}"
        setup, setup_error = _share((setup, setup_error), device)
        if setup_error:
            print(f"error: {setup_error}", file=sys.stderr)
            return 2
        config = TrainConfig.from_dict(setup["config"])

        from bigmodels.data.mnist import load_mnist
        from bigmodels.runs.store import EventRecorder, RunStore, StopWatch

        data = load_mnist(args.data_dir)
        should_stop = None
        if rank == 0:
            from bigmodels.provenance import git_commit, software_versions

            store = RunStore(args.home)
            store.set_provenance(setup["run_id"], f"{device.type} x{dist.get_world_size()}",
                                 f"{dist.get_world_size()} processes, {backend}", data.describe(),
                                 software_versions(), git_commit(), setup["checkpoint"])
            recorder = EventRecorder(store, setup["run_id"], config.batch_size * dist.get_world_size())
            from bigmodels.runs.worker import pid_alive

            parent_gone = (lambda: not pid_alive(args.parent_pid)) if args.parent_pid else (lambda: False)
            should_stop = StopWatch(store, setup["run_id"], also=lambda: _terminate_requested or parent_gone())
        else:
            should_stop = lambda: _terminate_requested  # noqa: E731 -- any rank may be told to stop
        try:
            result = train_distributed(config, data, device, on_event=recorder, should_stop=should_stop,
                                       checkpoint_path=setup["checkpoint"], resume_from=setup["resume"])
        except BaseException as exc:
            if store is not None:
                store.finish(setup["run_id"], "failed", f"{type(exc).__name__}: {exc}")
            raise
        if store is not None:
            if not result.stopped:
                store.finish(setup["run_id"], "succeeded")
            elif store.cancel_requested(setup["run_id"]):
                store.finish(setup["run_id"], "cancelled")
            else:
                store.finish(setup["run_id"], "interrupted", "the worker was stopped; resume continues from "
                                                             "the last checkpoint")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
