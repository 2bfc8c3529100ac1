"""One model answering a batch of digits: what a replica runs, without Ray.

A replica loads its checkpoint once (``torch.load(weights_only=True)`` through
``bigmodels.models.checkpoints``) and answers batches: the digits stacked, the
same normalisation the models were trained on (``to_model_input``), one forward
pass, softmax.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from bigmodels.data.digits import to_model_input
from bigmodels.models.checkpoints import model_from_checkpoint


@dataclass(frozen=True)
class Prediction:
    label: int
    probabilities: list[float]


class Predictor:
    def __init__(self, checkpoint: str, device: str = "cpu", threads: int | None = 1):
        # one intra-op thread: batches here are small, and replicas share the cores with
        # each other and the gateway (more threads only spin against one another)
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = model_from_checkpoint(checkpoint, self.device)

    @torch.inference_mode()
    def predict(self, digits: list[torch.Tensor]) -> tuple[list[Prediction], float]:
        """Predictions for ``digits`` (each (28, 28)) and the batch's compute time in ms."""
        start = time.perf_counter()
        x = to_model_input(torch.stack(digits)).to(self.device)
        probabilities = torch.softmax(self.model(x).float(), 1).cpu()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = (time.perf_counter() - start) * 1000
        return [Prediction(int(p.argmax()), [round(float(v), 6) for v in p]) for p in probabilities], elapsed
