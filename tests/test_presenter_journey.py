"""The presenter's journey: one unbroken demo on a fresh server, at 1280x720, timed.

A fresh app server with a home of its own and no Ray cluster: opening the launcher starts the
cluster and says so while it starts (how soon is printed); a quick demo launched at once shows its
first step, then live curves; a longer run is watched in the sandbox across two epochs without its picker resetting or
the canvas clearing; the model service is started and a model deployed, the page updating by
itself each time; load runs at batch 1 and with batching stand side by side and survive a reload;
the service's /docs renders. No request leaves the server. Each step is timed, the times printed
and written to test-artifacts/presenter-journey-<lang>.json; a screenshot of each step lands in
test-artifacts/screenshots/presenter-<lang>-*.png.
"""
import json
import re
import time

import pytest

from bigmodels.base.i18n import translate
from bigmodels.harness.browser import CHART_SELECTOR
from bigmodels.harness.server import ARTIFACTS
from bigmodels.harness.waiting import wait_for
from bigmodels.runs.store import RunStore
from tests.test_launcher_browser import open_settings
from tests.test_sandbox_browser import TIMEOUT, stroke

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.cluster]  # its own server and Ray head

VIEWPORT = {"width": 1280, "height": 720}  # a projector


def pattern(key: str, lang: str, **placeholders: str) -> re.Pattern:
    """A catalogue text as the page shows it, as a regex: markdown's ** and ` are not shown,
    and its ``{name}`` fields match whatever the page put there."""
    shown = translate(key, lang, **{name: f"\0{name}\0" for name in placeholders}).replace("**", "").replace("`", "")
    text = re.escape(shown)
    for name, regex in placeholders.items():
        text = text.replace(re.escape(f"\0{name}\0"), regex)
    return re.compile(text)


class Clock:
    """Each step's seconds, printed as a table at the end (and on failure, up to there)."""

    def __init__(self, lang: str):
        self.lang, self.steps, self.started = lang, [], time.monotonic()

    def step(self, name: str, since: float) -> float:
        seconds = time.monotonic() - since
        self.steps.append({"step": name, "seconds": round(seconds, 2)})
        return seconds

    def report(self) -> str:
        rows = "\n".join(f"  {s['step']:<58} {s['seconds']:>7.1f} s" for s in self.steps)
        return f"presenter journey ({self.lang}), {time.monotonic() - self.started:.0f} s in all:\n{rows}"


@pytest.fixture
def fresh(chromium, tmp_path):
    """A server of its own on an empty home, joined to no cluster: the first visitor's."""
    from bigmodels.cluster import runtime
    from bigmodels.harness.browser import AppPage
    from bigmodels.harness.server import StreamlitServer, free_port
    from bigmodels.serving.settings import ENV_SERVE_PORT
    from tests.conftest import server_env

    home = tmp_path / "home"
    # the app's own embedded head, started cold; the service on a port no other suite holds
    env = {**server_env(), runtime.ENV_RAY_ADDRESS: "", ENV_SERVE_PORT: str(free_port())}
    with StreamlitServer(home, env) as server:
        context = chromium.new_context(viewport=VIEWPORT)
        try:
            yield AppPage(context, server)
        finally:
            context.close()
            runtime.stop_embedded(home)


