"""Sandbox latency: from a canvas image to the three models' answers (and why).

What the sandbox page does on every change, timed end to end on MNIST test
digits drawn the way the canvas returns a drawing (a 280x280 PNG, black pen
strokes on white):

* predictions:  decode the canvas PNG -> MNIST-style preprocessing -> the CNN,
  the LSTM and the Transformer each answer (LATENCY_REPEATS timed forward
  passes each, as the page does to show a median latency);
* explained:    the same, plus Grad-CAM, saliency and first-layer maps (CNN),
  row-by-row beliefs (LSTM), attention + rollout (Transformer), and the heat
  map pictures the page shows;
* FGSM attack:  explained, with an FGSM attack against each model first.

Models are loaded once (the page caches them per server) and torch runs on one
thread, as the page does (see ``bigmodels.app.models.one_thread``).

    BIGMODELS_DATA_DIR=../shared/mnist python -m benchmarks.sandbox_latency [--digits 200]

Prints a table and writes benchmarks/results/sandbox_latency.json (or --json).
Targets (CPU): predictions <= 25 ms median, explained <= 150 ms median.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bigmodels.analysis.explain import (
    LATENCY_REPEATS, CNNExplanation, TransformerExplanation, read_digit,
)
from bigmodels.app.sandbox import ARCHITECTURES
from bigmodels.figures.pictures import digit_picture, heat_picture, maps_picture
from bigmodels.data.digits import mnist_style
from bigmodels.data.mnist import load_mnist
from bigmodels.models.checkpoints import model_from_checkpoint
from bigmodels.models.shipped import weights_path
from bigmodels.base.provenance import provenance

ROOT = Path(__file__).resolve().parent.parent

TARGETS_MS = {"predictions": 25.0, "explained": 150.0}
CANVAS = 280


def canvas_png(digit: torch.Tensor, size: int = 200) -> bytes:
    """An MNIST digit as the canvas exports a drawing: opaque RGBA PNG, black
    strokes (hard-edged, as a pen) on white."""
    x = F.interpolate(digit.float()[None, None] / 255, size=(size, size), mode="bilinear", align_corners=False)
    ink = (x[0, 0] > 0.5).numpy()
    rgba = np.full((CANVAS, CANVAS, 4), 255, np.uint8)
    top = (CANVAS - size) // 2
    rgba[top:top + size, top:top + size, :3][ink] = 0
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def pictures(reading) -> None:
    """The heat-map pictures the page draws for one reading."""
    e = reading.explanation
    digit_picture(reading.pixels)
    if isinstance(e, CNNExplanation):
        heat_picture(e.grad_cam, reading.pixels)
        heat_picture(e.saliency, reading.pixels)
        maps_picture(e.feature_maps)
    elif isinstance(e, TransformerExplanation):
        heat_picture(e.on_pixels(e.rollout), reading.pixels)
        heat_picture(e.on_pixels(e.last_layer), reading.pixels)


def one_pass(png: bytes, models: dict, explained: bool, epsilon: float,
             stages: dict[str, list[float]]) -> tuple[float, list[int]]:
    """One page update; returns its total ms and the answers, and adds each
    stage's ms to ``stages``."""
    clock = time.perf_counter
    start = clock()
    image = np.asarray(Image.open(io.BytesIO(png)))  # what st_canvas's image_data does
    t_decoded = clock()
    pixels = mnist_style(image)
    t_prepared = clock()
    stages.setdefault("decode PNG", []).append((t_decoded - start) * 1000)
    stages.setdefault("preprocess", []).append((t_prepared - t_decoded) * 1000)
    answers = []
    for name, model in models.items():
        t0 = clock()
        reading = read_digit(model, pixels, epsilon, with_explanation=explained)
        if explained:
            pictures(reading)
        stages.setdefault(name, []).append((clock() - t0) * 1000)
        answers.append(reading.answer.predicted)
    return (clock() - start) * 1000, answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=200, help="test digits per case")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the page uses 1)")
    parser.add_argument("--epsilon", type=float, default=0.1, help="FGSM step for the attack case")
    parser.add_argument("--data-dir", help="MNIST folder (default $BIGMODELS_DATA_DIR)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "sandbox_latency.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    missing = [name for name in ARCHITECTURES if not weights_path(name).is_file()]
    if missing:
        print(f"missing shipped weights: {', '.join(missing)}", file=sys.stderr)
        return 2
    models = {name: model_from_checkpoint(weights_path(name)) for name in ARCHITECTURES}
    data = load_mnist(args.data_dir)
    digits = data.test_images[:args.digits]
    labels = data.test_labels[:args.digits].tolist()
    pngs = [canvas_png(d) for d in digits]

    cases = [("predictions", False, 0.0), ("explained", True, 0.0), ("FGSM attack", True, args.epsilon)]
    rows = []
    for case, explained, epsilon in cases:
        for png in pngs[:10]:  # warm-up: first calls pay one-off allocations
            one_pass(png, models, explained, epsilon, {})
        times, correct, stages = [], [0] * len(models), {}
        for png, label in zip(pngs, labels):
            ms, answers = one_pass(png, models, explained, epsilon, stages)
            times.append(ms)
            correct = [c + (a == label) for c, a in zip(correct, answers)]
        rows.append({
            "case": case, "median_ms": statistics.median(times), "p90_ms": statistics.quantiles(times, n=10)[-1],
            "mean_ms": statistics.fmean(times), "target_ms": TARGETS_MS.get(case),
            "epsilon": epsilon, "digits": len(times),
            "accuracy": {name: c / len(times) for name, c in zip(models, correct)},
            "stages_median_ms": {stage: statistics.median(v) for stage, v in stages.items()},
        })

    print(f"canvas PNG ({CANVAS}x{CANVAS}) -> all three models, {args.digits} MNIST test digits, "
          f"torch threads {args.threads}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'case':<13} {'median ms':>10} {'p90 ms':>8} {'target':>8}   accuracy cnn / lstm / transformer")
    ok = True
    for row in rows:
        target = row["target_ms"]
        verdict = "" if target is None else ("  ok" if row["median_ms"] <= target else "  MISSES")
        ok &= target is None or row["median_ms"] <= target
        acc = " / ".join(f"{a:.1%}" for a in row["accuracy"].values())
        print(f"{row['case']:<13} {row['median_ms']:>10.1f} {row['p90_ms']:>8.1f} "
              f"{'' if target is None else f'{target:.0f}':>8}{verdict:<8} {acc}")

    stage_names = list(rows[0]["stages_median_ms"])
    print("\nmedian ms per stage (a model's stage: its answer with " f"{LATENCY_REPEATS} timed passes, "
          "+ explanation and pictures where asked)")
    print(f"{'case':<13} " + " ".join(f"{name:>11}" for name in stage_names))
    for row in rows:
        print(f"{row['case']:<13} " + " ".join(f"{row['stages_median_ms'][n]:>11.2f}" for n in stage_names))

    result = {"rows": rows, "targets_ms": TARGETS_MS, "threads": args.threads, "latency_repeats": LATENCY_REPEATS,
              "canvas": CANVAS, "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
              "data": data.describe(), **provenance("cpu")}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
