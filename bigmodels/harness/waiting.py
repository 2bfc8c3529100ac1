"""Waiting for a condition in tests and benchmarks: the one polling loop they share."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 120.0, every: float = 0.05, what: str = "condition") -> T:
    """``predicate()``'s first truthy value, asked every ``every`` seconds; TimeoutError
    (naming ``what``) when none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
