"""Load: N concurrent sessions on the sandbox and comparison pages while one
training run is going.

    BIGMODELS_DATA_DIR=../shared/mnist python -m benchmarks.load_test [--sessions 20] [--seconds 90] [--processes 2]

Starts its own ``streamlit run app.py`` with a temporary run store, then drives
``--sessions`` sessions for ``--seconds``. Each session is a browser tab as the
server sees it -- Streamlit's own websocket protocol, spoken by
``bigmodels/harness/streamlit_client.py`` (page GET, health checks, XSRF cookie,
websocket, reruns with widget states, the /media/ pictures fetched as <img>
tags do) -- without rendering anything: 20 Chromium tabs on the server's own
2 cores would measure Chromium, and in a deployment each visitor's browser
runs on the visitor's machine. Each session, over and over:

1. opens a new tab on /sandbox (connection and first run),
2. switches the input to MNIST test digits, then asks for 3 more digits
   (every answer checked: three predictions and a verdict),
3. clicks through to the comparison page (four charts checked),

with a think time between interactions (``--think``, uniform, seconds: people
read what they asked for; 0 hammers the server). An interaction's latency is
from the request to the end of its script run, plus its pictures' download.

The training run is the CNN's recipe on full MNIST for ``--train-epochs``
(default 40, far longer than the window on this CPU; it is cancelled when the
window ends, and a run that ended before the window did is an error), queued
when the sessions start and served by the dispatcher the app itself starts, as on
a single-box deployment. Before the clock starts, one session per app process visits both pages
and waits for the comparison page's one-off measurements (every later visitor
gets them cached); that warm-up is reported apart.

Meanwhile (``--service``, the default) the model service runs on the same Ray
cluster as the training session -- Serve's proxy, the gateway and a CNN replica --
with one client sending it ``--service-rate`` requests/s; its answers are checked
too. ``--processes N`` runs N app processes behind nginx with sticky sessions,
from deploy/'s own config (``bigmodels.harness.proxy``), as a deployment would.

Reports the median and 95th-percentile latency per interaction, every error
(exception box, wrong or missing answer, timeout at ``--timeout`` s, lost
connection), the server's peak memory (app + dispatcher + Ray), and the training run's
result. Writes benchmarks/results/load_test.json; exits 1 on any error or a
failed run.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bigmodels.cluster import runtime  # before ray: it sets Ray's environment
from bigmodels.harness.catalogue import shown
from bigmodels.harness.proxy import BASE_PATH, NginxPool
from bigmodels.harness.server import StreamlitServer
from bigmodels.harness.streamlit_client import StreamlitClientError, StreamlitSession
from bigmodels.base.i18n import translate
from bigmodels.base.provenance import provenance
from bigmodels.runs.queue import submit
from bigmodels.runs.store import RunStore
from bigmodels.train.config import default_config
from bigmodels.base.processes import tree_memory

RESULTS = Path(__file__).parent / "results" / "load_test.json"
MODELS = 3  # the sandbox answers with every shipped architecture
CHARTS = 4  # the comparison page's first section: two scatters, learning curves, per-digit accuracy


def en(key: str, **values) -> str:
    return translate(key, "en", **values)


class MemorySampler(threading.Thread):
    """Peak resident memory of every server process and its children (the dispatcher),
    nginx, and the Ray cluster (sessions, Serve's proxy, gateway and replicas), every 0.5 s."""

    def __init__(self, roots):
        super().__init__(daemon=True)
        self.roots, self.peak, self.stop = roots, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_memory(*self.roots()))
            time.sleep(0.5)


