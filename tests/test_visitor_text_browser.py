"""What people write about runs (names, tags, notes) reaches every visitor's browser:
it must show as written and make the browser fetch nothing and link nowhere.

A run note's Markdown image made Chromium request its host (a tracking pixel, and a
break of the offline promise), and a URL in a run's name became a link in its
heading. Here a real browser opens the launcher on such a run while a local HTTP
server counts every request it gets."""
from __future__ import annotations

import http.server
import threading

import pytest

from bigmodels.base.formatting import WORD_JOINER
from bigmodels.harness.browser import AppPage
from bigmodels.harness.server import StreamlitServer
from bigmodels.runs.queue import submit
from bigmodels.runs.store import RunStore
from bigmodels.train.config import default_config
from tests.conftest import require_browser

pytestmark = pytest.mark.browser


class _Tracker(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def tracker():
    _Tracker.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Tracker.hits
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_names_tags_and_notes_fetch_nothing_and_link_nowhere(tmp_path, tracker, chromium, lang):
    from bigmodels.base.i18n import translate

    require_browser()
    origin, hits = tracker
    home = tmp_path / "home"
    store = RunStore(home)
    run = submit(store, default_config("cnn", epochs=1, device="cpu")).run
    store.claim(run.id, "w", 1)
    store.finish(run.id, "succeeded")
    name = f"{origin}/name *bold*"
    note = (f"![p]({origin}/pixel.png) and <img src=\"{origin}/html.png\">\n"
            f"see www.example.test or {origin}/link, [click]({origin}/md) :smile:")
    store.set_info(run.id, name=name, tags=[f"{origin}/tag", "a`b"], note=note)

    with StreamlitServer(home) as server:
        context = chromium.new_context(viewport={"width": 1280, "height": 720},
                                       locale="zh-CN" if lang == "zh" else "en-US")
        try:
            app = AppPage(context, server)
            page = app.open("launcher", query=f"run={run.id}&lang={lang}")
            heading = page.locator("h3", has_text="/name")
            heading.first.wait_for(timeout=60_000)
            heading.first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(1500)  # an image would have been requested by now
            app.screenshot(f"launcher-visitor-text-{lang}")
            assert hits == [] and not [u for u in app.requests if u.startswith(origin)], (hits, app.requests)
            shown_title = heading.first.inner_text().replace(WORD_JOINER, "")
            assert shown_title == translate("launcher.live.title", lang, run=name)
            main = page.locator('[data-testid="stMain"]')
            text = main.inner_text().replace(WORD_JOINER, "")  # invisible: see plain_markdown
            assert f"![p]({origin}/pixel.png)" in text and f"[click]({origin}/md) :smile:" in text  # shown as written
            assert "www.example.test" in text and f"{origin}/tag" in text and "a`b" in text
            hrefs = main.locator("a").evaluate_all("links => links.map(a => a.href)")
            assert not [h for h in hrefs if origin in h or "example.test" in h], hrefs
            assert main.locator("img[src*='127.0.0.1']").count() == 0
        finally:
            context.close()
