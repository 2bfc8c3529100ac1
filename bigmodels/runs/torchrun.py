"""Training on several processes with PyTorch's DistributedDataParallel.

A run with ``world_size > 1`` is executed by ``torchrun`` (``python -m
torch.distributed.run``), which starts one process per device and this module
in each: NCCL between GPUs, gloo between CPU processes. Every process holds the
same model; each step, every process takes its own slice of the global batch,
and DDP averages the gradients so the replicas stay identical.

Every process runs the engine's one training loop (``bigmodels.train.engine``)
with its ``Ranks``; this module is only the process entry: it joins the process
group, and on rank 0 finds the run in the store. Only rank 0 touches the run
store and writes checkpoints; the configuration and a checkpoint to resume from
reach the other ranks through the process group, so on several nodes only the
head node needs the store.

Entry points:

    # what a worker runs for a queued run
    python -m torch.distributed.run --standalone --nproc-per-node 2 -m bigmodels.runs.torchrun --run-id ID
    # a run started by hand on several nodes (the same command on every node)
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint head:29500 \\
        -m bigmodels.runs.torchrun --config '{"model": "transformer", "epochs": 10}'
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from bigmodels.data.mnist import load_mnist
from bigmodels.models.checkpoints import load_checkpoint
from bigmodels.provenance import git_commit, software_versions
from bigmodels.runs.processes import pid_alive
from bigmodels.runs.recorder import EventRecorder, StopWatch, record_outcome
from bigmodels.runs.store import RunStore
from bigmodels.train.config import TrainConfig
from bigmodels.train.engine import train
from bigmodels.train.plan import Resources, plan
from bigmodels.train.ranks import Ranks, backend_for

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
    cmd += ["-m", "bigmodels.runs.torchrun", "--home", str(home), "--run-id", run_id, "--backend", backend]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    return cmd


# ---------------------------------------------------------- process entry
_terminate_requested = False


def _local_world() -> int:
    """Processes torchrun started on this node."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", 1))


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
        plan(config, Resources.local(), world_size=_local_world())  # this node's share of the run
        run = store.add_run(config.model, config.to_dict(), config.hash(), target, dist.get_world_size(),
                            reuse_succeeded=False).run
        run = store.claim(run.id, f"torchrun@{socket.gethostname()}", os.getpid())
        print(f"run {run.id} recorded in {store.path}", file=sys.stderr)
    resume = None
    if run.resume and run.checkpoint and Path(run.checkpoint).is_file():
        resume = load_checkpoint(run.checkpoint)
    return {"run_id": run.id, "config": run.config, "checkpoint": str(store.checkpoint_path(run.id)),
            "resume": resume, "target": run.target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bigmodels.runs.torchrun", description=__doc__,
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
        parser.error("run me under torchrun (python -m torch.distributed.run ... -m bigmodels.runs.torchrun)")

    signal.signal(signal.SIGTERM, _on_sigterm)
    backend = args.backend or backend_for("cuda" if torch.cuda.is_available() else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // _local_world()))
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
        data = load_mnist(args.data_dir)
        # Checked here against this node's devices (each rank's share of the run), then trained on all ranks.
        run_plan = plan(config, Resources.local(), world_size=_local_world(),
                        data_size=len(data.train_labels))
        if rank == 0:
            store = RunStore(args.home)
            store.set_provenance(setup["run_id"], f"{device.type} x{dist.get_world_size()}",
                                 f"{dist.get_world_size()} processes, {backend}", data.describe(),
                                 software_versions(), git_commit(), setup["checkpoint"])
            recorder = EventRecorder(store, setup["run_id"], config.batch_size * dist.get_world_size())
            parent_gone = (lambda: not pid_alive(args.parent_pid)) if args.parent_pid else (lambda: False)
            should_stop = StopWatch(store, setup["run_id"], also=lambda: _terminate_requested or parent_gone())
        else:
            should_stop = lambda: _terminate_requested  # noqa: E731 -- any rank may be told to stop
        try:
            result = train(run_plan, data, on_event=recorder, should_stop=should_stop,
                           checkpoint_path=setup["checkpoint"], resume_from=setup["resume"],
                           ranks=Ranks.from_process_group(device))
        except BaseException as exc:
            if store is not None:
                store.finish(setup["run_id"], "failed", f"{type(exc).__name__}: {exc}")
            raise
        if store is not None:
            record_outcome(store, setup["run_id"], result.stopped)
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
