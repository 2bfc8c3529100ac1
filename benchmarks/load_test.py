"""Load: N concurrent browser sessions on the sandbox and comparison pages while
one training run is going.

    BIGMODELS_DATA_DIR=../shared/mnist python benchmarks/load_test.py [--sessions 20] [--seconds 90]

Starts its own ``streamlit run app.py`` (with a temporary run store) and a
training worker, queues one short CNN run, then drives ``--sessions`` Playwright
contexts (one headless Chromium) for ``--seconds``: each session opens the
sandbox, switches to MNIST test digits and asks for new digits, then opens the
comparison page, over and over. An interaction's latency is the time from the
click (or navigation) until the app has finished its script run. Reports the
median and 95th-percentile latency per interaction, errors (exception boxes,
timeouts), the server's peak memory (app + worker), and whether the training
run finished correctly. Writes benchmarks/results/load_test.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bigmodels.i18n import translate  # noqa: E402
from bigmodels.provenance import provenance  # noqa: E402
from bigmodels.runs import RunStore  # noqa: E402
from bigmodels.training import default_config  # noqa: E402
from bigmodels.worker import start_worker  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "load_test.json"


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (from /proc)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            stack.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total


class MemorySampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.samples, self.stop = pids, 0, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            now = sum(rss_bytes(p) for p in self.pids)
            self.samples.append(now)
            self.peak = max(self.peak, now)
            time.sleep(0.5)


async def wait_idle(page, timeout=120.0):
    """Until Streamlit's script run is over (same rule as tests/browser.py)."""
    deadline = time.monotonic() + timeout
    quiet = None
    while time.monotonic() < deadline:
        state = await page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        if state == "notRunning":
            quiet = quiet or time.monotonic()
            if time.monotonic() - quiet > 0.3:
                if await page.locator('[data-testid="stException"]').count():
                    raise RuntimeError("exception box shown")
                return
        else:
            quiet = None
        await asyncio.sleep(0.05)
    raise TimeoutError("script still running")


async def session(browser, url, stop_at, record, errors, index):
    from playwright.async_api import Error as PlaywrightError

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(120_000)  # a slow answer is a latency to report, not a crash
    page.set_default_navigation_timeout(120_000)
    random_label = translate("sandbox.input.random", "en")
    next_label = translate("sandbox.random.next", "en")

    async def timed(name, action):
        t = time.perf_counter()
        try:
            await action()
            await wait_idle(page)
            record.append((name, time.perf_counter() - t))
        except (PlaywrightError, RuntimeError, TimeoutError) as exc:
            errors.append(f"session {index} {name}: {str(exc).splitlines()[0][:200]}")

    await asyncio.sleep(index * 0.25)  # stagger arrivals like people, not a thundering herd
    while time.monotonic() < stop_at:
        await timed("open sandbox", lambda: page.goto(f"{url}/sandbox", wait_until="domcontentloaded"))
        await timed("pick test digits", lambda: page.get_by_text(random_label, exact=True).click())
        for _ in range(3):
            if time.monotonic() >= stop_at:
                break
            await timed("next test digit", lambda: page.get_by_role("button", name=next_label).click())
        if time.monotonic() < stop_at:
            await timed("open comparison", lambda: page.goto(f"{url}/comparison", wait_until="domcontentloaded"))
    await context.close()


async def drive(url, sessions, seconds):
    from playwright.async_api import async_playwright

    record, errors = [], []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(session(browser, url, stop_at, record, errors, i) for i in range(sessions)))
        await browser.close()
    return record, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bigmodels-load-"))
    store = RunStore(home)
    run = store.submit(default_config("cnn", epochs=1, train_subset=20_000, device="cpu")).run
    with StreamlitServer(home) as server:
        worker = start_worker(home, "cpu")
        sampler = MemorySampler([server.process.pid, worker.pid])
        sampler.start()
        t0 = time.perf_counter()
        record, errors = asyncio.run(drive(server.url, args.sessions, args.seconds))
        wall = time.perf_counter() - t0
        deadline = time.monotonic() + 600
        while store.get(run.id).status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
        sampler.stop.set()
        worker.terminate()
        worker.wait(30)
    final = store.get(run.id)
    epochs = store.epochs(run.id)

    by_name: dict[str, list[float]] = {}
    for name, seconds in record:
        by_name.setdefault(name, []).append(seconds)
    everything = [s for _, s in record]

    def pct(values, q):
        return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

    print(f"{args.sessions} sessions for {wall:.0f} s, one training run going\n")
    print(f"{'interaction':<20} {'count':>6} {'median s':>9} {'p95 s':>7}")
    rows = {}
    for name, values in by_name.items():
        rows[name] = {"count": len(values), "median_s": statistics.median(values), "p95_s": pct(values, 95)}
        print(f"{name:<20} {len(values):>6} {rows[name]['median_s']:>9.2f} {rows[name]['p95_s']:>7.2f}")
    if everything:
        print(f"{'all':<20} {len(everything):>6} {statistics.median(everything):>9.2f} {pct(everything, 95):>7.2f}")
    print(f"\nerrors: {len(errors)}")
    for e in errors[:10]:
        print("  " + e)
    print(f"server peak memory (app + worker): {sampler.peak / 2**20:.0f} MiB")
    accuracy = epochs[-1]["test_accuracy"] if epochs else None
    print(f"training run {final.id}: {final.status}, test accuracy {accuracy}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "sessions": args.sessions, "seconds": wall, "interactions": rows,
        "all": {"count": len(everything), "median_s": statistics.median(everything) if everything else None,
                "p95_s": pct(everything, 95) if everything else None},
        "errors": errors, "peak_memory_bytes": sampler.peak,
        "training_run": {"id": final.id, "status": final.status, "test_accuracy": accuracy},
        **provenance("cpu"),
    }, indent=1))
    print(f"wrote {out}")
    return 0 if not errors and final.status == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
