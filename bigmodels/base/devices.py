"""Which compute devices exist here, and how to describe them to a person."""
from __future__ import annotations

import os
import platform

import torch


def available_devices() -> list[str]:
    """Devices that really work on this machine, best first (``cuda:1`` etc. for more GPUs)."""
    found = []
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def describe_device(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device.index or 0)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads of {os.cpu_count()} cores"


def memory_in_use(device: str | torch.device) -> int | None:
    """Bytes the framework holds on ``device`` (None on CPU, where it is not tracked)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return None
