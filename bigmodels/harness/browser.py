"""Headless Chromium on a live app (``bigmodels.harness.server``), through Playwright.

Every page's browser test uses it (``tests/conftest.py`` makes the fixtures):

    def test_something(app_page):
        page = app_page.open("sandbox")          # waits until the script run is done
        ...                                      # Playwright calls on ``page``
        app_page.screenshot("sandbox-drawn")     # saved under test-artifacts/screenshots/

``AppPage`` fails when Streamlit shows an exception box, and records every
request the browser makes (``AppPage.requests``) so offline tests can assert
that nothing left the server. Playwright is imported by whoever launches the
browser; this module only needs it to be installed (``browser_available``).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

from bigmodels.harness.server import ARTIFACTS, StreamlitServer

SCREENSHOTS = ARTIFACTS / "screenshots"
#: A plotly chart on a page, whichever way it was drawn (bigmodels.app.charts or st.plotly_chart).
CHART_SELECTOR = ".js-plotly-plot"
CHROMIUM = os.environ.get("BIGMODELS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


class StreamlitExceptionShown(AssertionError):
    """The page showed a Streamlit exception box."""


class AppPage:
    """One browser tab on the app, with request recording and exception checks."""

    def __init__(self, context, server: StreamlitServer):
        self.server = server
        self.context = context
        self.page = context.new_page()
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)

    def open(self, path: str = "", query: str = "", timeout: float = 60_000):
        url = f"{self.server.url}/{path}" + (f"?{query}" if query else "")
        self.page.goto(url, wait_until="domcontentloaded", timeout=timeout)
        self.wait_idle(timeout)
        return self.page

    def wait_idle(self, timeout: float = 60_000) -> None:
        """Wait until the app is connected, has rendered, and no script run is in progress.

        Streamlit marks the app root with ``data-test-script-state`` (initial /
        running / notRunning); a page is done when it stays ``notRunning``."""
        self.page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=timeout)
        deadline = time.monotonic() + timeout / 1000
        quiet_since = None
        while time.monotonic() < deadline:
            state = self.page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
            # right after connecting the state can read notRunning before the first run has
            # started: a page is only done once its script has put something on it
            rendered = self.page.locator('[data-testid="stMain"] [data-testid="stElementContainer"]').count() > 0
            if state != "notRunning" or not rendered:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 0.5:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"the app was still running its script after {timeout / 1000:.0f} s")
        self.assert_no_exception()

    def assert_no_exception(self) -> None:
        boxes = self.page.locator('[data-testid="stException"]')
        if boxes.count():
            text = boxes.first.inner_text()
            self.screenshot("exception")
            raise StreamlitExceptionShown(f"Streamlit showed an exception:\n{text}")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def foreign_requests(self) -> list[str]:
        """Requests to any host but the app's own (offline proof)."""
        own = urlparse(self.server.url).netloc
        return [u for u in self.requests
                if urlparse(u).scheme in ("http", "https", "ws", "wss") and urlparse(u).netloc != own]


def browser_available() -> str | None:
    """None if a browser test can run here, else the reason it cannot."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"no Chromium at {CHROMIUM}"
    return None


def launch_chromium(playwright):
    """Headless Chromium (the system one, ``$BIGMODELS_CHROMIUM``) from a started
    ``sync_playwright()`` or ``async_playwright()``; close it when done."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
