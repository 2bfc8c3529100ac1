"""The model service's throughput and latency, all in one run, side by side.

1. The ceiling: a no-op Ray Serve deployment behind the same HTTP proxy (no
   gateway, no model), both as a plain deployment and as a FastAPI ingress (the
   gateway's shape) -- the faster of the two is the ceiling.
2. The CNN through the whole service (gateway: key check, rate limit, JSON
   parse; then the model's replicas), one image per request, at:
   batch 1 (``max_batch_size=1``), dynamic batching, and batching with 2 replicas.
3. Batch requests (32 images per request) with batching: images/s.

4. One request at a time (concurrency 1) at batch 1 and with batching: the p50
   a lone client sees end to end.

Each case is driven to saturation by the load generator on loopback (offered
well above what is served, a fixed number in flight), after a warm-up. The
clients run on the same cores as the service, as a demo on one machine does.

All of it once per Ray Serve mode (``bigmodels.serving.settings.SERVE_MODES``:
today's standard setting, the throughput-optimized one, and that one with
HAProxy in place of Serve's Python proxy), side by side in one run: each mode in
a child process of its own (Serve reads its mode at ``import ray``) with its own
Ray head, run in a network namespace with loopback only when this runs as root
(HAProxy's stats and metrics ports bind every interface; a mode that needs the
namespace and cannot have it is reported, not run). Where a mode gives the
gateway's replica a port of its own (direct ingress), the CNN cases are also
measured straight to it, past Serve's proxy.

    python -m benchmarks.serve_throughput               # CPU, every mode
    python -m benchmarks.serve_throughput --modes standard throughput
    python -m benchmarks.serve_throughput --device cuda

Targets (issues 14, 25): the CNN with batching reaches >= 70% of the no-op ceiling,
batching raises throughput >= 3x over batch 1 at an equal or better p99, and one
request alone is answered in 5 ms (p50, end to end).
Each case also reports the whole machine's CPU per answered request (client
included), which shows what batching can and cannot share. Prints a table and writes benchmarks/results/serve_throughput.json (or --json).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bigmodels.cluster import runtime  # before ray: it sets Ray's environment
from bigmodels.data.digits import from_uint8
from bigmodels.data.mnist import load_mnist
from bigmodels.harness.server import free_port
from bigmodels.runs.sources import shipped_source
from bigmodels.base.provenance import provenance
from bigmodels.serving import client, service
from bigmodels.serving.loadgen import LoadPlan, run_load
from bigmodels.serving.settings import DEFAULT_SERVE_MODE, SERVE_MODES, DeploySettings
from bigmodels.serving.store import ServiceStore
from benchmarks.noop_ingress import NoOpIngress
from ray import serve

ROOT = Path(__file__).resolve().parent.parent
NOOP_APP = "bigmodels-bench-noop"
CEILING_SHARE_TARGET = 0.70
BATCHING_GAIN_TARGET = 3.0
ONE_REQUEST_P50_TARGET_MS = 5.0
ONE_AT_A_TIME_S = 5.0  # measured seconds of the concurrency-1 cases
HAPROXY_SWITCH = "RAY_SERVE_ENABLE_HA_PROXY"


@serve.deployment(num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.25})
class NoOp:
    async def __call__(self, request) -> dict:
        await request.body()  # read what was sent, as the gateway does
        return {"ok": True}


def busy_jiffies() -> int:
    """Every core's busy time so far (user + nice + system + irq + softirq), in clock ticks."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6]


def forward_ms(batch: int) -> float:
    """The CNN's forward pass in this process on one thread, as a replica runs it (median of 50)."""
    import statistics

    import torch
    from bigmodels.models.checkpoints import model_from_checkpoint
    from bigmodels.models.shipped import weights_path

    torch.set_num_threads(1)
    model = model_from_checkpoint(weights_path("cnn")).eval()
    x = torch.rand(batch, 1, 28, 28)
    times = []
    with torch.inference_mode():
        for i in range(60):
            t = time.perf_counter()
            model(x)
            if i >= 10:
                times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)



