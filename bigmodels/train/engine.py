"""The training engine: one loop for one process or many.

``train(config)`` plans the run (``bigmodels.train.plan``), trains on data
resident on the device (see ``DeviceMNIST``), streams ``TrainEvent``s to a
callback, checks a stop request between steps, writes a checkpoint after every
epoch (atomically), and resumes from one so that an interrupted CPU run ends
with the same weights, bit for bit, as one that was never interrupted: the
checkpoint carries the model, optimizer, scheduler, the global RNG state, the
state of the generator that orders the epoch, and the stopped epoch's loss so
far.

Under DistributedDataParallel every process runs this same loop with its own
``Ranks`` (``bigmodels.train.ranks``): each takes its shard of every global
batch, DDP averages the gradients, and only the main process emits events and
writes checkpoints. ``batch_size`` is per process, so one optimizer step sees
``batch_size x world`` images and an epoch has ``world`` times fewer steps.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from torch.nn.parallel import DistributedDataParallel

from bigmodels.data.mnist import MNIST, DeviceMNIST, load_mnist, normalize
from bigmodels.models.checkpoints import load_checkpoint, save_checkpoint
from bigmodels.models.registry import create_model
from bigmodels.base.problems import ConfigError, Problem
from bigmodels.train.config import TrainConfig
from bigmodels.base.devices import memory_in_use
from bigmodels.train.plan import Plan, Resources, plan
from bigmodels.train.ranks import Ranks

# -------------------------------------------------------------------- events
@dataclass
class TrainEvent:
    kind: str  # "start" | "step" | "epoch" | "end"
    epoch: int  # 1-based epoch the event belongs to (0 for start)
    step: int  # global optimizer step count so far
    total_steps: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, Any]]
    stopped: bool
    checkpoint: Path | None
    device: str

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def _build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    # The fused kernel updates every parameter in one pass instead of ~10 small ops
    # each: ~1-2 ms of a ~27 ms LeNet step on this CPU. CPU and CUDA have it.
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def _build_schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int):
    if cfg.schedule == "onecycle":
        # OneCycleLR divides by (pct_start * total_steps - 1): zero for 4 steps at 25%.
        # Any step count must train, so that one case warms up over 30% instead.
        pct_start = 0.25 if 0.25 * total_steps != 1 else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps,
                                                   pct_start=pct_start, div_factor=10, final_div_factor=100)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if cfg.schedule == "step":  # divide by 10 at 50% and 75% of training
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [total_steps // 2, total_steps * 3 // 4], 0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def autocast_context(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def measure_test_split(model: nn.Module, data: DeviceMNIST, precision: str = "fp32", ranks: Ranks | None = None,
                       batch_size: int = 1000) -> dict[str, float]:  # 1000: fastest of 250-2000 here
    """Loss and accuracy on the whole test split, each rank scoring its share
    (model left in eval mode)."""
    ranks = ranks or Ranks(data.device)
    model.eval()
    n = len(data.test_y)
    loss_sum, correct = 0.0, 0.0
    for idx in ranks.test_indices(n).to(data.device).split(batch_size):
        x, y = normalize(data.test_x[idx]), data.test_y[idx]
        with autocast_context(data.device, precision):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    loss_sum, correct = ranks.sum([loss_sum, correct])
    return {"test_loss": loss_sum / n, "test_accuracy": correct / n}


def optimizer_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scheduler, scaler: torch.amp.GradScaler, device: torch.device, config: TrainConfig) -> torch.Tensor:
    """One step: forward under autocast, loss in fp32, backward (for DDP this is
    where gradients are averaged across ranks), optimizer and schedule. Returns the loss."""
    with autocast_context(device, config.precision):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss


def checkpoint_payload(config: TrainConfig, model: nn.Module, history: list[dict[str, Any]], **state: Any
                       ) -> dict[str, Any]:
    """What a checkpoint holds: the model as (name, config, weights), the training
    config and history, plus ``state`` -- for a resumable checkpoint the optimizer,
    schedule, scaler, RNG and position; for exported weights the data and command."""
    return {
        "model_name": config.model,
        "model_config": dataclasses.asdict(model.config),
        "state_dict": model.state_dict(),
        "train_config": config.to_dict(),
        "history": history,
        **state,
    }


def _resident_data(data: MNIST | DeviceMNIST | None, device: torch.device, config: TrainConfig) -> DeviceMNIST:
    """The run's data on its device, reusing a warm session's copy when it fits."""
    if isinstance(data, DeviceMNIST) and data.device == device and config.train_subset in (None, data.train_size):
        return data
    source = data if isinstance(data, MNIST) else load_mnist()
    return DeviceMNIST(source, device, train_subset=config.train_subset, subset_seed=config.seed)


def train(
    config: TrainConfig | Plan,
    data: MNIST | DeviceMNIST | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_path: str | Path | None = None,
    resume_from: str | Path | dict | None = None,
    step_event_every: int = 1,
    ranks: Ranks | None = None,
) -> TrainResult:
    """Train and return the model with its per-epoch history.

    ``config`` is planned here unless a ``Plan`` is given. ``data`` may be an
    ``MNIST`` (moved to the device here) or a ``DeviceMNIST`` already resident
    on the right device (a warm device session passes that). ``ranks``: this
    process in a DDP process group (every rank calls ``train``); None for one
    process. Events and checkpoints come from the main process only; a stop
    request is honoured on every rank within ``ranks.stop_check_every`` steps.
    """
    if isinstance(config, Plan):
        run_plan, config = config, config.config
    else:
        data_size = (len(data.train_labels) if isinstance(data, MNIST)
                     else data.train_size if isinstance(data, DeviceMNIST) else None)
        run_plan = plan(config, Resources.local(), world_size=ranks.world if ranks else 1, data_size=data_size)
    ranks = ranks or Ranks(torch.device(run_plan.target))
    device = ranks.device
    emit = on_event if (on_event is not None and ranks.is_main) else (lambda event: None)
    dev_data = _resident_data(data, device, config)
    steps_per_epoch = ranks.steps_per_epoch(dev_data.train_size, config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    torch.manual_seed(config.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = create_model(config.model, config.preset, **config.model_overrides).to(device)
    stepped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ranks.distributed else model
    optimizer = _build_optimizer(config, model)
    scheduler = _build_schedule(config, optimizer, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    order_gen = torch.Generator().manual_seed(config.seed)  # orders the batches of every epoch

    history: list[dict[str, Any]] = []
    start_epoch, skip_steps, elapsed_before = 0, 0, 0.0
    resumed_loss_sum, resumed_seen = 0.0, 0
    if resume_from is not None:
        ckpt = resume_from if isinstance(resume_from, dict) else load_checkpoint(resume_from, map_location=device)
        if ckpt.get("train_config") != config.to_dict() or ckpt.get("world_size", 1) != ranks.world:
            raise ConfigError([Problem.of("train.problem.resume_mismatch")])
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        order_gen.set_state(ckpt["rng"]["order_at_epoch_start"])
        start_epoch, skip_steps = ckpt["epoch"], ckpt["step_in_epoch"]
        history = list(ckpt.get("history", []))
        elapsed_before = float(ckpt.get("elapsed", 0.0))
        if ranks.is_main:  # the stopped epoch's loss so far, over all ranks, is carried by the main one
            partial = ckpt.get("partial", {})
            resumed_loss_sum, resumed_seen = float(partial.get("loss_sum", 0.0)), int(partial.get("seen", 0))

    def checkpoint(epoch: int, step_in_epoch: int, order_state: torch.Tensor, elapsed: float,
                   partial: tuple[float, float] = (0.0, 0)) -> Path | None:
        if checkpoint_path is None or not ranks.is_main:
            return None
        return save_checkpoint(checkpoint_payload(
            config, model, history,
            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
            scaler=scaler.state_dict() if scaler.is_enabled() else {}, world_size=ranks.world,
            epoch=epoch, step_in_epoch=step_in_epoch,
            rng={"torch": torch.get_rng_state(), "order_at_epoch_start": order_state}, elapsed=elapsed,
            # the stopped epoch's loss so far, so its train_loss covers the whole epoch after resume
            partial={"loss_sum": partial[0], "seen": int(partial[1])},
        ), checkpoint_path)

    global_step = start_epoch * steps_per_epoch + skip_steps
    emit(TrainEvent("start", start_epoch, global_step, total_steps,
                    {"device": ranks.describe(), "train_size": dev_data.train_size, "steps_per_epoch": steps_per_epoch,
                     "resumed": resume_from is not None, "notes": [str(n) for n in run_plan.notes]}))
    t0 = time.perf_counter() - elapsed_before
    stopped, saved = False, None
    for epoch in range(start_epoch, config.epochs):
        order_state = order_gen.get_state()
        batches = ranks.shard(torch.randperm(dev_data.train_size, generator=order_gen).to(device), config.batch_size)
        stepped.train()
        epoch_start, seen, loss_sum = time.perf_counter(), 0, torch.zeros((), device=device)
        if skip_steps:  # resuming inside this epoch: carry its loss so far
            seen, loss_sum = resumed_seen, loss_sum + resumed_loss_sum
        for i, idx in enumerate(batches):
            if i < skip_steps:
                continue  # resuming mid-epoch: same order, skip what was done
            if i % ranks.stop_check_every == 0 and ranks.any(should_stop is not None and should_stop()):
                stopped = True
                partial = ranks.sum([loss_sum.item(), float(seen)])
                saved = checkpoint(epoch, i, order_state, time.perf_counter() - t0, (partial[0], partial[1]))
                break
            x, y = normalize(dev_data.train_x[idx]), dev_data.train_y[idx]
            loss = optimizer_step(stepped, x, y, optimizer, scheduler, scaler, device, config)  # DDP averages grads
            global_step += 1
            seen += len(y)
            loss_sum += loss.detach() * len(y)
            if global_step % step_event_every == 0:
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"loss became {loss_value} at step {global_step}"
                                             + (f" on rank {ranks.rank}" if ranks.distributed else "")
                                             + "; lower the learning rate or use fp32")
                emit(TrainEvent("step", epoch + 1, global_step, total_steps,
                                {"loss": loss_value, "lr": scheduler.get_last_lr()[0]}))
        skip_steps = 0
        if stopped:
            break
        train_seconds = time.perf_counter() - epoch_start
        total_loss, total_seen = ranks.sum([loss_sum.item(), float(seen)])
        metrics = measure_test_split(model, dev_data, config.precision, ranks)
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(total_seen, 1),
            **metrics,
            "samples_per_second": total_seen / train_seconds if train_seconds > 0 else 0.0,
            "lr": scheduler.get_last_lr()[0],
            "elapsed": time.perf_counter() - t0,
            "memory_bytes": memory_in_use(device),
        }
        if not math.isfinite(record["train_loss"]):
            raise FloatingPointError(f"training loss became {record['train_loss']} in epoch {epoch + 1}")
        history.append(record)
        saved = checkpoint(epoch + 1, 0, order_gen.get_state(), record["elapsed"])
        emit(TrainEvent("epoch", epoch + 1, global_step, total_steps, record))
    model.eval()
    emit(TrainEvent("end", len(history), global_step, total_steps, {"stopped": stopped}))
    return TrainResult(model, history, stopped, saved, str(device))
