"""The training engine: a validated config, a fast loop, events, stop and resume.

``train(config)`` runs on data resident on the device (see ``DeviceMNIST``),
streams ``TrainEvent``s to a callback, checks a stop request between steps,
writes a checkpoint after every epoch (atomically), and resumes from one so that
an interrupted CPU run ends with the same weights, bit for bit, as one that was
never interrupted: the checkpoint carries the model, optimizer, scheduler, the
global RNG state and the state of the generator that orders the epoch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from bigmodels.models.checkpoints import load_checkpoint, save_checkpoint
from bigmodels.data.mnist import MNIST, DeviceMNIST, load_mnist
from bigmodels.train.devices import memory_in_use, resolve_device
from bigmodels.models.registry import create_model, get_spec, make_config

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A TrainConfig value is out of range; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass
class TrainConfig:
    model: str = "cnn"
    preset: str = "default"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int = 2
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 3e-3
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    momentum: float = 0.9  # SGD only
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    train_subset: int | None = None  # train on the first N of a fixed shuffle; None = all

    # ---------------------------------------------------------------- checking
    def problems(self) -> list[str]:
        """Every invalid value, as a sentence a user can act on (empty = valid)."""
        p = []
        try:
            get_spec(self.model)
            make_config(self.model, self.preset, **self.model_overrides)
        except (ValueError, TypeError) as exc:
            p.append(str(exc))
        if not isinstance(self.epochs, int) or not 1 <= self.epochs <= 200:
            p.append(f"epochs must be a whole number from 1 to 200 (got {self.epochs!r})")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 8192:
            p.append(f"batch_size must be a whole number from 1 to 8192 (got {self.batch_size!r})")
        if self.optimizer not in OPTIMIZERS:
            p.append(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})")
        if not _is_number(self.lr) or not 0 < self.lr <= 10:
            p.append(f"learning rate must be above 0 and at most 10 (got {self.lr!r})")
        if self.schedule not in SCHEDULES:
            p.append(f"schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})")
        if not _is_number(self.weight_decay) or not 0 <= self.weight_decay <= 1:
            p.append(f"weight decay must be from 0 to 1 (got {self.weight_decay!r})")
        if not _is_number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            p.append(f"label smoothing must be at least 0 and below 1 (got {self.label_smoothing!r})")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            p.append(f"momentum must be at least 0 and below 1 (got {self.momentum!r})")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            p.append(f"seed must be a non-negative whole number (got {self.seed!r})")
        if not (self.device in DEVICES or str(self.device).startswith("cuda:")):
            p.append(f"device must be one of {', '.join(DEVICES)} or cuda:N (got {self.device!r})")
        if self.precision not in PRECISIONS:
            p.append(f"precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        if self.train_subset is not None and (not isinstance(self.train_subset, int) or self.train_subset < 10):
            p.append(f"train subset must be empty (all data) or a whole number of at least 10 (got {self.train_subset!r})")
        return p

    def validate(self) -> "TrainConfig":
        errors = self.problems()
        if errors:
            raise ConfigError(errors)
        return self

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_overrides.items()}
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError([f"unknown training setting(s): {', '.join(sorted(unknown))}"])
        return cls(**values)

    def hash(self) -> str:
        """Identifies what a run computes; ``device: auto`` is kept as asked, so the
        same config on another machine is another run only if it asked for one."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# Recipes tuned on this project's 2-core CPU (see benchmarks/train_speed.py).
RECIPES: dict[str, dict[str, Any]] = {
    "cnn": dict(epochs=2, batch_size=256, optimizer="adam", lr=1e-2, schedule="onecycle", label_smoothing=0.1),
    "lstm": dict(epochs=5, batch_size=128, optimizer="adam", lr=4e-3, schedule="onecycle"),
    "transformer": dict(epochs=16, batch_size=128, optimizer="adamw", lr=2e-3, schedule="onecycle",
                        weight_decay=0.05, label_smoothing=0.1),
}


