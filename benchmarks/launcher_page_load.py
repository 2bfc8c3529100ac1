"""Launcher page load time with many finished runs (target: at most 2 s).

    BIGMODELS_DATA_DIR=../shared/mnist python -m benchmarks.launcher_page_load [--runs 5] [--finished 50]

What is timed, in headless Chromium against a live ``streamlit run app.py``: the
launcher opened from the sidebar (in-app navigation, from the home page) until
the script run is over and what the page draws is on screen -- the form, the
runs table, the selected run's live view with its two charts -- first with an
empty run store, then with ``--finished`` finished runs in it.

The runs are real: ``--finished`` tiny trainings (LeNet-5, one epoch on 500
images, each with its own learning rate and seed, scored on 1,000 test images)
queued with ``submit`` and trained by an in-process ``Worker`` through the
engine, exactly as the launcher's worker trains them; each takes well under a
second. Prints a table and writes benchmarks/results/launcher_page_load.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bigmodels.harness.browser import CHART_SELECTOR

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 2.0
VIEWPORT = {"width": 1280, "height": 720}
NAV_TEXT = "Training launcher"
LAUNCHER_FORM = "[data-testid=\"stForm\"] [data-testid=\"stNumberInput\"]"  # the home page's form has none
HOME_DRAWN = ("document.querySelector('h1') && document.querySelector('[data-testid=\"stApp\"]')"
              f"?.dataset.testScriptState === 'notRunning' && !document.querySelector('{LAUNCHER_FORM}')")


def drawn(with_runs: bool) -> str:
    """True once the launcher is drawn: its form and, with runs, the table and the
    selected run's two charts; no script running."""
    checks = [f"document.querySelector('{LAUNCHER_FORM}')",
              "document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'"]
    if with_runs:
        checks += ["document.querySelectorAll('[data-testid=\"stDataFrame\"] canvas, "
                   "[data-testid=\"stDataFrame\"] [role=\"grid\"]').length >= 1",
                   f"document.querySelectorAll('{CHART_SELECTOR}').length >= 2"]
    else:
        checks.append("document.body.innerText.includes('No runs yet')")
    return " && ".join(checks)


def make_runs(home: str, n: int) -> float:
    """``n`` real finished runs in the store at ``home``; returns the seconds it took."""
    from bigmodels.data.mnist import MNIST, load_mnist
    from bigmodels.runs.queue import submit
    from bigmodels.runs.store import RunStore
    from bigmodels.runs.inline import execute_queued
    from bigmodels.train.config import default_config

    full = load_mnist()
    small = MNIST(full.train_images[:2000], full.train_labels[:2000], full.test_images[:1000],
                  full.test_labels[:1000], source=full.source, location=full.location)
    store = RunStore(home)
    start = time.perf_counter()
    for i in range(n):
        submit(store, default_config("cnn", epochs=1, batch_size=100, train_subset=500, seed=i, device="cpu",
                                     lr=[3e-3, 1e-2, 3e-2][i % 3]), train_again=True)
    execute_queued(store, small)
    counts = store.counts()
    if counts.get("succeeded", 0) != n:
        raise RuntimeError(f"expected {n} succeeded runs, the store has {counts}")
    return time.perf_counter() - start


def navigations(server, browser, condition: str, runs: int, what: str) -> list[float]:
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(server.url, wait_until="domcontentloaded")
    page.wait_for_function(HOME_DRAWN, timeout=300_000)
    nav = page.locator('[data-testid="stSidebarNav"] a')
    times = []
    for i in range(runs + 1):  # the first one warms the server's caches for this store: not counted
        start = time.perf_counter()
        nav.filter(has_text=NAV_TEXT).click()
        page.wait_for_function(condition, timeout=300_000, polling=50)
        seconds = time.perf_counter() - start
        if page.locator('[data-testid="stException"]').count():
            raise RuntimeError(f"{what}: the page showed an exception")
        print(f"  {what}: {seconds:.2f} s" + (" (warm-up, not counted)" if i == 0 else ""), file=sys.stderr,
              flush=True)
        if i:
            times.append(seconds)
        nav.filter(has_text="Home").click()
        page.wait_for_function(HOME_DRAWN, timeout=300_000)
    page.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed navigations per case")
    parser.add_argument("--finished", type=int, default=50, help="finished runs in the store")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "launcher_page_load.json"))
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="bigmodels-launcher-bench-")
    os.environ["BIGMODELS_HOME"] = home
    from playwright.sync_api import sync_playwright

    from bigmodels.harness.browser import launch_chromium
    from bigmodels.harness.server import StreamlitServer
    from bigmodels.base.provenance import provenance

    env = {k: os.environ[k] for k in ("BIGMODELS_DATA_DIR",) if k in os.environ}
    print(f"load average {os.getloadavg()[0]:.1f}; store {home}")
    results = {}
    with StreamlitServer(Path(home), env) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        results["empty store"] = navigations(server, browser, drawn(False), args.runs, "no runs")
        made = make_runs(home, args.finished)
        print(f"trained {args.finished} real runs in {made:.1f} s", file=sys.stderr)
        results[f"{args.finished} finished runs"] = navigations(server, browser, drawn(True), args.runs,
                                                               f"{args.finished} runs")
        browser.close()
    print(f"\nin-app navigation (sidebar -> launcher), {VIEWPORT['width']}x{VIEWPORT['height']}")
    print(f"{'store':<20} {'loads':>5} {'median s':>9} {'max s':>7} {'target s':>9}  ok")
    summary = {}
    for name, times in results.items():
        summary[name] = {"runs": times, "median_s": statistics.median(times), "max_s": max(times)}
        ok = "yes" if summary[name]["median_s"] <= TARGET_S else "NO"
        print(f"{name:<20} {len(times):>5} {summary[name]['median_s']:>9.2f} {max(times):>7.2f} {TARGET_S:>9.1f}  {ok}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"target_s": TARGET_S, "viewport": VIEWPORT, "results": summary,
                               "finished_runs": args.finished, "seconds_to_train_them": made,
                               "load_average_1min": os.getloadavg()[0], **provenance("cpu")}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if all(row["median_s"] <= TARGET_S for row in summary.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
