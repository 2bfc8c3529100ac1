"""Where a trained model's weights come from: the shipped files, or a finished run.

This is the one module that decides it (as timm decides pretrained sources in
one function): the sandbox and the comparison page offer every source in one
list, so a run trained in the launcher is usable there as soon as it finishes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

import os

from bigmodels.i18n import DEFAULT_LANGUAGE, translate
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
    origin: str  # "shipped" or "run"


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


def shipped_sources(lang: str = DEFAULT_LANGUAGE) -> list[ModelSource]:
    return [shipped_source(name, lang) for name in available()]


def list_sources(lang: str = DEFAULT_LANGUAGE) -> list[ModelSource]:
    """Every model a page can load, labelled in ``lang``: shipped weights first, then finished runs."""
    return shipped_sources(lang) + finished_run_sources(lang=lang)


def finished_run_sources(home: str | os.PathLike | None = None, lang: str = DEFAULT_LANGUAGE) -> list[ModelSource]:
    """Every succeeded run whose checkpoint file exists (id ``run:<id>``). An
    unreadable store gives no sources (the launcher page shows why)."""
    try:
        runs = RunStore(home).list_runs(statuses=["succeeded"])
    except StoreError:
        return []
    return [run_source(run.id, run.model, run.final_accuracy, Path(run.checkpoint), lang) for run in runs
            if run.checkpoint and Path(run.checkpoint).is_file()
            and run.model in list_models()]  # not a model this version no longer has


def load_model(source: ModelSource, device: str = "cpu") -> nn.Module:
    """The model in eval mode; raises ``CheckpointError`` for an unreadable file."""
    return model_from_checkpoint(source.checkpoint, device)
