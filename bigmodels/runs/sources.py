"""Where a trained model's weights come from: the shipped files, or a run.

This is the one module that decides it (as timm decides pretrained sources in
one function): the sandbox and the comparison page offer every source in one
list, so a run trained in the launcher is usable there as soon as it has
written its first epoch's checkpoint -- while it still trains ("live": its
latest checkpoint, which the dispatcher replaces atomically after every epoch),
and for good once it succeeds. A run keeps one id (``run:<id>``) through both,
so a page's choice survives the run finishing; pages that cache by the
checkpoint file's size and time see each new epoch as a new model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from bigmodels.base.i18n import DEFAULT_LANGUAGE, translate
from bigmodels.models.checkpoints import model_from_checkpoint
from bigmodels.models.registry import list_models
from bigmodels.models.shipped import available, weights_path
from bigmodels.runs.store import RunStore, StoreError


@dataclass(frozen=True)
class ModelSource:
    id: str  # "shipped:cnn" or "run:<run id>"
    model_name: str  # registry name: cnn / lstm / transformer
    label: str  # what a person sees in a picker, in the language it was listed in
    checkpoint: Path
    origin: str  # "shipped", "run" (succeeded) or "live" (still training: its latest checkpoint)
    epoch: int | None = None  # a live run's epochs done (its checkpoint's)

    @property
    def run_id(self) -> str | None:
        return self.id.removeprefix("run:") if self.origin in ("run", "live") else None


def model_title(name: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """An architecture's display name in ``lang`` ("LeNet-5 CNN" / "LeNet-5 卷积网络")."""
    return translate(f"models.{name}.title", lang)


def shipped_source(name: str, lang: str = DEFAULT_LANGUAGE) -> ModelSource:
    label = translate("models.source.shipped", lang, title=model_title(name, lang))
    return ModelSource(f"shipped:{name}", name, label, weights_path(name), "shipped")


def run_source(run_id: str, name: str, accuracy: float | None, checkpoint: Path,
               lang: str = DEFAULT_LANGUAGE) -> ModelSource:
    label = translate("models.source.run", lang, title=model_title(name, lang), run=run_id,
                      accuracy="?" if accuracy is None else f"{accuracy:.2%}")
    return ModelSource(f"run:{run_id}", name, label, checkpoint, "run")


def live_source(run_id: str, name: str, epoch: int, accuracy: float | None, checkpoint: Path,
                lang: str = DEFAULT_LANGUAGE) -> ModelSource:
    label = translate("models.source.live", lang, title=model_title(name, lang), run=run_id, epoch=epoch,
                      accuracy="?" if accuracy is None else f"{accuracy:.2%}")
    return ModelSource(f"run:{run_id}", name, label, checkpoint, "live", epoch)


def shipped_sources(lang: str = DEFAULT_LANGUAGE) -> list[ModelSource]:
    return [shipped_source(name, lang) for name in available()]


def list_sources(lang: str = DEFAULT_LANGUAGE, home: str | os.PathLike | None = None) -> list[ModelSource]:
    """Every model a page can load, labelled in ``lang``: shipped weights first,
    then runs still training (their latest checkpoint), then finished runs
    (one store query for both: pages call this on every rerun)."""
    runs = _runs_with_checkpoints(home, ["running", "succeeded"])
    return (shipped_sources(lang) + _live([r for r in runs if r.status == "running"], lang)
            + _finished([r for r in runs if r.status == "succeeded"], lang))


def _runs_with_checkpoints(home, statuses: list[str]) -> list:
    try:
        runs = RunStore(home).list_runs(statuses=statuses)
    except StoreError:
        return []  # an unreadable store gives no sources (the launcher page shows why)
    return [run for run in runs if run.checkpoint and Path(run.checkpoint).is_file()
            and run.model in list_models()]  # not a model this version no longer has


def _finished(runs: list, lang: str) -> list[ModelSource]:
    return [run_source(run.id, run.model, run.final_accuracy, Path(run.checkpoint), lang) for run in runs]


def _live(runs: list, lang: str) -> list[ModelSource]:
    return [live_source(run.id, run.model, run.epoch, run.final_accuracy, Path(run.checkpoint), lang)
            for run in runs if run.epoch >= 1]  # a checkpoint before the first epoch's record is not shown


def finished_run_sources(home: str | os.PathLike | None = None, lang: str = DEFAULT_LANGUAGE) -> list[ModelSource]:
    """Every succeeded run whose checkpoint file exists (id ``run:<id>``)."""
    return _finished(_runs_with_checkpoints(home, ["succeeded"]), lang)


def live_run_sources(home: str | os.PathLike | None = None, lang: str = DEFAULT_LANGUAGE) -> list[ModelSource]:
    """Every running run that has finished at least one epoch: its latest checkpoint."""
    return _live(_runs_with_checkpoints(home, ["running"]), lang)


def load_model(source: ModelSource, device: str = "cpu") -> nn.Module:
    """The model in eval mode; raises ``CheckpointError`` for an unreadable file."""
    return model_from_checkpoint(source.checkpoint, device)
