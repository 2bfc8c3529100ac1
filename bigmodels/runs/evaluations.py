"""A run's checkpoint scored on the test split: confusion matrix and per-class
accuracy, cached by the checkpoint's fingerprint.

The launcher asks for any run's evaluation; the work (load the weights, predict
the 10,000 test digits) runs in a background thread, and its result is kept as
``<home>/evaluations/<fingerprint>.json``. The fingerprint is a hash of the
checkpoint file's bytes, so a run that trains on (and rewrites its checkpoint
every epoch) gets a fresh evaluation, and an unchanged file is never scored twice.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from bigmodels.analysis.evaluation import evaluate
from bigmodels.data.mnist import MNIST, load_mnist
from bigmodels.models.checkpoints import atomic_write_bytes, checkpoint_digest, model_from_checkpoint

EVALUATIONS_DIR = "evaluations"


def evaluation_path(home: str | os.PathLike, checkpoint_fingerprint: str) -> Path:
    return Path(home) / EVALUATIONS_DIR / f"{checkpoint_fingerprint}.json"


def cached_evaluation(home: str | os.PathLike, checkpoint_fingerprint: str) -> dict[str, Any] | None:
    path = evaluation_path(home, checkpoint_fingerprint)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=2)
def _test_data(data_dir: str | None) -> MNIST:
    return load_mnist(data_dir)  # the data this server's device sessions train on


def evaluate_checkpoint(home: str | os.PathLike, checkpoint: str | os.PathLike, data_dir: str | None = None
                        ) -> dict[str, Any]:
    """Score ``checkpoint`` on the test split and cache the result under ``home``.
    Raises CheckpointError / DataError with a message when it cannot."""
    key = checkpoint_digest(checkpoint)
    found = cached_evaluation(home, key)
    if found is not None:
        return found
    data = _test_data(data_dir)
    result = evaluate(model_from_checkpoint(checkpoint), data, timing=False)
    record = {"fingerprint": key, "accuracy": result.accuracy, "per_class_accuracy": result.per_class_accuracy,
              "confusion": result.confusion, "test_images": len(data.test_labels), "data": data.describe()}
    path = evaluation_path(home, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(record).encode())
    return record
