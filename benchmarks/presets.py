"""Quick-demo presets: time to the end of the run and test accuracy, per
architecture, on full MNIST and on the 4,000-digit sample.

    BIGMODELS_DATA_DIR=../shared/mnist python -m benchmarks.presets [--repeats 3] [--models cnn lstm]
    python -m benchmarks.presets --data sample --try '{"lstm": {"epochs": 10}}' --no-write   # tuning

Each preset (``bigmodels.train.config.QUICK_DEMOS``) is trained through the
project's engine as a warm worker trains it: the data already resident on the
device (its training subset made before the clock starts), the architecture's
kernels run once. The clock starts when ``train()`` is called and stops when it
returns (every epoch's test pass included). Repeats use seeds 0, 1, ...; the
table gives medians. The targets: >= 98% on full MNIST and >= 93% on the sample,
within 15 s on this project's 2-core CPU.

Writes benchmarks/results/presets.json, which the launcher reads to show each
preset's expected time and accuracy (with where and when it was measured).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from bigmodels.data.mnist import DeviceMNIST, load_folder, load_sample, resolve_data_dir
from bigmodels.models.registry import create_model, list_models
from bigmodels.base.provenance import provenance
from bigmodels.train.config import DEMO_DATA, DEMO_SECONDS, DEMO_TARGETS, QUICK_DEMOS, quick_demo
from bigmodels.train.engine import train

RESULTS = Path(__file__).resolve().parent / "results" / "presets.json"


def warm_up(model: str, data: DeviceMNIST) -> None:
    """One step of ``model``: what a warm worker session has done before any run."""
    train(quick_demo(model, "sample", epochs=1, train_subset=64, batch_size=64, device="cpu"), data)


def measure(config, mnist) -> dict:
    data = DeviceMNIST(mnist, "cpu", train_subset=config.train_subset, subset_seed=config.seed)
    start = time.perf_counter()
    result = train(config, data)
    seconds = time.perf_counter() - start
    return {"seed": config.seed, "seconds": seconds, "accuracy": result.history[-1]["test_accuracy"],
            "epochs": [{"epoch": r["epoch"], "elapsed": r["elapsed"], "test_accuracy": r["test_accuracy"]}
                       for r in result.history]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per preset (seeds 0, 1, ...)")
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--data", nargs="+", default=list(DEMO_DATA), choices=DEMO_DATA)
    parser.add_argument("--try", dest="changes", default="{}",
                        help='JSON {"model": {setting: value}} on top of the presets, for tuning')
    parser.add_argument("--no-write", action="store_true", help="print only (tuning)")
    parser.add_argument("--note", default="", help="recorded with the results, e.g. 'machine shared with 2 others'")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    changes = json.loads(args.changes)

    sources = {"sample": load_sample}
    folder = resolve_data_dir()
    if folder is not None:
        sources["full"] = lambda: load_folder(folder)
    elif "full" in args.data:
        print("full MNIST: set BIGMODELS_DATA_DIR; measuring the sample only", file=sys.stderr)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}")

    results = json.loads(Path(args.out).read_text()).get("presets", {}) if Path(args.out).is_file() else {}
    loads = []
    for kind in [d for d in args.data if d in sources]:
        mnist = sources[kind]()
        warm = DeviceMNIST(mnist, "cpu", train_subset=64)
        for model in args.models:
            config = quick_demo(model, kind, device="cpu", **changes.get(model, {}))
            warm_up(model, warm)
            runs = []
            for seed in range(args.repeats):
                loads.append(os.getloadavg()[0])
                runs.append(measure(config.__class__(**{**vars(config), "seed": seed}), mnist))
                print(f"  {kind:<6} {model:<12} seed {seed}: {runs[-1]['accuracy']:.2%} in "
                      f"{runs[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
            seconds = statistics.median(r["seconds"] for r in runs)
            accuracy = statistics.median(r["accuracy"] for r in runs)
            results.setdefault(kind, {})[model] = {
                "settings": {**QUICK_DEMOS[kind][model], **changes.get(model, {})}, "config": config.to_dict(),
                "median_seconds": seconds, "median_accuracy": accuracy, "runs": runs,
                "train_size": len(mnist.train_labels) if config.train_subset is None
                else min(config.train_subset, len(mnist.train_labels)), "data": mnist.describe(),
                "meets_target": accuracy >= DEMO_TARGETS[kind] and seconds <= DEMO_SECONDS}
    print(f"\n{'data':<7} {'model':<12} {'median s':>9} {'median acc':>11} {'target':>8}  ok   settings")
    for kind, rows in results.items():
        for model, row in rows.items():
            print(f"{kind:<7} {model:<12} {row['median_seconds']:>9.1f} {row['median_accuracy']:>11.2%} "
                  f"{DEMO_TARGETS[kind]:>8.0%}  {'yes' if row['meets_target'] else 'NO ':<4} {row['settings']}")
    if args.no_write:
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"presets": results, "target_seconds": DEMO_SECONDS, "targets": DEMO_TARGETS,
                               "repeats": args.repeats, "note": args.note,
                               "load_average_1min": statistics.median(loads) if loads else None,
                               "threads": torch.get_num_threads(), **provenance("cpu")}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