class ServiceClient(threading.Thread):
    """A steady client of the model service (the CNN, one digit a request) for the whole window."""

    def __init__(self, url: str, key: str, body: bytes, rate: float):
        super().__init__(daemon=True)
        self.url, self.key, self.body, self.rate = url, key, body, rate
        self.stop, self.statuses, self.latencies = threading.Event(), {}, []

    def run(self):
        from bigmodels.serving.loadgen import LoadPlan, run_load

        while not self.stop.is_set():
            report = run_load(LoadPlan(self.url, self.key, self.body, rate=self.rate, duration_s=10, concurrency=4),
                              self.stop)
            for status, n in report.statuses.items():
                self.statuses[status] = self.statuses.get(status, 0) + n
            self.latencies += report.latencies_ms

    def summary(self) -> dict:
        from bigmodels.serving.metrics import percentile

        return {"rate": self.rate, "statuses": dict(sorted(self.statuses.items())),
                "p50_ms": percentile(self.latencies, 50), "p99_ms": percentile(self.latencies, 99)}


class WrongAnswer(AssertionError):
    """The page ran but did not show what it must."""


def check_sandbox(s: StreamlitSession) -> None:
    predictions = [m for m in s.find("metric") if m.label == en("sandbox.result.prediction")]
    if len(predictions) != MODELS or not all(len(p.body) == 1 and p.body.isdigit() for p in predictions):
        raise WrongAnswer(f"expected {MODELS} predicted digits, got {[p.body for p in predictions]}")
    kinds = ("sandbox.agree", "sandbox.agree_unsure", "sandbox.disagree")
    verdicts = [a.body for a in s.find("alert") if any(shown(k).match(a.body) for k in kinds)]
    if len(verdicts) != 1:
        raise WrongAnswer(f"expected one agree/disagree verdict, got {len(verdicts)}")
    digits = {p.body for p in predictions}
    if len(digits) == 1:  # agreement, with or without a model below the unsure threshold
        digit = digits.pop()
        expected = re.compile(f"{shown('sandbox.agree', digit=digit).pattern}|"
                              f"{shown('sandbox.agree_unsure', digit=digit).pattern}")
    else:
        expected = shown("sandbox.disagree")
    if not expected.match(verdicts[0]):
        raise WrongAnswer(f"predictions {[p.body for p in predictions]} but the verdict says {verdicts[0]!r}")


def check_comparison(s: StreamlitSession) -> None:
    if len(s.charts()) != CHARTS:
        raise WrongAnswer(f"expected {CHARTS} charts, got {len(s.charts())}")


