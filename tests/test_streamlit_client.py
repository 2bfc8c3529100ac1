"""The browserless Streamlit client (bigmodels/harness/streamlit_client.py) against the
live app: if it gets the protocol wrong, the load benchmark built on it measures
nothing, so every step here checks what the app put on screen.

Marked ``browser`` with the other live-app tests (it starts ``streamlit run``),
though it needs no Chromium.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import string

import pytest

from bigmodels.data.mnist import ENV_DATA_DIR
from bigmodels.i18n import translate
from bigmodels.app.sandbox import ARCHITECTURES
from bigmodels.harness.server import StreamlitServer
from bigmodels.harness.streamlit_client import StreamlitSession
from tests.conftest import mnist_dir

pytestmark = pytest.mark.browser

TIMEOUT = 300  # a first run loads torch and three models on a shared 2-core machine
BUSY = translate("comparison.working", "en").split(":")[0]  # "Working in the background"


def en(key: str, **values) -> str:
    return translate(key, "en", **values)


def pattern(key: str) -> re.Pattern:
    """The English catalogue text of ``key`` with its {fields} as named groups."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(en(key)):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(f"(?P<{name}>.+?)")
    return re.compile("".join(parts) + "$", re.S)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    folder = mnist_dir()
    env = {ENV_DATA_DIR: str(folder)} if folder is not None else {}
    with StreamlitServer(tmp_path_factory.mktemp("bigmodels-home"), env) as server:
        yield server


def check_sandbox_answers(s: StreamlitSession) -> int:
    """The test digit's caption, one right/wrong line per model naming that
    digit's true label, a prediction per model, and the verdict. Returns the label."""
    captions = [m.body for m in s.find("markdown") if pattern("sandbox.random.caption").match(m.body)]
    assert len(captions) == 1, [m.body for m in s.find("markdown")]
    label = int(pattern("sandbox.random.caption").match(captions[0])["label"])
    answers = [m.body for m in s.find("markdown")
               if m.body in (en("sandbox.result.correct", label=label), en("sandbox.result.wrong", label=label))]
    assert len(answers) == len(ARCHITECTURES) == 3, [m.body for m in s.find("markdown")]
    predictions = [m.body for m in s.find("metric") if m.label == en("sandbox.result.prediction")]
    assert len(predictions) == 3 and all(p in "0123456789" and len(p) == 1 for p in predictions), predictions
    right = sum(a == en("sandbox.result.correct", label=label) for a in answers)
    assert right == sum(int(p) == label for p in predictions)
    verdicts = [a.body for a in s.find("alert")
                if pattern("sandbox.agree").match(a.body) or pattern("sandbox.disagree").match(a.body)]
    assert len(verdicts) == 1, [a.body for a in s.find("alert")]
    return label


def test_sandbox_then_comparison_over_the_websocket(live_app):
    async def scenario():
        async with StreamlitSession(live_app.url, timeout=TIMEOUT) as s:
            times = {"open sandbox": await s.open_page("sandbox")}
            assert s.cookies.get("_streamlit_xsrf", "").startswith("2|")  # the token the websocket carried
            assert s.url_path == "sandbox" and s.app_pages["sandbox"] == s.page_script_hash
            assert [h.body for h in s.find("heading")][0] == en("sandbox.title")
            assert not s.find("metric")  # drawing mode: nothing to answer yet

            radio = s.find_widget("radio", en("sandbox.input.label"))
            times["pick test digits"] = await s.set_widget(radio, en("sandbox.input.random"))
            state = next(w for w in s.widget_states if w.id == radio)
            assert state.string_value == en("sandbox.input.random")
            check_sandbox_answers(s)

            times["next test digit"] = await s.click(s.find_widget("button", en("sandbox.random.next")))
            check_sandbox_answers(s)
            assert not any(w.trigger_value for w in s.widget_states)  # a press is sent once
            assert len(s.media_urls) >= 4  # the digit and the models' explanation pictures
            assert await s.fetch_media() > 0
            assert s.exceptions == []

            times["open comparison"] = await s.open_page("comparison")
            assert s.url_path == "comparison"
            assert [h.body for h in s.find("heading")][0] == en("comparison.title")
            # nothing of the sandbox stays: its elements or its widget states
            assert not any(w.id.endswith(("-sb_input", "-sb_next")) for w in s.widget_states)
            assert not [m for m in s.find("metric") if m.label == en("sandbox.result.prediction")]
            charts = s.find("plotly_chart")
            assert len(charts) == 4  # 2 scatter charts, learning curves, per-digit accuracy
            assert all(json.loads(c.spec)["data"] for c in charts)
            # peak memory is measured in the background; the page polls in a fragment, then reruns
            times["comparison settled"] = await s.settle(420)
            assert not [a.body for a in s.find("alert") if a.body.startswith(BUSY)]
            assert len(s.find("plotly_chart")) == 4 and s.exceptions == []
            return times

    # On a thread of its own: Playwright's sync API (other tests' fixtures) may hold
    # this thread's event loop, and asyncio.run() refuses to nest.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        times = pool.submit(asyncio.run, scenario()).result()
    print("\n" + "\n".join(f"{name:<20} {seconds:6.2f} s" for name, seconds in times.items()))
