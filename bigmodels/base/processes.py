"""Other processes, as seen from this one: alive or not, and how much memory.

The dispatcher and the pages ask these questions of pids the
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


def tree_memory(*pids: int) -> int:
    """Resident memory of processes and all their descendants, in bytes (Linux /proc);
    a process reachable from two of ``pids`` counts once."""
    total, stack, seen = 0, list(pids), set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            stack.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
        except (OSError, ValueError):
            continue  # it ended while we looked
    return total


class CpuMeter:
    """CPU utilisation of this process between two calls, in percent of one core
    (200% is two cores busy), from the kernel's user + system time of all its threads."""

    def __init__(self):
        self._mark = self._now()

    @staticmethod
    def _now() -> tuple[float, float]:
        times = os.times()
        return times.user + times.system, times.elapsed

    def sample(self) -> float | None:
        cpu, wall = self._now()
        last_cpu, last_wall = self._mark
        self._mark = (cpu, wall)
        if wall <= last_wall:
            return None
        return 100.0 * (cpu - last_cpu) / (wall - last_wall)
