"""The browserless Streamlit client (bigmodels/harness/streamlit_client.py) against the
live app: if it gets the protocol wrong, the load benchmark built on it measures
nothing, so every step here checks what the app put on screen.

Marked ``browser`` with the other live-app tests (it starts ``streamlit run``),
though it needs no Chromium.
"""
from __future__ import annotations

import re

import pytest

from bigmodels.analysis.explain import UNSURE_BELOW
from bigmodels.app.sandbox import ARCHITECTURES
from bigmodels.harness.catalogue import shown
from bigmodels.harness.server import StreamlitServer
from bigmodels.harness.streamlit_client import StreamlitSession
from bigmodels.base.i18n import translate
from tests.conftest import run_async, server_env

pytestmark = [pytest.mark.browser, pytest.mark.server]  # starts its own app server

TIMEOUT = 300  # a first run loads torch and three models on a shared 2-core machine
BUSY = translate("comparison.working", "en").split(":")[0]  # "Working in the background"


def en(key: str, **values) -> str:
    return translate(key, "en", **values)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    with StreamlitServer(tmp_path_factory.mktemp("bigmodels-home"), server_env()) as server:
        yield server


def expected_verdict(predictions: dict[str, int], confidences: dict[str, float]) -> re.Pattern:
    """The verdict the sandbox must show for these answers (architecture -> predicted
    digit and shown confidence, in its columns' order): agreement on the one digit
    -- saying who is unsure when a model is below the threshold --, or every model's answer."""
    if len(set(predictions.values())) > 1:
        answers = ", ".join(en("sandbox.answer_item", model=en(f"sandbox.arch.{arch}"), digit=digit)
                            for arch, digit in predictions.items())
        return shown("sandbox.disagree", answers=answers)
    digit = next(iter(predictions.values()))
    agree, agree_unsure = shown("sandbox.agree", digit=digit), shown("sandbox.agree_unsure", digit=digit)
    # confidences are shown to 0.1%: within that of the threshold either verdict may be meant
    if any(c < UNSURE_BELOW - 0.001 for c in confidences.values()):
        return agree_unsure
    if any(abs(c - UNSURE_BELOW) <= 0.001 for c in confidences.values()):
        return re.compile(f"{agree_unsure.pattern}|{agree.pattern}")
    return agree


def metric_by_model(s: StreamlitSession, label_key: str) -> dict[str, str]:
    """Each column's metric called ``label_key``, by the model named in the column's
    heading (the heading and the metric share the column's place in the delta tree)."""
    headings = {path[:-1]: arch for path, kind, e in s.elements for arch in ARCHITECTURES
                if kind == "markdown" and e.markdown.body == f"#### {en(f'sandbox.arch.{arch}')}"}
    assert len(headings) == len(ARCHITECTURES), [e.markdown.body for _, k, e in s.elements if k == "markdown"]
    found = {}
    for path, kind, e in s.elements:
        if kind == "metric" and e.metric.label == en(label_key):
            arch = next(a for column, a in headings.items() if path[:len(column)] == column)
            assert arch not in found, (arch, e.metric.body)
            found[arch] = e.metric.body
    assert list(found) == list(ARCHITECTURES), found  # one per column, left to right
    return found


def predictions_by_model(s: StreamlitSession) -> dict[str, int]:
    found = metric_by_model(s, "sandbox.result.prediction")
    assert all(re.fullmatch(r"\d", v) for v in found.values()), found
    return {arch: int(v) for arch, v in found.items()}


def confidences_by_model(s: StreamlitSession) -> dict[str, float]:
    found = metric_by_model(s, "sandbox.result.confidence")
    assert all(re.fullmatch(r"\d+\.\d%", v) for v in found.values()), found
    return {arch: float(v[:-1]) / 100 for arch, v in found.items()}


def check_sandbox_answers(s: StreamlitSession) -> dict[str, int]:
    """The test digit's caption, one right/wrong line per model naming that
    digit's true label, a prediction per model, and the one verdict those
    predictions call for, whichever digit came up. Returns the predictions."""
    captions = [m.body for m in s.find("markdown") if shown("sandbox.random.caption").match(m.body)]
    assert len(captions) == 1, [m.body for m in s.find("markdown")]
    label = int(shown("sandbox.random.caption").match(captions[0])["label"])
    correct, wrong = shown("sandbox.result.correct", label=label), shown("sandbox.result.wrong", label=label)
    answers = [m.body for m in s.find("markdown") if correct.match(m.body) or wrong.match(m.body)]
    assert len(answers) == len(ARCHITECTURES) == 3, [m.body for m in s.find("markdown")]
    predictions = predictions_by_model(s)
    assert sum(bool(correct.match(a)) for a in answers) == sum(p == label for p in predictions.values())
    confidences = confidences_by_model(s)
    alerts = [a.body for a in s.find("alert")]
    verdicts = [a for a in alerts if any(shown(k).match(a) for k in ("sandbox.agree", "sandbox.agree_unsure",
                                                                        "sandbox.disagree"))]
    assert len(verdicts) == 1, alerts
    assert expected_verdict(predictions, confidences).match(verdicts[0]), (predictions, confidences, verdicts[0])
    if shown("sandbox.agree_unsure").match(verdicts[0]):  # it names exactly the unsure models
        for arch, c in confidences.items():
            if abs(c - UNSURE_BELOW) > 0.001:
                assert (en(f"sandbox.arch.{arch}") in verdicts[0]) == (c < UNSURE_BELOW), (arch, c, verdicts[0])
    return predictions


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
            charts = s.charts()
            assert len(charts) == 4  # 2 scatter charts, learning curves, per-digit accuracy
            assert all(figure["data"] for figure in charts)
            # peak memory is measured in the background; the page polls in a fragment, then reruns
            times["comparison settled"] = await s.settle(420)
            assert not [a.body for a in s.find("alert") if a.body.startswith(BUSY)]
            assert len(s.charts()) == 4 and s.exceptions == []
            return times

    times = run_async(scenario())
    print("\n" + "\n".join(f"{name:<20} {seconds:6.2f} s" for name, seconds in times.items()))