def drive(url: str, key: str, body: bytes, seconds: float, concurrency: int, images: int = 1) -> dict:
    run_load(LoadPlan(url, key, body, rate=500, duration_s=2, concurrency=concurrency, images_per_request=images))
    before = busy_jiffies()
    report = run_load(LoadPlan(url, key, body, rate=2000, duration_s=seconds, concurrency=concurrency,
                               images_per_request=images))
    busy_ms = (busy_jiffies() - before) * 1000 / os.sysconf("SC_CLK_TCK")
    # the whole machine's CPU per answered request: client, Serve's proxy, gateway, replicas
    return {**report.summary(), "cpu_ms_per_request": busy_ms / report.ok if report.ok else None}


def measure_mode(args) -> dict:
    """Every case in this process's Serve mode (set in its environment by ``main``)."""
    data = load_mnist(args.data_dir)
    one = client.pixels_json(from_uint8(data.test_images[0]))
    batch = client.pixels_json(from_uint8(data.test_images[:32]))
    home = Path(tempfile.mkdtemp(prefix="bigmodels-serve-bench-"))
    cluster = runtime.start_embedded(home)
    rows = []

    def row(case: str, route: str, url: str, body: bytes, concurrency: int, images: int = 1, **more) -> None:
        seconds = args.seconds if concurrency > 1 else min(args.seconds, ONE_AT_A_TIME_S)
        rows.append({"mode": args.one_mode, "case": case, "route": route, "images": images,
                     "concurrency": concurrency, **more, **drive(url, key, body, seconds, concurrency, images)})

    try:
        base = service.start(home, free_port())
        _, key = ServiceStore(home).create_key("benchmark", rate_per_s=10_000, burst=10_000, quota_images=0)
        # past Serve's proxy, where the mode gives the gateway a port of its own and no HAProxy sits there
        direct = service.direct_url(home) if os.environ.get(HAPROXY_SWITCH) != "1" else None
        routes = [("service URL", base)] + ([("gateway replica, direct", direct)] if direct else [])
        for name, deployment in (("no-op deployment", NoOp), ("no-op FastAPI ingress", NoOpIngress)):
            serve.run(deployment.bind(), name=NOOP_APP, route_prefix="/noop")
            row(name, "service URL", f"{base}/noop", one, args.concurrency)
            serve.delete(NOOP_APP)
        cases = [("CNN, batch 1", DeploySettings(1, 1, 0.0, device=args.device), one, 1, True),
                 ("CNN, dynamic batching", DeploySettings(1, args.max_batch_size, args.batch_wait_ms, device=args.device), one, 1, True),
                 ("CNN, batching, 2 replicas", DeploySettings(2, args.max_batch_size, args.batch_wait_ms, device=args.device), one, 1, False),
                 ("CNN, batching, 32 images/request", DeploySettings(1, args.max_batch_size, args.batch_wait_ms, device=args.device), batch, 32, False)]
        for name, settings, body, images, alone in cases:
            service.deploy(shipped_source("cnn"), settings, home)
            time.sleep(1.5)  # the gateway's deployment cache (1 s) sees the new settings
            for route, url in (routes if alone else routes[:1]):
                predict = client.predict_url(url, "cnn")
                row(name, route, predict, body, args.concurrency, images, settings=settings.to_dict())
                if alone:  # one request at a time: what a lone client waits
                    row(name + ", one at a time", route, predict, body, 1, images, settings=settings.to_dict())
        batch_histogram = service.metrics(home, window_s=600, model="cnn").batch_sizes
    finally:
        try:
            service.shutdown(home)
        finally:
            runtime.disconnect()
            runtime.stop_embedded(home, cluster.pid)
    return {"mode": args.one_mode, "rows": rows, "batch_sizes": batch_histogram, "measured_direct": direct is not None,
            "load_average": os.getloadavg()}


