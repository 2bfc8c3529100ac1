"""Training speed: time to 99% test accuracy for the CNN recipe, and seconds per
epoch and accuracy for all three architectures.

    BIGMODELS_DATA_DIR=../shared/mnist python -m benchmarks.train_speed [--seeds 0 1 2] [--full]

The clock starts when ``train()`` is called with MNIST already loaded (and, on a
GPU, already resident on the device) and stops at the end of the evaluation
that first reaches 99% -- evaluation time included. On a GPU the recipe runs
with bf16 autocast. Prints a table and writes benchmarks/results/train_speed.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bigmodels.data.mnist import DeviceMNIST, load_mnist
from bigmodels.base.provenance import provenance
from bigmodels.base.devices import describe_device
from bigmodels.train.plan import Resources, resolve_device
from bigmodels.train.config import default_config
from bigmodels.train.engine import train

TARGET = 0.99


def run(config, data) -> dict:
    """Train once; return per-epoch records and the first time accuracy reached TARGET."""
    reached = None
    t0 = time.perf_counter()

    def on_event(event):
        nonlocal reached
        if event.kind == "epoch" and reached is None and event.data["test_accuracy"] >= TARGET:
            reached = time.perf_counter() - t0

    result = train(config, data, on_event=on_event)
    total = time.perf_counter() - t0
    return {"history": result.history, "time_to_target_s": reached, "total_s": total,
            "final_accuracy": result.history[-1]["test_accuracy"],
            "seconds_per_epoch": total / len(result.history)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="CNN time-to-99%% repeats")
    parser.add_argument("--full", action="store_true", help="run the LSTM and Transformer recipes to the end "
                                                            "(default: their first epoch only)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_speed.json"))
    args = parser.parse_args()

    found = resolve_device(args.device, Resources.local())
    if found is None:
        raise SystemExit(f"error: no device {args.device} here")
    device = torch.device(found)
    precision = "bf16" if device.type == "cuda" else "fp32"
    data = DeviceMNIST(load_mnist(), device)  # resident on the device before the clock starts
    print(f"device: {describe_device(device)}; precision {precision}; torch {torch.__version__}; "
          f"{torch.get_num_threads()} threads")

    cnn_runs = []
    for seed in args.seeds:
        config = default_config("cnn", seed=seed, device=str(device), precision=precision)
        cnn_runs.append(run(config, data))
        r = cnn_runs[-1]
        print(f"  cnn seed {seed}: {r['final_accuracy']:.2%} after {len(r['history'])} epochs, "
              f"99% at {r['time_to_target_s'] and round(r['time_to_target_s'], 1)} s")

    rows = {"cnn": {
        "epochs": len(cnn_runs[0]["history"]),
        "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in cnn_runs),
        "accuracy": statistics.median(r["final_accuracy"] for r in cnn_runs),
        "time_to_99_s": [r["time_to_target_s"] for r in cnn_runs],
    }}
    for name in ("lstm", "transformer"):
        changes = {} if args.full else {"epochs": 1}
        config = default_config(name, seed=0, device=str(device), precision=precision, **changes)
        r = run(config, data)
        rows[name] = {"epochs": len(r["history"]), "seconds_per_epoch": r["seconds_per_epoch"],
                      "accuracy": r["final_accuracy"], "time_to_99_s": [r["time_to_target_s"]]}

    print(f"\n{'model':<12} {'epochs':>6} {'s/epoch':>8} {'accuracy':>9} {'time to 99% (s)':>22}")
    for name, row in rows.items():
        times = ", ".join("-" if t is None else f"{t:.1f}" for t in row["time_to_99_s"])
        print(f"{name:<12} {row['epochs']:>6} {row['seconds_per_epoch']:>8.1f} {row['accuracy']:>9.2%} {times:>22}")
    hits = [t for t in rows["cnn"]["time_to_99_s"] if t is not None]
    if hits:
        print(f"\nCNN median time to 99%: {statistics.median(hits):.1f} s "
              f"({len(hits)}/{len(args.seeds)} seeds reached it)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "cnn_runs": cnn_runs, "precision": precision,
                               **provenance(str(device))}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
