"""A warm device session: a device made ready once and reused by every run.

Making a device ready costs seconds -- CUDA initialised, MNIST copied onto it,
each architecture's kernels chosen and its allocator grown -- and a run on a
ready device starts training within a fraction of a second. A session holds
that state; the Ray actor in ``bigmodels.cluster.session`` keeps one per device
of a cluster and trains one run at a time on it.
"""
from __future__ import annotations

import collections
import time

import torch

from bigmodels.data.mnist import MNIST, DeviceMNIST, load_mnist, normalize
from bigmodels.models.registry import create_model, get_spec, list_models
from bigmodels.base.problems import ConfigError, Problem
from bigmodels.base.provenance import git_commit, software_versions
from bigmodels.base.processes import process_memory
from bigmodels.train.config import default_config
from bigmodels.base.devices import describe_device
from bigmodels.train.plan import Resources, plan, resolve_device


def serving_device(requested: str) -> str:
    """The device a session for ``requested`` serves, named as the plan names it
    ("cuda:0", "cpu"); ConfigError if this machine has none such."""
    resources = Resources.local()
    found = resolve_device(requested, resources)
    if found is None:
        raise ConfigError([Problem.of("plan.problem.no_device", device=requested,
                                      present=", ".join(d.name for d in resources.devices))])
    return found


def describe_failure(exc: BaseException) -> str:
    """A failed run's reason, for a person."""
    if isinstance(exc, torch.OutOfMemoryError):
        first = str(exc).splitlines()[0] if str(exc) else ""
        return (f"out of memory on the device ({first}); lower the batch size or the model size, or use "
                f"bf16")
    if isinstance(exc, FloatingPointError):
        return f"numerical failure: {exc}"
    if isinstance(exc, ConfigError):
        return "invalid configuration: " + "; ".join(exc.errors)
    return f"{type(exc).__name__}: {exc}"


class DeviceSession:
    """MNIST resident on one device, kernels warmed, provenance collected."""

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
        """Two training steps of each architecture at its recipe's batch size with the
        engine's fused optimizer, so the first real step does not pay for kernel
        selection, allocator growth and lazy imports (with a batch of 64 and plain
        Adam the LSTM's first real step still took 0.4 s here)."""
        start = time.perf_counter()
        for name in self.warm_models:
            # the plan's memory probe (autograd on the meta device: 0.3 s for the LSTM) is cached per
            # architecture and settings; a run of the recipe's settings then plans at once
            plan(default_config(name, device=str(self.device.type)), Resources.local(), data_size=self.full.train_size)
            size = default_config(name).batch_size
            batch, labels = normalize(self.full.test_x[:size]), self.full.test_y[:size]
            model = create_model(name).to(self.device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=self.device.type in ("cpu", "cuda"))
            for _ in range(2):
                loss = torch.nn.functional.cross_entropy(model(batch), labels)
                opt.zero_grad(set_to_none=True)
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

    def memory(self) -> dict[str, int | None]:
        """Bytes: what this process holds, and on a GPU what is allocated, free and in total."""
        out: dict[str, int | None] = {"process_bytes": process_memory()}
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            out.update(device_allocated=torch.cuda.memory_allocated(self.device), device_free=int(free),
                       device_total=int(total))
        return out

    def gpu_percent(self) -> float | None:
        """Utilisation of a CUDA device in percent; None elsewhere (or without NVML)."""
        if self.device.type != "cuda":
            return None
        try:
            return float(torch.cuda.utilization(self.device))
        except Exception:  # no pynvml / NVML: the memory alone is still worth recording
            return None
