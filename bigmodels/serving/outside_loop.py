"""Blocking calls that must not run on a thread whose event loop is running.

``asyncio.run`` and Ray Serve's ``DeploymentResponse.result()`` refuse to run on
a thread that already runs an event loop -- Playwright's sync API leaves one on
a test process's main thread, and other hosts may too. ``call_outside_loop``
runs the call on a short-lived thread of its own in that case, and in place
otherwise, so callers need not know where they are called from.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Callable, TypeVar

T = TypeVar("T")


def call_outside_loop(fn: Callable[[], T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()  # no loop here: the usual case (Streamlit's script threads, the CLI)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="outside-loop") as pool:
        return pool.submit(fn).result()
