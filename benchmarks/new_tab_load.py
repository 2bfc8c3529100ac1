"""A new tab on every chart page of the app: seconds until it is drawn (target: 3 s, issue 16).

    BIGMODELS_DATA_DIR=../shared/mnist python -m benchmarks.new_tab_load [--runs 5]

What is timed, in headless Chromium against a live ``streamlit run app.py``, for each
page (the home page as the reference for what any page costs this way):

* first, a visit in a browser context of its own settles the page -- its background
  work done (the comparison page measures peak memory once), its script run over and
  its charts stable for two seconds -- and counts the charts it draws;
* then ``--runs`` new tabs in one warm browser context, as when a visitor opens a
  link in another tab: the app's scripts come from the browser's cache, but each tab
  starts Streamlit's frontend, connects its websocket and evaluates plotly.js in a
  fresh JavaScript context. Each is timed from navigation until the script run is over
  and as many charts as the first visit counted are drawn (each chart's SVG is there).

It reports which plotly.js each page loaded: Streamlit's chunk of the whole library
(``PlotlyChart.*.js``, 4.7 MB, for ``st.plotly_chart``), the cartesian bundle
(``bigmodels.app.charts``, 1.5 MB), or both. The store holds one finished run (LeNet-5,
one epoch on 500 images, made as ``benchmarks/launcher_page_load.py`` makes them), so
the launcher draws a run's curves. Prints a table and writes
benchmarks/results/new_tab_load.json; exits 1 if a page with charts misses the target.
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

from benchmarks.comparison_page_load import BUSY_TEXT, NEW_TAB_TARGET_S, VIEWPORT
from bigmodels.figures.chart_payload import BUNDLES
from bigmodels.harness.browser import CHART_SELECTOR

REPO = Path(__file__).resolve().parent.parent
PAGES = ("", "comparison", "launcher", "lab", "sandbox", "service", "challenges", "cases")
SETTLE_S = 2.0  # a first visit is settled once its chart count has not changed for this long
IDLE = "document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'"


def drawn(charts: int) -> str:
    """True once the script run is over, nothing is busy and ``charts`` charts are drawn."""
    return " && ".join([
        "document.querySelector('h1')", IDLE, f"!document.body.innerText.includes({json.dumps(BUSY_TEXT)})",
        f"Array.from(document.querySelectorAll({json.dumps(CHART_SELECTOR)}))"
        f".filter(chart => chart.querySelector('.main-svg')).length >= {charts}"])


def libraries(urls: list[str]) -> str:
    """Which plotly.js a page's requests loaded."""
    marks = [("streamlit chunk", "/PlotlyChart.")] + [(f"{bundle.name} bundle", bundle.url) for bundle in BUNDLES]
    kinds = [name for name, mark in marks if any(mark in url for url in urls)]
    return " + ".join(kinds) or "none"


def settle(browser, url: str) -> tuple[int, str]:
    """A first visit: (the charts it draws once settled, which plotly.js it loaded)."""
    page = browser.new_page(viewport=VIEWPORT)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(drawn(0), timeout=900_000, polling=200)
    count, since = -1, time.monotonic()
    while time.monotonic() - since < SETTLE_S:
        now = page.evaluate(f"document.querySelectorAll({json.dumps(CHART_SELECTOR)}).length")
        if now != count or not page.evaluate(IDLE):
            count, since = now, time.monotonic()
        time.sleep(0.2)
    if page.locator('[data-testid="stException"]').count():
        raise RuntimeError(f"{url}: the page showed an exception")
    page.close()
    return count, libraries(urls)


def new_tab(context, url: str, charts: int) -> float:
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(drawn(charts), timeout=120_000, polling=50)
    seconds = time.perf_counter() - start
    if page.locator('[data-testid="stException"]').count():
        raise RuntimeError(f"{url}: the page showed an exception")
    page.close()
    print(f"  new tab {url}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed new tabs per page")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "new_tab_load.json"))
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="bigmodels-new-tab-bench-")
    os.environ["BIGMODELS_HOME"] = home
    from playwright.sync_api import sync_playwright

    from benchmarks.launcher_page_load import make_runs
    from bigmodels.harness.browser import launch_chromium
    from bigmodels.harness.server import StreamlitServer
    from bigmodels.base.provenance import provenance

    make_runs(home, 1)
    env = {k: os.environ[k] for k in ("BIGMODELS_DATA_DIR",) if k in os.environ}
    print(f"load average {os.getloadavg()[0]:.1f}; store {home}")
    rows = {}
    with StreamlitServer(Path(home), env) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport=VIEWPORT)
        new_tab(context, server.url, 0)  # fills the browser's cache with the app's scripts
        for path in PAGES:
            url = f"{server.url}/{path}"
            charts, loaded = settle(browser, url)
            times = [new_tab(context, url, charts) for _ in range(args.runs)]
            rows[path or "home"] = {"charts": charts, "plotly_js": loaded, "runs": times,
                                    "median_s": statistics.median(times), "max_s": max(times)}
        browser.close()

    print(f"\na new tab, same browser, {VIEWPORT['width']}x{VIEWPORT['height']}: seconds until drawn")
    print(f"{'page':<12} {'charts':>6}  {'plotly.js loaded':<34} {'median s':>8} {'max s':>6} {'target':>6}  ok")
    for name, row in rows.items():
        ok = "yes" if row["median_s"] <= NEW_TAB_TARGET_S else "NO" if row["charts"] else "-"
        print(f"{name:<12} {row['charts']:>6}  {row['plotly_js']:<34} {row['median_s']:>8.2f} {row['max_s']:>6.2f} "
              f"{NEW_TAB_TARGET_S:>6.1f}  {ok}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"target_s": NEW_TAB_TARGET_S, "viewport": VIEWPORT, "results": rows,
                               "load_average_1min": os.getloadavg()[0], **provenance("cpu")}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if all(row["median_s"] <= NEW_TAB_TARGET_S for row in rows.values() if row["charts"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
