"""The launch plan: will this run work, and where will it run?

``plan(config, resources)`` is the one place a training request is checked. The
launcher form, the CLI, the run queue and the engine all call it, so they agree
on every bound and give the same message. It returns a ``Plan`` (the device,
the processes, the model's size, its estimated training memory and any notes
such as "only 4,000 images exist") or raises ``ConfigError`` listing every
problem in the user's words.

The memory estimate is what one training process holds on its device:
weights, gradients and optimizer state (bytes per parameter from the
challenges calculators' conventions), the activations autograd keeps for the
backward pass at the batch size (measured by running the model once on
PyTorch's meta device and adding up the tensors it saves, so nothing is
allocated), and the dataset resident on the device. A request whose estimate,
with headroom for the allocator and temporaries, exceeds the device's free
memory is refused before any device session tries it.
"""
from __future__ import annotations

import dataclasses

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.autograd.graph import saved_tensors_hooks

from bigmodels.analysis.calculators import TRAINING_CONVENTIONS
from bigmodels.base.formatting import format_bytes, format_count
from bigmodels.models.nets import IMAGE_SIZE
from bigmodels.models.registry import MAX_PARAMETERS, get_spec, make_config, parameter_count
from bigmodels.base.problems import ConfigError, Problem
from bigmodels.train.config import TrainConfig
from bigmodels.base.devices import available_devices, describe_device

MAX_WORLD_SIZE = 1024  # processes in one run, over all nodes
#: Peak resident memory over the estimate: measured 1.03-1.10 for LeNet with
#: 17.7M and 67.3M parameters (3 fused-Adam steps at batch 256, this CPU); the
#: rest covers the session's own runtime.
MEMORY_HEADROOM = 1.25
#: The share of a device's free memory one run may take: the app, its visitors
#: and (on a GPU) the CUDA context and other runs need the rest.
MEMORY_SHARE = 0.75
MNIST_BYTES = (60_000 + 10_000) * (IMAGE_SIZE * IMAGE_SIZE + 8)  # uint8 images + int64 labels, resident


# ---------------------------------------------------------------- resources
@dataclass(frozen=True)
class Device:
    name: str  # "cpu", "cuda:0", "mps"
    description: str
    free_bytes: int | None  # None: not known here

    @property
    def kind(self) -> str:
        return self.name.split(":")[0]


@dataclass(frozen=True)
class Resources:
    """What a run can be placed on: devices best first, and the CPU cores."""

    devices: tuple[Device, ...]
    cpu_cores: int

    @classmethod
    def local(cls) -> "Resources":
        """This machine, as it is now (free memory read afresh)."""
        return cls(tuple(Device(name, describe_device(name), _free_bytes(name)) for name in available_devices()),
                   os.cpu_count() or 1)

    def get(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)

    def gpus(self) -> list[Device]:
        return [d for d in self.devices if d.kind == "cuda"]

    def max_processes(self) -> int:
        """The most processes one run can use here (one per GPU, or one per core)."""
        return max(self.cpu_cores, len(self.gpus()))


def _free_bytes(device: str) -> int | None:
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    if device == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None


# --------------------------------------------------------------- estimates
@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    grads: int
    optimizer: int
    activations: int  # at the run's batch size (per process)
    data: int

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer + self.activations + self.data


@functools.lru_cache(maxsize=64)
def _activation_bytes_per_image(model: str, preset: str, overrides_json: str) -> int:
    """Bytes autograd saves for backward, per image, measured on the meta device."""
    probe_batch = 2
    with torch.device("meta"):
        net = get_spec(model).build(make_config(model, preset, **json.loads(overrides_json)))
        x = torch.zeros(probe_batch, 1, IMAGE_SIZE, IMAGE_SIZE)
        params = {id(p) for p in net.parameters()}
        saved = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal saved  # weights (or views of them) saved for backward are not activations
            if id(t) not in params and id(t._base) not in params:
                saved += t.numel() * t.element_size()
            return t
        with saved_tensors_hooks(pack, lambda t: t):
            net.train()(x)
    return saved // probe_batch


def estimate_memory(config: TrainConfig, parameters: int) -> MemoryEstimate:
    """Training memory of one process of ``config`` (see the module docstring)."""
    # Autocast keeps fp32 master weights and fp32 gradients, so the fp32 convention holds for every precision.
    per_param = dict(TRAINING_CONVENTIONS["fp32_adam"].breakdown)
    moments = per_param["adam_m_fp32"] + per_param["adam_v_fp32"]
    optimizer = {"adam": moments, "adamw": moments}.get(
        config.optimizer, per_param["adam_m_fp32"] if config.momentum > 0 else 0.0)  # SGD: one momentum buffer
    activations = _activation_bytes_per_image(config.model, config.preset,
                                              json.dumps(config.to_dict()["model_overrides"], sort_keys=True))
    return MemoryEstimate(weights=int(parameters * per_param["weights_fp32"]),
                          grads=int(parameters * per_param["grads_fp32"]),
                          optimizer=int(parameters * optimizer),
                          activations=activations * config.batch_size,
                          data=MNIST_BYTES)


