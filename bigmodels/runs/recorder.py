"""A run's training, written into the run store as it happens.

``EventRecorder`` turns the engine's event stream into store rows,
``StopWatch`` is the engine's ``should_stop`` for a run in the store, and
``record_outcome`` is the one decision of how a training that returned ends:
succeeded, cancelled (someone asked) or interrupted (its session or dispatcher was stopped).
"""
from __future__ import annotations

import time

from bigmodels.runs.store import RunStore

INTERRUPTED_REASON = "the worker was stopped"  # what Resume does is the page's to say: it depends on the checkpoint


class EventRecorder:
    """Writes a run's ``TrainEvent`` stream into the store.

    Step events are buffered and written at most every ``flush_every`` seconds
    (one transaction per flush, not per step), except the very first step, which
    is written at once: it is the moment the launch latency is measured to.
    """

    def __init__(self, store: RunStore, run_id: str, batch_size: int, flush_every: float = 0.5):
        self.store, self.run_id, self.batch_size, self.flush_every = store, run_id, batch_size, flush_every
        self.buffer: list[tuple[int, int, float, float, float]] = []
        self.last_flush = time.time()
        self.first_step_seen = False
        self.samples_per_step = batch_size
        self._rate_mark: tuple[int, float] | None = None

    def __call__(self, event) -> None:  # a bigmodels.train.engine.TrainEvent
        now = time.time()
        if event.kind == "start":
            self.store.record_start(self.run_id, event.step, event.epoch, event.total_steps, at=now)
            note = "resumed" if event.data.get("resumed") else "training started"
            self.store.log(self.run_id, f"{note} at step {event.step} of {event.total_steps} on "
                                        f"{event.data.get('device')} ({event.data.get('train_size', 0):,} "
                                        f"training images, {event.data.get('steps_per_epoch')} steps per epoch)")
            for note in event.data.get("notes", []):
                self.store.log(self.run_id, f"note: {note}")
            self._rate_mark = (event.step, now)
        elif event.kind == "step":
            self.buffer.append((event.step, event.epoch, event.data["loss"], event.data["lr"], now))
            if not self.first_step_seen:
                self.first_step_seen = True
                self.flush(first_step=True)
            elif now - self.last_flush >= self.flush_every:
                self.flush()
        elif event.kind in ("epoch", "end"):
            self.flush()
            if event.kind == "epoch":
                self.store.record_epoch(self.run_id, event.data)
                self._rate_mark = (event.step, time.time())  # the test pass is not training speed

    def flush(self, first_step: bool = False) -> None:
        if not self.buffer:
            return
        now = time.time()
        rate = None
        last_step = self.buffer[-1][0]
        if self._rate_mark is not None and last_step > self._rate_mark[0] and now > self._rate_mark[1]:
            rate = (last_step - self._rate_mark[0]) * self.samples_per_step / (now - self._rate_mark[1])
        self.store.record_steps(self.run_id, self.buffer, samples_per_second=rate, first_step=first_step)
        self._rate_mark = (last_step, now)
        self.buffer = []
        self.last_flush = now


class StopWatch:
    """``should_stop`` for ``train``: true once the run's cancel flag is set in the
    store (read at most every ``every`` seconds) or ``also()`` says so (the session
    is shutting down, its parent died)."""

    def __init__(self, store: RunStore, run_id: str, every: float = 0.5, also=None):
        self.store, self.run_id, self.every, self.also = store, run_id, every, also
        self.last_check = 0.0
        self.cancelled = False

    def __call__(self) -> bool:
        if self.also is not None and self.also():
            return True
        now = time.monotonic()
        if not self.cancelled and now - self.last_check >= self.every:
            self.last_check = now
            self.cancelled = self.store.cancel_requested(self.run_id)
        return self.cancelled


def final_status(stopped: bool, cancel_requested: bool) -> tuple[str, str | None]:
    """(status, reason) of a training that returned: it ran to the end, or it
    stopped because a cancel was asked for, or because its session was stopped."""
    if not stopped:
        return "succeeded", None
    if cancel_requested:
        return "cancelled", None
    return "interrupted", INTERRUPTED_REASON


def record_outcome(store: RunStore, run_id: str, stopped: bool) -> str:
    """Finish ``run_id`` with its final status; returns the status."""
    status, reason = final_status(stopped, stopped and store.cancel_requested(run_id))
    store.finish(run_id, status, reason)
    return status
