"""What a device session (or rank 0 under Ray Train) sends the dispatcher about a run,
one dataclass per kind, in the order they come: one ``Provenance``, ``Events`` batches,
one ``Outcome``. Written in ``session``, ``multi`` and ``batching``; read once, in
``dispatcher``. They cross processes and hosts by Ray's pickling, so this module stays
importable wherever a session runs."""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Literal, Union

from bigmodels.train.engine import TrainEvent

DETAIL_CHARS = 2000  # an exception's text kept for the run's log


@dataclass(frozen=True)
class Provenance:
    """Where and on what the run trains: written to the run before its first step."""

    device: str  # the plan's target, e.g. "cpu", "cuda:0"
    device_name: str  # as a person reads it ("CPU: ..., 2 threads of 2 cores", "NVIDIA H100 (80 GiB) x2")
    data_source: str
    versions: dict[str, str]
    git_commit: str | None
    host: str | None = None


@dataclass(frozen=True)
class SystemSample:
    """The session's CPU, memory and GPU use while it trains (the launcher's system charts)."""

    cpu_percent: float | None
    memory_bytes: int | None
    gpu_percent: float | None = None
    gpu_memory_bytes: int | None = None

    @property
    def held_bytes(self) -> int | None:
        """What the run holds: the device's memory on a GPU, else the process's."""
        return self.gpu_memory_bytes if self.gpu_memory_bytes is not None else self.memory_bytes

    @property
    def held_kind(self) -> str:
        return "device" if self.gpu_memory_bytes is not None else "process"


@dataclass(frozen=True)
class Events:
    """Training events in order; ``checkpoint``: the bytes written after the epoch (or the
    end) among them, when they changed, so a checkpoint and its epoch arrive together."""

    events: list[TrainEvent]
    at: float
    checkpoint: bytes | None = None
    system: SystemSample | None = None


Status = Literal["succeeded", "failed", "stopped", "refused"]


@dataclass(frozen=True)
class Outcome:
    """How the run ended on the session: ``stopped`` (asked to: a cancel, or the session
    shutting down), ``refused`` (the session was busy), ``failed`` (``reason`` for the
    person, ``detail`` for the log), or ``succeeded``."""

    status: Status
    reason: str | None = None
    detail: str | None = None

    @classmethod
    def failure(cls, reason: str, exc: BaseException) -> "Outcome":
        return cls("failed", reason, "".join(traceback.format_exception_only(type(exc), exc)).strip()[:DETAIL_CHARS])


Message = Union[Provenance, Events, Outcome]
