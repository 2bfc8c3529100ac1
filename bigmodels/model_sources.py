"""Where a trained model can come from: the shipped weights, or a finished run.

The sandbox and the comparison page offer every source in one list, so a run
trained in the launcher is usable there as soon as it finishes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from bigmodels.checkpoints import model_from_checkpoint
from bigmodels.registry import get_spec
from bigmodels.shipped import available, weights_path


@dataclass(frozen=True)
class ModelSource:
    id: str  # "shipped:cnn" or "run:<run id>"
    model_name: str  # registry name: cnn / lstm / transformer
    label: str  # what a person sees in a picker
    checkpoint: Path
    origin: str  # "shipped" or "run"


def shipped_sources() -> list[ModelSource]:
    return [ModelSource(f"shipped:{name}", name, f"{get_spec(name).title} (shipped)", weights_path(name), "shipped")
            for name in available()]


def list_sources() -> list[ModelSource]:
    """Every model a page can load: shipped weights first, then finished runs."""
    sources = shipped_sources()
    try:
        from bigmodels.runs import finished_run_sources  # the launcher's run store (issue 3)
    except ImportError:
        return sources
    return sources + finished_run_sources()


def load_model(source: ModelSource, device: str = "cpu") -> nn.Module:
    """The model in eval mode; raises ``CheckpointError`` for an unreadable file."""
    return model_from_checkpoint(source.checkpoint, device)