def mode_env(mode: str, scratch: Path) -> dict[str, str] | str:
    """The environment a mode's child runs in (a reason instead when it cannot run here)."""
    env = dict(SERVE_MODES[mode])
    if env.get(HAPROXY_SWITCH) == "1":
        binary = shutil.which("haproxy")
        if binary is None:
            return "no haproxy binary (Debian: apt-get install haproxy)"
        # not Ray's fixed /tmp/haproxy-serve/, shared by every head on the host; short, as HAProxy takes
        # socket paths of at most 97 bytes and Ray adds a 56-character folder
        files = Path(tempfile.mkdtemp(prefix="bmhp-", dir="/tmp"))
        env.update({"RAY_SERVE_HAPROXY_BINARY_PATH": binary,
                    "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(files / "haproxy.cfg"),
                    "RAY_SERVE_HAPROXY_SOCKET_PATH": str(files / "admin.sock"),
                    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(files),
                    "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(files / "server-state"),
                    "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(files / "metrics.sock")})
    return env


def can_isolate() -> bool:
    """Can a child run in a network namespace of its own, with loopback only?"""
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("ip") is not None


def run_mode(mode: str, args, scratch: Path) -> dict:
    env = mode_env(mode, scratch)
    if isinstance(env, str):
        return {"mode": mode, "error": env}
    isolated = can_isolate()
    if env.get(HAPROXY_SWITCH) == "1" and not isolated:
        return {"mode": mode, "error": "HAProxy binds its stats and metrics ports on every interface: "
                                       "run as root, for a network namespace with loopback only"}
    out, log = scratch / f"{mode}.json", scratch / f"{mode}.log"
    cmd = [sys.executable, "-m", "benchmarks.serve_throughput", "--one-mode", mode, "--json", str(out),
           "--device", args.device, "--seconds", str(args.seconds), "--concurrency", str(args.concurrency),
           "--max-batch-size", str(args.max_batch_size), "--batch-wait-ms", str(args.batch_wait_ms)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if isolated:
        cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
    child = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    child.pop(runtime.ENV_RAY_ADDRESS, None)  # its own embedded head, started in this mode
    print(f"-- {mode}: {' '.join(f'{k}={v}' for k, v in SERVE_MODES[mode].items()) or 'Ray defaults'}", flush=True)
    with open(log, "w") as sink:
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=child, stdout=sink, stderr=subprocess.STDOUT, timeout=1200)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    if "RAY_SERVE_HAPROXY_SERVER_STATE_BASE" in env:
        shutil.rmtree(env["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"], ignore_errors=True)
    if code != 0 or not out.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        return {"mode": mode, "error": f"exit {code}: " + " | ".join(tail), "isolated": isolated, "log": str(log)}
    return {**json.loads(out.read_text()), "env": SERVE_MODES[mode], "isolated": isolated}


def verdicts_of(result: dict) -> dict:
    """A mode's targets, through the service's URL (and straight to the gateway where measured)."""
    rows = result["rows"]

    def find(case: str, route: str = "service URL") -> dict | None:
        return next((r for r in rows if r["case"] == case and r["route"] == route), None)

    ceiling = max((r for r in rows if r["case"].startswith("no-op")), key=lambda r: r["requests_per_s"])
    out = {}
    for route in dict.fromkeys(r["route"] for r in rows if r["case"] == "CNN, batch 1"):
        b1, batched = find("CNN, batch 1", route), find("CNN, dynamic batching", route)
        alone_b1, alone_batched = (find("CNN, batch 1, one at a time", route),
                                   find("CNN, dynamic batching, one at a time", route))
        gain = batched["requests_per_s"] / b1["requests_per_s"] if b1["requests_per_s"] else 0.0
        p99_ok = (batched["p99_ms"] or float("inf")) <= (b1["p99_ms"] or 0.0)
        share = batched["requests_per_s"] / ceiling["requests_per_s"] if ceiling["requests_per_s"] else 0.0
        alone = min(r["p50_ms"] or float("inf") for r in (alone_b1, alone_batched))
        out[route] = {"ceiling_share": share, "ceiling_share_met": share >= CEILING_SHARE_TARGET,
                      "batching_gain": gain, "batching_gain_met": gain >= BATCHING_GAIN_TARGET, "p99_not_worse": p99_ok,
                      "one_request_p50_ms": {"batch_1": alone_b1["p50_ms"], "batching": alone_batched["p50_ms"]},
                      "one_request_p50_met": alone <= ONE_REQUEST_P50_TARGET_MS,
                      "cpu_ms_per_request": {"batch_1": b1["cpu_ms_per_request"],
                                             "batching": batched["cpu_ms_per_request"],
                                             "no_op": ceiling["cpu_ms_per_request"]}}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--modes", nargs="+", default=list(SERVE_MODES), choices=list(SERVE_MODES),
                        help="Ray Serve modes to measure side by side (default: all)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per case (after 2 s warm-up)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight per case")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--data-dir", help="MNIST folder (default $BIGMODELS_DATA_DIR, then the sample)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "serve_throughput.json"))
    parser.add_argument("--one-mode", choices=list(SERVE_MODES), help=argparse.SUPPRESS)  # a child: this mode only
    args = parser.parse_args()

    if args.one_mode:
        Path(args.json).write_text(json.dumps(measure_mode(args), default=str) + "\n")
        return 0

    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="bigmodels-serve-modes-"))
    results = {mode: run_mode(mode, args, scratch) for mode in args.modes}
    forward = {1: forward_ms(1), 32: forward_ms(32)}

    print(f"model service on {args.device}, {os.cpu_count()} cores, {args.concurrency} in flight "
          f"(1 in the 'one at a time' cases), {args.seconds:.0f} s per case, load average before "
          f"{load_before[0]:.2f} (measured under whatever else the machine runs)")
    print(f"{'mode':<11} {'route':<24} {'case':<44} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'CPU ms/req':>10}")
    rows, verdicts, histograms = [], {}, {}
    for mode, result in results.items():
        if "error" in result:
            print(f"{mode:<11} not measured: {result['error']} (log: {result.get('log')})")
            continue
        rows += result["rows"]
        verdicts[mode] = verdicts_of(result)
        histograms[mode] = result["batch_sizes"]
        for r in result["rows"]:
            print(f"{mode:<11} {r['route']:<24} {r['case']:<44} {r['requests_per_s']:>7.1f} {r['p50_ms'] or 0:>7.1f} "
                  f"{r['p99_ms'] or 0:>7.1f} {r['sent'] - r['ok']:>6} {r['cpu_ms_per_request'] or 0:>10.2f}")
    for mode, routes in verdicts.items():
        for route, v in routes.items():
            cpu = v["cpu_ms_per_request"]
            print(f"{mode}, {route}: batching {v['batching_gain']:.2f}x over batch 1 (target {BATCHING_GAIN_TARGET:.0f}x), "
                  f"p99 {'not worse' if v['p99_not_worse'] else 'WORSE'}; {v['ceiling_share']:.0%} of the no-op ceiling; "
                  f"one request alone p50 {v['one_request_p50_ms']['batch_1'] or 0:.1f} ms at batch 1, "
                  f"{v['one_request_p50_ms']['batching'] or 0:.1f} ms with batching (target {ONE_REQUEST_P50_TARGET_MS:.0f} ms); "
                  f"CPU per request {cpu['batch_1'] or 0:.2f} / {cpu['batching'] or 0:.2f} ms (no-op {cpu['no_op'] or 0:.2f})")
        print(f"{mode}: batch sizes the CNN's replicas ran (requests per size): {histograms[mode]}")
    print(f"the CNN's forward pass: {forward[1]:.2f} ms at batch 1, {forward[32] / 32:.3f} ms per image at 32")
    # the fastest mode through the service's own URL, by the CNN with batching
    service_rows = [r for r in rows if r["case"] == "CNN, dynamic batching" and r["route"] == "service URL"]
    fastest = max(service_rows, key=lambda r: r["requests_per_s"])["mode"] if service_rows else None
    print(f"fastest through the service's URL (CNN with batching): {fastest}; the service runs in "
          f"'{DEFAULT_SERVE_MODE}' unless its environment says otherwise")
    result = {"rows": rows, "verdicts": verdicts, "batch_sizes": histograms,
              "modes": {m: {k: v for k, v in r.items() if k not in ("rows", "batch_sizes")} for m, r in results.items()},
              "fastest_mode": fastest, "default_mode": DEFAULT_SERVE_MODE,
              "forward_ms": {"batch_1": forward[1], "batch_32_per_image": forward[32] / 32},
              "targets": {"ceiling_share": CEILING_SHARE_TARGET, "batching_gain": BATCHING_GAIN_TARGET,
                          "one_request_p50_ms": ONE_REQUEST_P50_TARGET_MS},
              "seconds": args.seconds, "one_at_a_time_seconds": min(args.seconds, ONE_AT_A_TIME_S),
              "concurrency": args.concurrency, "load_average_before": load_before, "load_average": os.getloadavg(),
              "cpu_count": os.cpu_count(), **provenance(args.device)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    if not any("error" in r for r in results.values()):
        shutil.rmtree(scratch, ignore_errors=True)  # else kept: each failed mode's log is named in the JSON
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
