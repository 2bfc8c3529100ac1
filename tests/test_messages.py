"""The messages a session sends the dispatcher (bigmodels.cluster.messages), as the
batcher writes them: typed, and a checkpoint travels with the epoch it follows, once."""
import os

from bigmodels.cluster.batching import EventBatcher
from bigmodels.cluster.messages import Events, Outcome, SystemSample
from bigmodels.train.engine import TrainEvent


def step(n):
    return TrainEvent("step", 1, n, 10, {"loss": 1.0 / n})


def test_a_checkpoint_travels_with_its_epoch_once(tmp_path):
    checkpoint = tmp_path / "c.pt"
    batcher = EventBatcher(checkpoint)
    batcher.add(step(1))
    assert batcher.due(now=0.0)  # the first step goes at once (launch latency is measured to it)
    first = batcher.take(0.0)
    assert isinstance(first, Events) and first.events == [step(1)] and first.checkpoint is None
    checkpoint.write_bytes(b"epoch-1")
    batcher.add(TrainEvent("epoch", 1, 10, 10, {"test_accuracy": 0.9}))
    with_epoch = batcher.take(1.0, SystemSample(50.0, 1 << 20))
    assert with_epoch.checkpoint == b"epoch-1" and with_epoch.system.held_kind == "process"
    batcher.add(TrainEvent("end", 1, 10, 10, {}))
    assert batcher.take(2.0).checkpoint is None  # unchanged since it travelled
    checkpoint.write_bytes(b"epoch-1, rewritten")
    os.utime(checkpoint, ns=(1, 1))  # a different modification time: a new checkpoint
    batcher.add(TrainEvent("end", 1, 10, 10, {}))
    assert batcher.take(3.0).checkpoint == b"epoch-1, rewritten"


def test_a_gpu_sample_counts_the_device_memory():
    sample = SystemSample(10.0, 5 << 30, 80.0, 2 << 30)
    assert (sample.held_bytes, sample.held_kind) == (2 << 30, "device")


def test_a_failure_keeps_the_exceptions_one_line_for_the_log():
    try:
        raise ValueError("x" * 5000)
    except ValueError as exc:
        outcome = Outcome.failure("the run failed", exc)
    assert outcome.status == "failed" and outcome.reason == "the run failed"
    assert outcome.detail.startswith("ValueError: xxx") and len(outcome.detail) == 2000
