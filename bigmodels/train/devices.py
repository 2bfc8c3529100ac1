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


def resolve_device(requested: str = "auto") -> torch.device:
    """Turn 'auto' / 'cpu' / 'cuda' / 'cuda:N' / 'mps' into a device that exists, or raise."""
    if requested == "auto":
        return torch.device(available_devices()[0].replace("cuda:0", "cuda"))
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but no CUDA GPU is available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {requested!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    elif device.type == "mps" and not (torch.backends.mps.is_available()):
        raise ValueError("device 'mps' asked for, but Apple's MPS backend is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


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