def visible(page, text_or_pattern, timeout_s: float):
    page.get_by_text(text_or_pattern).filter(visible=True).first.wait_for(timeout=timeout_s * 1000)


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def canvas_ink(page) -> int:
    """Dark pixels on the sandbox's drawing canvas: fabric.js draws the strokes on its
    ``dc-canvas lower-canvas`` (inside the component's shadow root, which locators pierce)."""
    return page.locator("canvas.dc-canvas.lower-canvas").evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 128 && d[i] + d[i + 1] + d[i + 2] < 200) n++;
                  return n; }""")


def launch(page, lang: str, **settings) -> None:
    if settings:
        open_settings(page, lang)
        for name, value in settings.items():
            box = page.get_by_label(translate(f"launcher.form.{name}", lang), exact=True)
            box.fill(str(value))
            box.press("Tab")
    page.get_by_role("button", name=translate("launcher.form.submit", lang), exact=True).click()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_presenter_walks_the_whole_demo_unbroken(fresh, lang):
    app, clock, query = fresh, Clock(lang), f"lang={lang}"
    store = RunStore(app.server.home)
    try:
        service = walk(app, clock, store, lang, query)
    except BaseException:
        app.screenshot(f"presenter-{lang}-failed")
        raise
    finally:
        print("\n" + clock.report())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"presenter-journey-{lang}.json").write_text(json.dumps(clock.steps, indent=1))
    # nothing but the app and the model service it started (its /docs): no CDN, no other host
    assert [u for u in app.foreign_requests() if not u.startswith(service + "/")] == []


def walk(app, clock: Clock, store: RunStore, lang: str, query: str) -> str:
    """The demo, step by step; returns the model service's URL."""
    page = app.page
    # 1. The first launch on a fresh server: the cluster starts when the launcher opens, and says so.
    t0 = time.monotonic()
    app.open("", query=query, timeout=TIMEOUT * 1000)  # the presenter opens the app: its home page
    clock.step("home page drawn (a fresh server's first visit)", t0)
    t0 = time.monotonic()
    page.get_by_role("link", name=translate("nav.launcher", lang)).first.click()
    # Shown while the cluster starts (it goes once the cluster is ready): the first launch is
    # never silent. How soon is printed, not asserted: a busy machine draws later.
    visible(page, pattern("launcher.startup.notice", lang, phase=".+", seconds=r"\d+"), 60)
    clock.step("launcher clicked -> cluster-start message", t0)
    app.screenshot(f"presenter-{lang}-1-cluster-starting")
    t0 = time.monotonic()
    launch(page, lang)  # the quick demo, as it comes
    run = wait_for(lambda: next(iter(store.list_runs()), None), 60, what="the queued run")
    visible(page, pattern("launcher.live.progress", lang, step=r"[1-9]\d*", total=r"\d+", percent=".+", eta=".+"),
            300)
    clock.step("Launch (cold cluster) -> first step shown", t0)
    page.locator(CHART_SELECTOR).first.wait_for(timeout=120_000)
    clock.step("Launch -> live curves drawn", t0)
    wait_for(lambda: store.get(run.id).status not in ("queued", "running"), 300, what="the quick demo to end")
    assert store.get(run.id).status == "succeeded", store.get(run.id).error
    clock.step("Launch -> quick demo finished (submit to result)", t0)
    app.screenshot(f"presenter-{lang}-2-quick-demo")

    # 2. A longer run, watched in the sandbox across two epochs.
    t0 = time.monotonic()
    app.open("launcher", query=query, timeout=TIMEOUT * 1000)
    launch(page, lang, epochs=12, seed=7)
    watched = wait_for(lambda: next((r for r in store.list_runs() if r.id != run.id), None), 60, what="a second run")
    wait_for(lambda: store.get(watched.id).epoch >= 1, 300, what="its first epoch")
    clock.step("second run launched -> first epoch on record", t0)
    t0 = time.monotonic()
    page = app.open("sandbox", query=query, timeout=TIMEOUT * 1000)
    picker = page.get_by_label(translate("sandbox.model.source", lang), exact=True).first  # the CNN's
    picker.click()
    page.keyboard.type(watched.id)  # the picker filters its options as one types
    page.get_by_role("option", name=translate("sandbox.card.run", lang, run=watched.id)).wait_for(timeout=60_000)
    page.keyboard.press("Enter")
    app.wait_idle(TIMEOUT * 1000)
    assert watched.id in picker.input_value()
    canvas = page.locator("canvas").last
    stroke(page, canvas.bounding_box(), [(140, 40), (140, 240)])  # a 1
    label = translate("sandbox.result.prediction", lang)
    page.locator('[data-testid="stMetric"]').filter(has_text=label).nth(2).wait_for(timeout=TIMEOUT * 1000)
    ink = canvas_ink(page)
    assert ink > 100
    clock.step("sandbox opened, run picked, digit drawn and answered", t0)
    t0 = time.monotonic()
    picked_at = store.get(watched.id).epoch
    for _ in range(2):  # two epochs land while the presenter watches
        epoch = store.get(watched.id).epoch
        wait_for(lambda: store.get(watched.id).epoch > epoch or store.get(watched.id).status != "running", 240,
                 what="the next epoch")
        visible(page, translate("sandbox.card.live", lang, epoch=store.get(watched.id).epoch), 60)
        assert watched.id in picker.input_value(), "the picker fell back when an epoch landed"
        assert canvas_ink(page) == ink, "the canvas was cleared when an epoch landed"
    assert store.get(watched.id).epoch >= picked_at + 2
    clock.step("two epochs landed, picker and drawing kept", t0)
    app.screenshot(f"presenter-{lang}-3-sandbox-live")
    store.request_cancel(watched.id)  # the demo moves on; the machine's two cores go to the service

    # 3. The model service: started and deployed, the page updating by itself.
    page = app.open("service", query=query, timeout=TIMEOUT * 1000)
    t0 = time.monotonic()
    page.get_by_role("button", name=translate("service.start.button", lang), exact=True).click()
    running = pattern("service.running", lang, url=r"\S+", docs=r"\S+")
    visible(page, running, 300)  # no reload: the page redraws when the gateway is up
    clock.step("Start the service -> page shows it running", t0)
    url = re.search(r"http://[\d.]+:\d+", main_text(page)).group(0)
    for batch in (1, 32):
        t0 = time.monotonic()
        box = page.get_by_label(translate("service.deploy.max_batch", lang), exact=True)
        box.fill(str(batch))
        box.press("Tab")
        page.get_by_role("button", name=translate("service.deploy.button", lang), exact=True).click()
        deployed = pattern("service.deployments.row", lang, id="cnn", source=".+", version=".+", accuracy=".+",
                           running="1", target="1", device=".+", batch=str(batch), wait=".+", status=".+")
        visible(page, deployed, 300)
        clock.step(f"Deploy at batch <= {batch} -> page shows it running", t0)
        t0 = time.monotonic()
        page.get_by_role("button", name=translate("service.load.button", lang), exact=True).click()
        rows = page.locator('[data-testid="stDataFrame"]').filter(has_text=f"b{batch}/")
        rows.first.wait_for(timeout=120_000)
        clock.step(f"load run at batch <= {batch} (capacity) -> its row", t0)
    app.screenshot(f"presenter-{lang}-4-service-runs")
    page = app.open("service", query=query, timeout=TIMEOUT * 1000)  # a reload keeps the runs side by side
    both = page.locator('[data-testid="stDataFrame"]').filter(has_text="b1/").filter(has_text="b32/")
    both.first.wait_for(timeout=60_000)  # one table, both runs
    app.screenshot(f"presenter-{lang}-5-after-reload")

    # 4. The API's documentation, offline.
    t0 = time.monotonic()
    page.goto(f"{url}/docs", wait_until="domcontentloaded")
    page.locator(".swagger-ui .information-container").wait_for(timeout=60_000)
    page.get_by_text("/v1/models/{model_id}/predict").first.wait_for(timeout=60_000)
    clock.step("/docs rendered", t0)
    app.screenshot(f"presenter-{lang}-6-docs")
    return url
