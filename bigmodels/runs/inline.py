"""A queued run trained here, in this process, without Ray.

For tools that need finished runs in a store quickly and deterministically --
the tests and benchmarks that fill a store, a script on a machine without the
cluster -- this is the dispatcher's path minus the placement and the
streaming: claim the run, train it with the one training loop, write its
events into the store as they happen, finish it. The app never uses it: its
runs go through the dispatcher (``bigmodels.cluster.dispatcher``).
"""
from __future__ import annotations

import os

from bigmodels.data.mnist import MNIST
from bigmodels.runs.recorder import EventRecorder, StopWatch, record_outcome
from bigmodels.runs.store import RunStore
from bigmodels.train.config import TrainConfig
from bigmodels.train.engine import train
from bigmodels.train.plan import Resources, plan
from bigmodels.train.session import describe_failure


def execute_inline(store: RunStore, run_id: str, data: MNIST | None = None) -> str:
    """Train the queued run ``run_id`` to a final status; returns it."""
    run = store.claim(run_id, f"inline:{os.getpid()}", os.getpid())
    checkpoint = store.checkpoint_path(run.id)
    try:
        config = TrainConfig.from_dict(run.config)
        run_plan = plan(config, Resources.local(), data_size=len(data.train_labels) if data is not None else None)
        store.set_provenance(run.id, run_plan.target, run_plan.target, data.describe() if data is not None else "",
                             {}, None, str(checkpoint))
        result = train(run_plan, data, on_event=EventRecorder(store, run.id, config.batch_size),
                       should_stop=StopWatch(store, run.id), checkpoint_path=checkpoint,
                       resume_from=checkpoint if run.resume and checkpoint.is_file() else None)
    except Exception as exc:
        store.finish(run.id, "failed", describe_failure(exc))
        return "failed"
    return record_outcome(store, run.id, result.stopped)


def execute_queued(store: RunStore, data: MNIST | None = None) -> list[str]:
    """Every queued run of ``store``, oldest first; returns their final statuses."""
    return [execute_inline(store, run.id, data) for run in store.list_runs(statuses=["queued"])[::-1]]
