"""Putting a run in the queue: plan it, then record it.

``submit`` is how the launcher form, the CLI and the benchmarks queue a run:
the launch plan (``bigmodels.train.plan``) checks it against this server's
devices and says where it runs; the store (``bigmodels.runs.store``) only
records what the plan decided.
"""
from __future__ import annotations

from bigmodels.runs.store import RunStore, Submission
from bigmodels.train.config import TrainConfig
from bigmodels.train.plan import Plan, Resources, plan


def submit(store: RunStore, config: TrainConfig | Plan, world_size: int = 1, train_again: bool = False,
           submission: str | None = None, target: str | None = None,
           resources: Resources | None = None, needs: str | None = None,
           tags: list[str] | tuple[str, ...] = ()) -> Submission:
    """Queue ``config`` on ``world_size`` processes, or return the run that already
    computed it (unless ``train_again``). Raises ``ConfigError`` with every
    problem when the plan refuses it; nothing is queued then. A ``Plan`` (the
    form's, already checked) is queued as planned.

    ``target`` overrides the planned device. ``needs``: a custom resource the
    run's node must offer (see ``RunStore.add_run``).

    ``tags`` are added to the run's own (a run reused from before keeps its tags
    and gains these: one run can be a point of several sweeps).
    """
    planned = config if isinstance(config, Plan) else plan(config, resources, world_size=world_size)
    config = planned.config
    queued = store.add_run(config.model, config.to_dict(), config.hash(), target or planned.target,
                           planned.world_size, reuse_succeeded=not train_again, submission=submission,
                           needs=needs, memory_need=planned.memory_need)
    if tags and not set(tags) <= set(queued.run.tags):
        run = queued.run
        queued = Submission(store.set_info(run.id, run.name, [*run.tags, *tags], run.note), queued.cached)
    return queued

