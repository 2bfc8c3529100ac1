"""Two hosts on one machine: a run trained on a second Ray node that cannot read the store.

The second node lives in its own network namespace (a veth pair with
addresses made here) and mount namespace (``BIGMODELS_HOME`` covered by an
empty tmpfs) -- see ``bigmodels.harness.nodes.TwoHosts``; without root or
namespaces it is a second ``ray start`` on this host, and the table says so.
Measured: the cluster up (head + node + dispatcher with a warm session on each
node), submit -> first step on the remote node's warm session, the run's
epochs and the bytes of checkpoint that travelled back per epoch.

    sudo python -m benchmarks.two_hosts [--epochs 2]

Prints a table and writes benchmarks/results/two_hosts.json (or --json).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bigmodels.base.child_process import PACKAGE_ROOT
from bigmodels.cluster import control
from bigmodels.cluster.runtime import ENV_RAY_ADDRESS
from bigmodels.data.mnist import ENV_DATA_DIR
from bigmodels.harness.nodes import NODE_RESOURCE, TwoHosts
from bigmodels.harness.waiting import wait_for
from bigmodels.base.provenance import provenance
from bigmodels.runs.queue import submit
from bigmodels.runs.store import RunStore
from bigmodels.train.config import default_config

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data-dir", help="MNIST folder (default $BIGMODELS_DATA_DIR)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "two_hosts.json"))
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bigmodels-two-hosts-"))
    store = RunStore(home)
    data_dir = args.data_dir or os.environ.get(ENV_DATA_DIR)
    result: dict = {}
    started = time.monotonic()
    with TwoHosts(hidden=home) as hosts:
        env = {**os.environ, ENV_RAY_ADDRESS: hosts.address, "PYTHONPATH": str(PACKAGE_ROOT)}
        proc = subprocess.Popen(control.dispatcher_command(home, data_dir, warm_models=["cnn"]), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            state = wait_for(lambda: (s := control.read_state(store)) and len(s["nodes"]) == 2 and
                             sum(x["state"] == "warm" for x in s["sessions"]) == 2 and s, 300, "two warm sessions")
            result["cluster_up_s"] = time.monotonic() - started
            second = next(n for n in state["nodes"] if NODE_RESOURCE in n["custom"])
            run = submit(store, default_config("cnn", epochs=args.epochs, seed=7), needs=NODE_RESOURCE).run
            wait_for(lambda: store.get(run.id).first_step_at, 120, "the first step")
            wait_for(lambda: store.get(run.id).status not in ("queued", "running"), 1800, "the run to end")
            done = store.get(run.id)
            if done.status != "succeeded":
                raise RuntimeError(f"the run {done.status}: {done.error}")
            epochs = store.epochs(run.id)
            result.update(isolated=hosts.isolated, why_not_isolated=hosts.why_not_isolated,
                          node_address=second["address"], run_id=run.id, session=done.session,
                          submit_to_first_step_s=done.launch_latency, epochs=epochs,
                          checkpoint_bytes=store.checkpoint_path(run.id).stat().st_size,
                          duration_s=done.duration())
        finally:
            proc.terminate()
            proc.wait(90)
    shutil.rmtree(home, ignore_errors=True)
    print(f"second node: {'own network + mount namespaces' if result['isolated'] else 'same host'} "
          f"at {result['node_address']}" + ("" if result["isolated"] else f" ({result['why_not_isolated']})"))
    print(f"{'cluster up (head, node, 2 warm sessions)':<44} {result['cluster_up_s']:>8.1f} s")
    print(f"{'submit -> first step on the remote session':<44} {result['submit_to_first_step_s']:>8.3f} s")
    for e in result["epochs"]:
        print(f"{'epoch ' + str(e['epoch']) + ' on the remote node':<44} {e['samples_per_second']:>8,.0f} samples/s, "
              f"test accuracy {e['test_accuracy']:.2%}")
    print(f"{'checkpoint streamed back per epoch':<44} {result['checkpoint_bytes'] / 2**20:>8.2f} MiB")
    result.update(provenance("cpu"))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
