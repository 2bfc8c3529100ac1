"""What a foreground ``python -m bigmodels serve`` started stops when the command ends,
however it ends: Ctrl-C, SIGTERM, or SIGKILL (which no handler sees).

The command starts a small watcher first (``Guard``), in a session of its own so a
signal to the command's process group does not reach it, and tells it through a pipe
what it starts, as it starts it: the embedded Ray head (when this command started it),
Serve (when it was not running), each model it deploys. The watcher reads until the
pipe closes -- the kernel closes it when the command ends, in any way -- and then stops
exactly that: the head's whole process group (and with it Serve's controller, proxy,
gateway and replicas), or, on a cluster it only joined, the models it deployed and
Serve if it started it. ``--detach`` starts no watcher: the service stays up.
(The dispatcher does the same for the head it started: ``bigmodels.cluster.dispatcher``.)
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys

from bigmodels.base.child_process import child_env
from bigmodels.cluster import runtime
from bigmodels.serving import service
from bigmodels.serving.store import ServiceStore

STOP_WAIT_S = 60.0  # how long a command that ends by itself waits for the watcher's clean-up


class Guard:
    """The command's side: start the watcher, tell it what was started, let it go."""

    def __init__(self, home: str | None = None):
        cmd = [sys.executable, "-m", "bigmodels.serving.lifetime"] + (["--home", str(home)] if home else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     start_new_session=True, env=child_env())

    def note(self, **facts) -> None:
        """One fact, e.g. ``head_pid=``, ``serve=True``, ``deployed=`` (a model id)."""
        self.proc.stdin.write(json.dumps(facts) + "\n")
        self.proc.stdin.flush()

    def close(self, timeout_s: float = STOP_WAIT_S) -> None:
        """The command ends: the watcher stops what was started; wait for it a while."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass  # it goes on by itself


def stop_started(home: str | None, facts: dict) -> None:
    """Stop what the facts say the command started (the watcher's clean-up)."""
    deployed = facts.get("deployed", [])
    if facts.get("head_pid"):
        try:  # the usage the gateway metered last is written before its head goes
            runtime.connect(home)
            service.flush_usage(home, timeout_s=5)
            runtime.disconnect()
        except Exception:
            pass
        runtime.stop_embedded(home, int(facts["head_pid"]))  # its process group: everything Ray ran
        store = ServiceStore(home)
        for model_id in deployed:
            store.forget_deployment(model_id)
        return
    if not deployed and not facts.get("serve"):
        return
    runtime.connect(home)
    for model_id in deployed:
        service.undeploy(model_id, home)
    if facts.get("serve") and not ServiceStore(home).deployments():
        service.shutdown(home)


def watch(home: str | None, lines) -> dict:
    """Read facts until the pipe closes; then stop what they name. Returns the facts."""
    facts: dict = {"deployed": []}
    for line in lines:
        try:
            fact = json.loads(line)
        except ValueError:
            continue
        for name, value in fact.items():
            if name == "deployed":
                facts["deployed"].append(value)
            else:
                facts[name] = value
    stop_started(home, facts)
    return facts


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP):  # a Ctrl-C or a closed terminal: the pipe's end says it
        signal.signal(sig, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m bigmodels.serving.lifetime")
    parser.add_argument("--home")
    args = parser.parse_args(argv)
    watch(args.home, sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