# -------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Plan:
    config: TrainConfig
    world_size: int
    target: str  # the device a session must serve: "cpu", "cuda:0" (GPUs 0..N-1 for N processes), "mps"
    devices: tuple[str, ...]  # every device the run occupies
    parameters: int
    memory: MemoryEstimate  # one process
    notes: tuple[Problem, ...] = field(default=())
    train_size: int | None = None  # images actually trained on, when the data size was known

    @property
    def memory_need(self) -> int:
        """Bytes one process needs on its device: what a session must have free (stored
        with the run when it is queued; the dispatcher places by it)."""
        return process_memory_need(self.memory)


def process_memory_need(memory: MemoryEstimate) -> int:
    """One process's estimate with the headroom measured over it."""
    return int(memory.total * MEMORY_HEADROOM)


def memory_need(config: TrainConfig) -> int:
    """``Plan.memory_need`` for a config already planned once (a run queued before runs
    kept their need): the same estimate, without checking devices again."""
    return process_memory_need(estimate_memory(config, parameter_count(config.model, config.preset,
                                                                       **config.model_overrides)))


def resolve_device(requested: str, resources: Resources) -> str | None:
    """The device ``requested`` names among ``resources`` (None: not present)."""
    if requested == "auto":
        return resources.devices[0].name if resources.devices else None
    name = "cuda:0" if requested == "cuda" else requested
    return name if resources.get(name) is not None else None


def plan(config: TrainConfig, resources: Resources | None = None, world_size: int = 1,
         data_size: int | None = None) -> Plan:
    """Check ``config`` on ``world_size`` processes against ``resources`` (this
    machine by default); ``data_size``: training images available, if known."""
    problems = list(config.problems())
    if not isinstance(world_size, int) or isinstance(world_size, bool) or not 1 <= world_size <= MAX_WORLD_SIZE:
        problems.append(Problem.of("plan.problem.processes", high=MAX_WORLD_SIZE, got=repr(world_size)[:40]))
    if problems:  # sizes and devices mean nothing for settings that are wrong
        raise ConfigError(problems)
    resources = resources if resources is not None else Resources.local()

    target = resolve_device(config.device, resources)
    if target is None:
        raise ConfigError([Problem.of("plan.problem.no_device", device=config.device,
                                      present=", ".join(d.name for d in resources.devices) or "-")])
    kind = target.split(":")[0]
    devices = (target,)
    if kind != "cuda" and config.precision == "fp16":
        problems.append(Problem.of("plan.problem.fp16_cpu", device=kind.upper()))
    if world_size > 1:
        if kind == "cuda":
            if target != "cuda:0":
                problems.append(Problem.of("plan.problem.gpu_index"))
            elif world_size > len(resources.gpus()):
                problems.append(Problem.of("plan.problem.gpus", n=world_size, present=len(resources.gpus())))
            devices = tuple(f"cuda:{i}" for i in range(world_size))
        elif kind == "mps":
            problems.append(Problem.of("plan.problem.mps_processes"))
        elif world_size > resources.cpu_cores:
            problems.append(Problem.of("plan.problem.cpu_processes", n=world_size, cores=resources.cpu_cores))

    parameters = parameter_count(config.model, config.preset, **config.model_overrides)
    if parameters > MAX_PARAMETERS:
        problems.append(Problem.of("plan.problem.parameters", parameters=format_count(parameters),
                                   limit=format_count(MAX_PARAMETERS)))
        raise ConfigError(problems)  # too large even to probe
    memory = estimate_memory(config, parameters)
    # Several CPU processes share one machine's memory; GPUs each hold one process.
    need = process_memory_need(memory) * (world_size if kind == "cpu" else 1)
    free = min((resources.get(d).free_bytes for d in devices if resources.get(d) is not None
                and resources.get(d).free_bytes is not None), default=None)
    if free is not None and need > free * MEMORY_SHARE:
        problems.append(Problem.of(
            "plan.problem.memory", need=format_bytes(need), device=target, weights=format_bytes(memory.weights),
            grads=format_bytes(memory.grads), optimizer=format_bytes(memory.optimizer), batch=config.batch_size,
            activations=format_bytes(memory.activations), limit=format_bytes(free * MEMORY_SHARE),
            share=f"{MEMORY_SHARE:.0%}", free=format_bytes(free)))
    if problems:
        raise ConfigError(problems)

    notes, train_size = [], data_size
    if data_size is not None and config.train_subset is not None:
        train_size = min(config.train_subset, data_size)
        if config.train_subset > data_size:  # planned, and so recorded, as what will be trained: all there is
            notes.append(Problem.of("plan.note.subset", asked=f"{config.train_subset:,}", available=f"{data_size:,}"))
            config = dataclasses.replace(config, train_subset=None)
    return Plan(config, world_size, target, devices, parameters, memory, tuple(notes), train_size)
