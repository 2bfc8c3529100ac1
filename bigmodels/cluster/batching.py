"""A run's training events, grouped into the messages that travel to the dispatcher.

Both streams use it -- a device session's (``bigmodels.cluster.session``) and
rank 0's under Ray Train (``bigmodels.cluster.multi``): step events go in
one message per ``FLUSH_S``; the start, every epoch, the end and the very
first step (the moment launch latency is measured to) go at once; and a
message holding an epoch or the end carries the checkpoint written after it,
as bytes, when it changed -- so the checkpoint and its epoch arrive together.
"""
from __future__ import annotations

import time
from pathlib import Path

from bigmodels.cluster.messages import Events, SystemSample

FLUSH_S = 0.25  # step events per message: a CNN step is ~25 ms here, so ~10 steps a message
URGENT = ("start", "epoch", "end")


class EventBatcher:
    def __init__(self, checkpoint: Path):
        self.checkpoint = checkpoint
        self.pending: list = []
        self.last_flush = time.monotonic()
        self.first_step_sent = False
        self._sent_mtime: int | None = None

    def add(self, event) -> None:  # a bigmodels.train.engine.TrainEvent
        self.pending.append(event)

    def due(self, now: float, finished: bool = False) -> bool:
        """Should the pending events go now?"""
        if not self.pending:
            return False
        urgent = finished or any(e.kind in URGENT for e in self.pending) or (
            not self.first_step_sent and any(e.kind == "step" for e in self.pending))
        return urgent or now - self.last_flush >= FLUSH_S

    def take(self, now: float, system: SystemSample | None = None) -> Events:
        """The pending events as one message (with the checkpoint when it follows them)."""
        checkpoint = None
        if any(e.kind in ("epoch", "end") for e in self.pending) and self.checkpoint.is_file():
            mtime = self.checkpoint.stat().st_mtime_ns
            if mtime != self._sent_mtime:  # a new checkpoint: it travels with the epoch it follows
                checkpoint = self.checkpoint.read_bytes()
                self._sent_mtime = mtime
        message = Events(self.pending, time.time(), checkpoint, system)
        self.first_step_sent = self.first_step_sent or any(e.kind == "step" for e in self.pending)
        self.pending = []
        self.last_flush = now
        return message
