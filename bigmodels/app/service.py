"""Page support for the model service: slow work off the script thread, and
the app's own API key.

Starting the service, deploying (replicas come up in seconds) and a load run
(up to a minute) each run in a background thread of the server; the page
starts one and polls it, so a click never waits on them. Jobs are per server
(two tabs see the same deploy in progress); a load run is per session.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

from bigmodels.base.processes import pid_alive
from bigmodels.serving.settings import MAX_RATE_PER_S
from bigmodels.serving.store import ServiceStore

APP_KEY_NAME = "bigmodels app (sandbox, load generator)"
_SESSION_KEY = "service_session_id"


@dataclass
class Job:
    name: str
    started: float = field(default_factory=time.time)
    done: bool = False
    result: Any = None
    error: Exception | None = None

    @property
    def seconds(self) -> float:
        return time.time() - self.started


@dataclass
class _Jobs:
    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict[str, Job] = field(default_factory=dict)


@st.cache_resource(show_spinner=False)
def _jobs() -> _Jobs:
    return _Jobs()


def start_job(name: str, work: Callable[[], Any]) -> bool:
    """Run ``work`` in a thread under ``name``; False if one by that name is still running."""
    registry = _jobs()
    with registry.lock:
        current = registry.jobs.get(name)
        if current is not None and not current.done:
            return False
        job = registry.jobs[name] = Job(name)

    def run() -> None:
        try:
            job.result = work()
        except Exception as exc:  # shown on the page, in the user's language, by its reason
            job.error = exc
        finally:
            job.done = True

    threading.Thread(target=run, name=f"service-{name}", daemon=True).start()
    return True


def job(name: str) -> Job | None:
    return _jobs().jobs.get(name)


def forget_job(name: str) -> None:
    with _jobs().lock:
        _jobs().jobs.pop(name, None)


def session_id() -> str:
    if _SESSION_KEY not in st.session_state:
        st.session_state[_SESSION_KEY] = uuid.uuid4().hex[:12]
    return st.session_state[_SESSION_KEY]


@dataclass
class _AppKey:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: dict[str, str] = field(default_factory=dict)  # store path -> key (memory only)


@st.cache_resource(show_spinner=False)
def _app_keys() -> _AppKey:
    return _AppKey()


def app_key(home=None) -> str:
    """The key this app process uses for its own calls (the sandbox's "via the API",
    the load generator): created on first need, kept in this process's memory only,
    listed among the keys under its name and pid so the operator sees and can revoke it.
    Each process of a pool on one home has its own; only the keys of app processes that
    have ended (lost with them) are revoked."""
    store = ServiceStore(home)
    holder = _app_keys()
    with holder.lock:
        key = holder.keys.get(str(store.path))
        known = {k.id: k for k in store.keys()}
        if key is not None:
            record = known.get(key.split("_")[1])
            if record is not None and not record.revoked:
                return key
        for record in known.values():
            if not record.revoked and _ended_app_key(record.name):
                store.revoke_key(record.id)
        _, key = store.create_key(f"{APP_KEY_NAME}{_PID_MARK}{os.getpid()}", rate_per_s=MAX_RATE_PER_S,
                                  burst=int(MAX_RATE_PER_S), quota_images=0)
        holder.keys[str(store.path)] = key
        return key


_PID_MARK = " · pid "


def _ended_app_key(name: str) -> bool:
    """An app key whose process has ended (or one named before keys carried a pid)."""
    if name == APP_KEY_NAME:
        return True
    prefix, _, pid = name.rpartition(_PID_MARK)
    return prefix == APP_KEY_NAME and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))
