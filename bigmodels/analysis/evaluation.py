"""Measure a trained model: accuracy in detail, and how fast it answers."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from bigmodels.data.mnist import MNIST, DeviceMNIST, normalize
from bigmodels.models.nets import NUM_CLASSES


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
