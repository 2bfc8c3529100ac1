"""The case-study and challenge pages render in both languages and react to input."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bigmodels.content import views
from bigmodels.content.cases import load_cases
from bigmodels.base.i18n import LANGUAGES, translate

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def _run(page: str, lang: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    at.run()
    return at


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_cases_page_renders(lang):
    at = _run("cases.py", lang)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == translate("cases.title", lang)
    cases = load_cases()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[translate("cases.metric.cases", lang)] == str(len(cases))
    # The page says how many cases, countries and continents, and how current the write-ups are;
    # each card gives the date its figures are true for.
    counts = views.summary_counts(cases)
    currency = translate("cases.currency", lang, n=counts["cases"], countries=counts["countries"],
                         continents=counts["continents"], date=views.format_as_of(views.newest_as_of(cases), lang))
    captions = [c.value for c in at.caption]
    assert currency in captions
    dated = [c for c in captions if c.startswith(translate("cases.card.as_of", lang, date="").strip())]
    assert len(dated) == views.CARDS_PER_PAGE
    # One card per case, each with its name as a heading, a page of them at a time.
    def headings():
        return [m.value for m in at.markdown if m.value.startswith("#### ")]

    pages = views.card_pages(len(cases))
    assert len(pages) > 1 and len(headings()) == views.CARDS_PER_PAGE
    newest_year = max(c.year for c in cases)  # newest first by default: the current frontier, not 2021
    assert headings()[0] in {f"#### {c.name[lang]}" for c in cases if c.year == newest_year}
    seen = []
    for page in range(len(pages)):
        at.segmented_control(key=f"cases_cards_page_{len(cases)}").set_value(page).run()
        assert not at.exception
        assert len(headings()) == len(pages[page])
        seen += headings()
    assert sorted(seen) == sorted(f"#### {c.name[lang]}" for c in cases)  # every case once


def test_cases_page_filters_narrow_the_cards():
    at = _run("cases.py", "en")
    at.multiselect(key="cases_modalities").set_value(["weather"]).run()
    assert not at.exception
    weather = [c for c in load_cases() if c.modality == "weather"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cases shown"] == str(len(weather))
    headings = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert sorted(headings) == sorted(f"#### {c.name['en']}" for c in weather)


def test_cases_page_empty_filter_shows_a_message():
    at = _run("cases.py", "en")
    # The only code case (GitHub Copilot) has closed weights.
    at.multiselect(key="cases_modalities").set_value(["code"])
    at.multiselect(key="cases_weights").set_value(["open"]).run()
    assert not at.exception
    assert any(translate("cases.filter.empty", "en") in i.value for i in at.info)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_challenges_page_renders(lang):
    at = _run("challenges.py", lang)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == translate("challenges.title", lang)
    metrics = {m.label: m.value for m in at.metric}
    # Default presets: GPT-3 (6ND = 3.15e23), the ZeRO GPT-2 example (24 GB)
    # and OPT-13B's KV cache (about 1.6 GB for 2,048 tokens).
    assert metrics[translate("challenges.calc.train.flops", lang)] == "3.15 × 10²³"
    assert metrics[translate("challenges.calc.mem.training", lang)] == "24.00 GB"
    assert metrics[translate("challenges.calc.kv.cache", lang)] == "1.68 GB"


def test_challenges_calculator_reports_invalid_input():
    at = _run("challenges.py", "en")
    at.number_input(key="train_n_gpt3").set_value(0.0)
    at.button(key="FormSubmitter:train_form-Estimate").click().run()
    assert not at.exception
    # the field is named in the visitor's language (no internal name since the calculator errors were translated)
    assert any(translate("challenges.calc.field.n_params", "en") in e.value for e in at.error)


def test_challenges_calculator_recomputes():
    at = _run("challenges.py", "en")
    at.selectbox(key="train_preset").set_value("llama31_405b").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Training compute"] == "3.79 × 10²⁵"  # the paper reports 3.8e25


def test_every_catalogue_key_the_pages_use_exists():
    import re

    from bigmodels.analysis import calculators
    from bigmodels.content import views
    from bigmodels.base.i18n import catalogue

    keys: set[str] = set()
    for page in ("cases.py", "challenges.py"):
        keys |= set(re.findall(r'\bt\(\s*"([a-z_.]+)"', (ROOT / "pages" / page).read_text(encoding="utf-8")))
        keys |= set(re.findall(r"\bt\(\s*'([a-z_.]+)'", (ROOT / "pages" / page).read_text(encoding="utf-8")))
    keys |= {f"cases.sort.{k}" for k in views.SORT_KEYS}
    keys |= {f"challenges.calc.conv.{k}" for k in calculators.TRAINING_CONVENTIONS}
    assert len(keys) > 40
    for lang in LANGUAGES:
        assert not keys - catalogue(lang).keys(), (lang, keys - catalogue(lang).keys())


@pytest.mark.parametrize("page", ["home.py", "comparison.py"])
def test_a_bad_data_folder_on_the_server_is_a_message_not_an_exception(page, monkeypatch, tmp_path):
    """The server started with a wrong BIGMODELS_DATA_DIR: the page says so and
    works on the shipped sample instead of showing an exception box."""
    from bigmodels.app import session

    monkeypatch.setenv("BIGMODELS_DATA_DIR", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("BIGMODELS_HOME", str(tmp_path / "home"))
    session._load_data_cached.clear()
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert any("no-such-folder" in e.value and "no such folder" in e.value for e in at.error)
    session._load_data_cached.clear()
