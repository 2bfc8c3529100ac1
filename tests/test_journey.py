"""The whole app as a new user walks it, recorded request by request.

home -> comparison -> launch a short run -> watch it finish -> use it in the
sandbox -> draw a digit -> read the case studies in Chinese. Every request the
browser makes is recorded; any request to a host other than the app's own fails
the test (no CDN fonts, icons, topojson, telemetry or model downloads).
Screenshots of each step land in test-artifacts/screenshots/journey-*.png.
"""
import time

import pytest

from bigmodels.base.i18n import translate
from bigmodels.runs.store import RunStore
from tests.test_launcher_browser import open_settings
from tests.test_sandbox_browser import TIMEOUT, stroke, wait_for_predictions

pytestmark = [pytest.mark.browser, pytest.mark.server]  # starts its own app server


def main_text(page):
    return page.locator('[data-testid="stMain"]').inner_text()


@pytest.fixture
def journey_page(chromium, tmp_path):
    """A server of its own: the run this journey launches must not show up in other tests."""
    from bigmodels.harness.browser import AppPage
    from bigmodels.harness.server import StreamlitServer
    from tests.conftest import server_env

    with StreamlitServer(tmp_path / "home", server_env()) as server:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        yield AppPage(context, server)
        context.close()


def test_new_user_journey_stays_on_the_server(journey_page):
    app_page = journey_page
    store = RunStore(app_page.server.home)
    page = app_page.open()
    assert translate("home.title", "en") in main_text(page)
    app_page.screenshot("journey-1-home")

    page = app_page.open("comparison", timeout=TIMEOUT * 1000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=TIMEOUT * 1000)
    app_page.screenshot("journey-2-comparison")

    page = app_page.open("launcher", timeout=TIMEOUT * 1000)
    open_settings(page)
    for label, value in {"Epochs": 1, "Batch size": 64, "Training images": 2000, "Seed": 2024}.items():
        box = page.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Tab")
    page.get_by_role("button", name=translate("launcher.form.submit", "en")).click()
    app_page.wait_idle(TIMEOUT * 1000)
    run = next(r for r in store.list_runs() if r.config["seed"] == 2024)
    app_page.screenshot("journey-3-launched")
    deadline = time.monotonic() + 300
    while store.get(run.id).status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
    finished = store.get(run.id)
    assert finished.status == "succeeded", (finished.status, finished.error)
    page = app_page.open("launcher", timeout=TIMEOUT * 1000)
    assert run.id in main_text(page)
    app_page.screenshot("journey-4-finished")

    page = app_page.open("sandbox", timeout=TIMEOUT * 1000)
    page.get_by_role("heading", name=translate("sandbox.models.title", "en")).wait_for(timeout=TIMEOUT * 1000)
    app_page.wait_idle(TIMEOUT * 1000)
    source = page.get_by_label(translate("sandbox.model.source", "en"), exact=True).first  # the CNN column
    source.click()
    page.keyboard.type(run.id)  # the picker filters its options as one types
    page.get_by_role("option", name=f"run {run.id}", exact=False).wait_for(timeout=30_000)
    page.keyboard.press("Enter")
    app_page.wait_idle(TIMEOUT * 1000)
    assert run.id in source.input_value()  # the CNN column now uses the run's weights
    canvas = page.locator("canvas").last
    canvas.wait_for(timeout=TIMEOUT * 1000)
    stroke(page, canvas.bounding_box(), [(140, 40), (140, 240)])  # a 1
    answers = wait_for_predictions(app_page, page, 3)
    assert len(answers) == 3
    app_page.screenshot("journey-5-sandbox")

    page = app_page.open("cases", query="lang=zh", timeout=TIMEOUT * 1000)
    assert translate("cases.title", "zh") in main_text(page)
    page.locator(".js-plotly-plot .geo g.layer.countries path").wait_for(state="attached", timeout=30_000)
    app_page.screenshot("journey-6-cases-zh")

    assert app_page.foreign_requests() == []
    assert any("/_stcore/" in r for r in app_page.requests)  # the recording did see the app's own traffic