async def visitor(url: str, stop_at: float, think: tuple[float, float], timeout: float, index: int,
                  record: list, errors: list) -> None:
    """One person: new tab on the sandbox, a few digits, the comparison page; again."""
    rng = random.Random(index)

    async def timed(s: StreamlitSession, name: str, action, check=None) -> bool:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(action(), timeout)
            await asyncio.wait_for(s.fetch_media(), timeout)
            if check:
                check(s)
        except (StreamlitClientError, WrongAnswer, TimeoutError, OSError) as exc:
            errors.append(f"session {index} {name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            return False
        record.append((name, time.perf_counter() - start))
        await asyncio.sleep(rng.uniform(*think))
        return time.monotonic() < stop_at

    await asyncio.sleep(index * 0.25)  # arrivals spread like people's, not a thundering herd
    while time.monotonic() < stop_at:
        async with StreamlitSession(url, timeout=timeout) as s:
            if not await timed(s, "open sandbox (new tab)", lambda: s.open_page("sandbox")):
                continue
            try:
                radio = s.find_widget("radio", en("sandbox.input.label"))
            except LookupError as exc:
                errors.append(f"session {index} find input radio: {exc}")
                continue
            if not await timed(s, "pick test digits", lambda: s.set_widget(radio, en("sandbox.input.random")),
                               check_sandbox):
                continue
            carry_on = True
            for _ in range(3):
                carry_on = await timed(s, "next test digit",
                                       lambda: s.click(s.find_widget("button", en("sandbox.random.next"))),
                                       check_sandbox)
                if not carry_on:
                    break
            if carry_on:
                await timed(s, "open comparison", lambda: s.open_page("comparison"), check_comparison)


async def warm_up(url: str, timeout: float) -> float:
    """One visit to both pages, waiting for the comparison page's measurements."""
    start = time.perf_counter()
    async with StreamlitSession(url, timeout=timeout) as s:
        await s.open_page("sandbox")
        await s.set_widget(s.find_widget("radio", en("sandbox.input.label")), en("sandbox.input.random"))
        check_sandbox(s)
        await s.open_page("comparison")
        await s.settle(900)
        check_comparison(s)
    return time.perf_counter() - start


async def start_training(url: str, timeout: float) -> None:
    """Open the launcher page: the app starts the dispatcher for the queued run, as after a restart."""
    async with StreamlitSession(url, timeout=timeout) as s:
        await s.open_page("launcher")


def start_service(home: Path, rate: float) -> ServiceClient:
    """The model service on the home's cluster (the one the dispatcher's sessions run on),
    the CNN deployed, and a client for it (started with the window)."""
    from bigmodels.data.digits import from_uint8
    from bigmodels.data.mnist import load_mnist
    from bigmodels.harness.server import free_port
    from bigmodels.runs.sources import shipped_source
    from bigmodels.serving import client, service
    from bigmodels.serving.store import ServiceStore

    base = service.start(home, free_port())
    service.deploy(shipped_source("cnn"), home=home)
    _, key = ServiceStore(home).create_key("load test", rate_per_s=max(10.0, 2 * rate), burst=100, quota_images=0)
    time.sleep(1.5)  # the gateway reads new keys within a second
    body = client.pixels_json(from_uint8(load_mnist().test_images[0]))
    return ServiceClient(client.predict_url(base, "cnn"), key, body, rate)


def stop_service(home: Path) -> None:
    from bigmodels.serving import service

    service.shutdown(home)
    runtime.disconnect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"),
                        help="seconds a person pauses between interactions (uniform; default 1 3)")
    parser.add_argument("--train-epochs", type=int, default=40, help="epochs of the CNN run trained meanwhile")
    parser.add_argument("--timeout", type=float, default=120, help="an interaction slower than this is an error")
    parser.add_argument("--processes", type=int, default=1,
                        help="app processes, behind nginx with sticky sessions (deploy/nginx-upstream.conf)")
    parser.add_argument("--proxy", action="store_true", help="nginx in front even of one process")
    parser.add_argument("--service", action=argparse.BooleanOptionalAction, default=True,
                        help="run the model service (Ray Serve: proxy, gateway, the CNN) on the same cluster")
    parser.add_argument("--service-rate", type=float, default=5.0,
                        help="requests/s one client sends the model service during the window")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bigmodels-load-"))
    store = RunStore(home)
    proxied = args.processes > 1 or args.proxy
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(StreamlitServer(home, base_path=BASE_PATH if proxied else ""))
                   for _ in range(args.processes)]
        pool = stack.enter_context(NginxPool([s.port for s in servers])) if proxied else None
        url = pool.url if pool else servers[0].url

        def roots() -> list[int]:
            pids = [s.process.pid for s in servers] + ([pool.process.pid] if pool else [])
            cluster = runtime.cluster_address(home, start=False)
            return pids + ([cluster.pid] if cluster is not None and cluster.pid else [])

        record: list[tuple[str, float]] = []
        errors: list[str] = []
        sampler = MemorySampler(roots)
        sampler.start()
        print(f"{args.processes} app process(es){' behind nginx' if pool else ''}; warming up "
              "(one visit, the comparison page's measurements) ...", flush=True)
        # each process directly: every one pays its own first visit (models, the comparison's
        # measurements) before the clock starts, not whichever visitor nginx sends there first
        warm_seconds = sum(asyncio.run(warm_up(s.url, 900)) for s in servers)
        run = submit(store, default_config("cnn", epochs=args.train_epochs, device="cpu")).run
        asyncio.run(start_training(url, args.timeout))
        service_client = None
        if args.service:
            stack.callback(stop_service, home)
            service_client = start_service(home, args.service_rate)
        print(f"warm-up {warm_seconds:.0f} s; training run {run.id} queued; "
              f"{'model service up; ' if service_client else ''}{args.sessions} sessions for {args.seconds:.0f} s ...",
              flush=True)


        async def drive():
            stop_at = time.monotonic() + args.seconds
            await asyncio.gather(*(visitor(url, stop_at, tuple(args.think), args.timeout, i, record, errors)
                                   for i in range(args.sessions)))

        t0 = time.perf_counter()
        if service_client is not None:
            service_client.start()
        asyncio.run(drive())
        wall = time.perf_counter() - t0
        training_during_load = store.get(run.id).status
        if service_client is not None:
            service_client.stop.set()
            service_client.join(60)
        if training_during_load == "running":
            store.request_cancel(run.id)  # it trained through the whole window: that was its job
        else:
            errors.append(f"the training run was {training_during_load} at the end of the window, not running")
        deadline = time.monotonic() + 900
        while store.get(run.id).status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
        sampler.stop.set()
    final = store.get(run.id)
    epochs = store.epochs(run.id)
    accuracy = epochs[-1]["test_accuracy"] if epochs else None
    train_seconds = epochs[-1]["elapsed"] if epochs else None

    by_name: dict[str, list[float]] = {}
    for name, seconds in record:
        by_name.setdefault(name, []).append(seconds)
    everything = [s for _, s in record]

    def p95(values):
        return statistics.quantiles(values, n=100)[94] if len(values) > 1 else values[0]

    print(f"\n{args.sessions} sessions for {wall:.0f} s (think {args.think[0]:g}-{args.think[1]:g} s), "
          f"one training run going (at the end of the window it was {training_during_load})\n")
    print(f"{'interaction':<24} {'count':>6} {'median s':>9} {'p95 s':>7}")
    rows = {}
    for name, values in by_name.items():
        rows[name] = {"count": len(values), "median_s": statistics.median(values), "p95_s": p95(values)}
        print(f"{name:<24} {len(values):>6} {rows[name]['median_s']:>9.2f} {rows[name]['p95_s']:>7.2f}")
    if everything:
        print(f"{'all':<24} {len(everything):>6} {statistics.median(everything):>9.2f} {p95(everything):>7.2f}")
    print(f"\nerrors: {len(errors)}")
    for e in errors[:20]:
        print("  " + e)
    service_summary = service_client.summary() if service_client else None
    if service_summary:
        print(f"model service meanwhile: {service_summary['rate']:g} requests/s offered, statuses "
              f"{service_summary['statuses']}, p50 {service_summary['p50_ms'] or 0:.0f} ms, "
              f"p99 {service_summary['p99_ms'] or 0:.0f} ms")
        errors += [f"model service answered {status} {n} times" for status, n in service_summary["statuses"].items()
                   if status != 200]
    print(f"server peak memory (app{'s' if args.processes > 1 else ''} + dispatcher + Ray sessions"
          f"{' + model service' if service_client else ''}{' + nginx' if proxied else ''}): {sampler.peak / 2**20:.0f} MiB")
    print(f"training run {final.id}: {final.status}, {len(epochs)} epochs in {train_seconds or 0:.0f} s, "
          f"test accuracy {accuracy}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "sessions": args.sessions, "processes": args.processes, "proxy": "nginx (deploy/nginx-upstream.conf)" if proxied else None,
        "model_service": service_summary, "seconds": wall, "think_s": list(args.think), "timeout_s": args.timeout,
        "client": "bigmodels/harness/streamlit_client.py (Streamlit's websocket protocol, no rendering)",
        "warm_up_s": warm_seconds, "interactions": rows,
        "all": {"count": len(everything), "median_s": statistics.median(everything) if everything else None,
                "p95_s": p95(everything) if everything else None},
        "errors": errors, "peak_memory_bytes": sampler.peak,
        "training_run": {"id": final.id, "status": final.status, "epochs": len(epochs), "test_accuracy": accuracy,
                         "training_seconds": train_seconds,
                         "status_at_end_of_window": training_during_load},
        **provenance("cpu"),
    }, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if not errors and final.status in ("succeeded", "cancelled") and everything else 1


if __name__ == "__main__":
    raise SystemExit(main())