def default_config(model: str = "cnn", **changes: Any) -> TrainConfig:
    """The project's tested recipe for ``model``, with ``changes`` on top."""
    return TrainConfig(model=model, **{**RECIPES.get(model, {}), **changes})


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
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps,
                                                   pct_start=0.25, div_factor=10, final_div_factor=100)
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
def measure_test_split(model: nn.Module, data: DeviceMNIST, device: torch.device, precision: str = "fp32",
                 batch_size: int = 1000) -> dict[str, float]:  # 1000: fastest of 250-2000 here
    """Loss and accuracy on the test split (model left in eval mode)."""
    model.eval()
    total_loss, correct = 0.0, 0
    for x, y in data.test_batches(batch_size):
        with autocast_context(device, precision):
            logits = model(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = len(data.test_y)
    return {"test_loss": total_loss / n, "test_accuracy": correct / n}


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


def train(
    config: TrainConfig,
    data: MNIST | DeviceMNIST | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_path: str | Path | None = None,
    resume_from: str | Path | dict | None = None,
    step_event_every: int = 1,
) -> TrainResult:
    """Train ``config`` and return the model with its per-epoch history.

    ``data`` may be an ``MNIST`` (moved to the device here) or a ``DeviceMNIST``
    already resident on the right device (a warm worker session passes that).
    """
    config.validate()
    emit = on_event or (lambda event: None)
    device = resolve_device(config.device)
    if device.type == "cpu" and config.precision == "fp16":
        raise ConfigError(["fp16 autocast needs a GPU; use bf16 or fp32 on the CPU"])

    if isinstance(data, DeviceMNIST) and data.device == device and config.train_subset in (None, data.train_size):
        dev_data = data
    else:
        source = data if isinstance(data, MNIST) else load_mnist()
        dev_data = DeviceMNIST(source, device, train_subset=config.train_subset, subset_seed=config.seed)

    steps_per_epoch = math.ceil(dev_data.train_size / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    torch.manual_seed(config.seed)
    model = create_model(config.model, config.preset, **config.model_overrides).to(device)
    optimizer = _build_optimizer(config, model)
    scheduler = _build_schedule(config, optimizer, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    order_gen = torch.Generator().manual_seed(config.seed)  # orders the batches of every epoch

    history: list[dict[str, Any]] = []
    start_epoch, skip_steps, elapsed_before = 0, 0, 0.0
    if resume_from is not None:
        ckpt = resume_from if isinstance(resume_from, dict) else load_checkpoint(resume_from, map_location=device)
        if ckpt.get("train_config") != config.to_dict():
            raise ConfigError(["the checkpoint was trained with a different configuration; resume it with its own"])
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt.get("scaler", {})) if ckpt.get("scaler") else None
        torch.set_rng_state(ckpt["rng"]["torch"])
        order_gen.set_state(ckpt["rng"]["order_at_epoch_start"])
        start_epoch, skip_steps = ckpt["epoch"], ckpt["step_in_epoch"]
        history = list(ckpt.get("history", []))
        elapsed_before = float(ckpt.get("elapsed", 0.0))
        partial = ckpt.get("partial", {})
        resumed_loss_sum, resumed_seen = float(partial.get("loss_sum", 0.0)), int(partial.get("seen", 0))
    else:
        resumed_loss_sum, resumed_seen = 0.0, 0

    def checkpoint(epoch: int, step_in_epoch: int, order_state: torch.Tensor, elapsed: float,
                   partial: tuple[float, int] = (0.0, 0)) -> Path | None:
        if checkpoint_path is None:
            return None
        return save_checkpoint({
            "model_name": config.model,
            "model_config": dataclasses.asdict(model.config),
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "train_config": config.to_dict(),
            "epoch": epoch, "step_in_epoch": step_in_epoch,
            "rng": {"torch": torch.get_rng_state(), "order_at_epoch_start": order_state},
            "history": history, "elapsed": elapsed,
            # the stopped epoch's loss so far, so its train_loss covers the whole epoch after resume
            "partial": {"loss_sum": partial[0], "seen": partial[1]},
        }, checkpoint_path)

    global_step = start_epoch * steps_per_epoch + skip_steps
    emit(TrainEvent("start", start_epoch, global_step, total_steps,
                    {"device": str(device), "train_size": dev_data.train_size, "steps_per_epoch": steps_per_epoch,
                     "resumed": resume_from is not None}))
    t0 = time.perf_counter() - elapsed_before
    stopped, saved = False, None
    for epoch in range(start_epoch, config.epochs):
        order_state = order_gen.get_state()
        model.train()
        epoch_start, seen, loss_sum = time.perf_counter(), 0, torch.zeros((), device=device)
        if skip_steps:  # resuming inside this epoch: carry its loss so far
            seen, loss_sum = resumed_seen, loss_sum + resumed_loss_sum
        for i, (x, y) in enumerate(dev_data.train_batches(config.batch_size, order_gen)):
            if i < skip_steps:
                continue  # resuming mid-epoch: same order, skip what was done
            if should_stop is not None and should_stop():
                stopped = True
                saved = checkpoint(epoch, i, order_state, time.perf_counter() - t0, (loss_sum.item(), seen))
                break
            loss = optimizer_step(model, x, y, optimizer, scheduler, scaler, device, config)
            global_step += 1
            seen += len(y)
            loss_sum += loss.detach() * len(y)
            if global_step % step_event_every == 0:
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"loss became {loss_value} at step {global_step}; "
                                             f"lower the learning rate or use fp32")
                emit(TrainEvent("step", epoch + 1, global_step, total_steps,
                                {"loss": loss_value, "lr": scheduler.get_last_lr()[0]}))
        skip_steps = 0
        if stopped:
            break
        train_seconds = time.perf_counter() - epoch_start
        metrics = measure_test_split(model, dev_data, device, config.precision)
        record = {
            "epoch": epoch + 1,
            "train_loss": (loss_sum / max(seen, 1)).item(),
            **metrics,
            "samples_per_second": seen / train_seconds if train_seconds > 0 else 0.0,
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
