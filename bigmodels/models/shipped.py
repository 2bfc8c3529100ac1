"""The weights that ship inside the package, and their measured metrics.

``bigmodels/weights/<model>.pt`` are slim checkpoints (no optimizer state)
trained with this project's own CLI on the full MNIST; ``metrics.json`` holds
what ``python -m bigmodels eval`` measured on them, with the device and date.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bigmodels.models.checkpoints import CheckpointError, atomic_write_bytes
from bigmodels.models.registry import list_models

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
METRICS_PATH = WEIGHTS_DIR / "metrics.json"


def weights_path(model: str) -> Path:
    return WEIGHTS_DIR / f"{model}.pt"


def available() -> list[str]:
    return [m for m in list_models() if weights_path(m).is_file()]


def load_metrics(path: str | Path = METRICS_PATH) -> dict[str, Any]:
    """Measured metrics per model name ({} when none were written yet)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable metrics file ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected an object keyed by model name")
    return data


def update_metrics(model: str, entry: dict[str, Any], path: str | Path = METRICS_PATH) -> None:
    data = load_metrics(path)
    data[model] = entry
    atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
