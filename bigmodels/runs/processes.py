"""Other processes, as seen from this one: alive or not, and how much memory.

The worker, the torchrun entry and the pages ask these questions of pids the
run store recorded; nothing here knows about runs.
"""
from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by its parent) answers kill(0) too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_memory() -> int | None:
    """Resident memory of this process, in bytes (Linux; None elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
