"""Measure a trained model: accuracy in detail, and how fast it answers.

``metrics_entry`` is the one record of a checkpoint's measurements: what
``python -m bigmodels eval`` writes to ``bigmodels/weights/metrics.json`` and
what the comparison page stores for the models it evaluates itself.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bigmodels.data.mnist import MNIST, DeviceMNIST, normalize
from bigmodels.models.nets import NUM_CLASSES
from bigmodels.models.profile import profile_model
from bigmodels.base.provenance import provenance


@dataclass
class Evaluation:
    accuracy: float
    per_class_accuracy: list[float]
    confusion: list[list[int]]  # confusion[true][predicted]
    misclassified: list[int]  # indices into the test split
    predictions: list[int]
    confidences: list[float]  # softmax probability of the predicted class
    latency_ms_batch1: float | None = None  # median over repeated single-image calls
    throughput_batch256: float | None = None  # images per second
    timing_detail: dict = field(default_factory=dict)

    def to_dict(self, with_predictions: bool = False) -> dict:
        d = {
            "accuracy": self.accuracy, "per_class_accuracy": self.per_class_accuracy,
            "confusion": self.confusion, "misclassified": self.misclassified,
            "latency_ms_batch1": self.latency_ms_batch1, "throughput_batch256": self.throughput_batch256,
            **self.timing_detail,
        }
        if with_predictions:
            d |= {"predictions": self.predictions, "confidences": self.confidences}
        return d


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, classes: int = NUM_CLASSES) -> torch.Tensor:
    """confusion[t, p] = number of images of class t predicted as p."""
    flat = labels.to(torch.int64) * classes + predictions.to(torch.int64)
    return torch.bincount(flat.cpu(), minlength=classes * classes).reshape(classes, classes)


def per_class_accuracy(confusion: torch.Tensor) -> list[float]:
    totals = confusion.sum(1).clamp(min=1)
    return (confusion.diagonal() / totals).tolist()


@torch.no_grad()
def predict(model: nn.Module, images_uint8: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Softmax probabilities (N, 10) for uint8 images (N, 28, 28)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images_uint8), batch_size):
        x = normalize(images_uint8[start:start + batch_size].to(device))
        out.append(torch.softmax(model(x).float(), 1).cpu())
    return torch.cat(out) if out else torch.empty(0, NUM_CLASSES)


@torch.no_grad()
def measure_speed(model: nn.Module, repeats: int = 50, batch: int = 256, warmup: int = 5) -> dict:
    """Median batch-1 latency (ms) and batch-256 throughput (images/s) on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    one = torch.zeros(1, 1, 28, 28, device=device)
    many = torch.zeros(batch, 1, 28, 28, device=device)
    for _ in range(warmup):
        model(one), model(many)
    sync()
    latencies = []
    for _ in range(repeats):
        t = time.perf_counter()
        model(one)
        sync()
        latencies.append((time.perf_counter() - t) * 1000)
    runs = max(3, repeats // 10)
    t = time.perf_counter()
    for _ in range(runs):
        model(many)
    sync()
    seconds = time.perf_counter() - t
    return {
        "latency_ms_batch1": statistics.median(latencies),
        "latency_ms_batch1_p90": statistics.quantiles(latencies, n=10)[-1],
        "throughput_batch256": batch * runs / seconds,
    }


def evaluate(model: nn.Module, data: MNIST | DeviceMNIST, timing: bool = True, timing_repeats: int = 50) -> Evaluation:
    """Accuracy, per-class accuracy, confusion matrix and mistakes on the test split;
    with ``timing``, also batch-1 latency and batch-256 throughput."""
    images = data.test_x if isinstance(data, DeviceMNIST) else data.test_images
    labels = (data.test_y if isinstance(data, DeviceMNIST) else data.test_labels).cpu()
    probs = predict(model, images)
    confidence, predicted = probs.max(1)
    conf = confusion_matrix(labels, predicted)
    wrong = torch.nonzero(predicted != labels).flatten().tolist()
    result = Evaluation(
        accuracy=int((predicted == labels).sum()) / len(labels) if len(labels) else 0.0,  # exact ratio
        per_class_accuracy=per_class_accuracy(conf),
        confusion=conf.tolist(),
        misclassified=wrong,
        predictions=predicted.tolist(),
        confidences=confidence.tolist(),
    )
    if timing:
        speed = measure_speed(model, repeats=timing_repeats)
        result.latency_ms_batch1 = speed.pop("latency_ms_batch1")
        result.throughput_batch256 = speed.pop("throughput_batch256")
        result.timing_detail = speed
    return result


# ------------------------------------------------------------- the record
def plain_json(value: Any) -> Any:
    """JSON's view of a value (tuples become lists), for comparing checkpoint
    contents with what was written to metrics.json."""
    return json.loads(json.dumps(value, default=str))


def split_fingerprint(data: MNIST) -> str:
    """Identifies the test split (images and labels), so predictions made on one
    test set are never shown against the images of another."""
    digest = hashlib.sha256(data.test_images.numpy().tobytes())
    digest.update(data.test_labels.numpy().tobytes())
    return f"{data.source}-{len(data.test_labels)}-{digest.hexdigest()[:12]}"


def metrics_entry(checkpoint: str | os.PathLike, payload: dict[str, Any], model: nn.Module, data: MNIST,
                  timing: bool = True, timing_repeats: int = 50,
                  history: list[dict] | None = None) -> dict[str, Any]:
    """Everything measured about one checkpoint (its loaded ``payload`` and
    ``model``) on ``data``'s test split: accuracy in detail with every
    prediction, costs, training history (the checkpoint's own unless given),
    and where and when it was measured."""
    result = evaluate(model, data, timing=timing, timing_repeats=timing_repeats)
    profile = profile_model(model)
    history = list(payload.get("history") or []) if history is None else history
    return {
        "model": payload["model_name"],
        "model_config": plain_json(payload["model_config"]),
        "checkpoint": str(checkpoint),
        "data": data.describe(),
        "data_source": data.source,
        "test_set": split_fingerprint(data),
        **result.to_dict(with_predictions=True),
        "parameters": profile.parameters,
        "macs_per_image": profile.macs_per_image,
        "disk_bytes": Path(checkpoint).stat().st_size,
        "state_dict_bytes": profile.disk_bytes,
        "history": plain_json(history),
        "train_seconds_per_epoch": (history[-1]["elapsed"] / len(history)) if history else None,
        "train_config": plain_json(payload.get("train_config")),
        "train_command": payload.get("command"),
        "train_provenance": plain_json(payload.get("provenance")),
        **provenance("cpu"),
    }
