"""Case studies and challenges in a real browser, in both languages, with every
request that leaves the server blocked: the world map must still draw."""
import pytest

from bigmodels.figures.chart_payload import GEO
from bigmodels.content.cases import default_cases
from bigmodels.base.i18n import translate

pytestmark = pytest.mark.browser


def block_foreign(app_page):
    own = app_page.server.url

    def route(r):
        if r.request.url.startswith(own) or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            r.abort()

    app_page.page.route("**/*", route)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_cases_page_draws_the_map_offline(app_page, lang):
    block_foreign(app_page)
    page = app_page.open("cases", query=f"lang={lang}")
    page.wait_for_selector(".js-plotly-plot .geo g.layer.countries path", timeout=30_000, state="attached")
    # plotly draws all country borders and all land as one path each; without the
    # topojson (fetched from the app itself) they stay empty
    outline = page.evaluate("""() => ['land', 'countries'].map(layer =>
        (document.querySelector(`.js-plotly-plot .geo g.layer.${layer} path`)?.getAttribute('d') || '').length)""")
    assert min(outline) > 10_000, outline
    assert any("/app/static/topojson/world_110m.json" in r for r in app_page.requests)
    # the map and the timeline come from the geo bundle alone, never from Streamlit's whole plotly.js
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
    loaded = [url for url in app_page.requests if "plotly" in url.lower()]
    assert any(url.endswith(GEO.url) for url in loaded) and not [u for u in loaded if "PlotlyChart" in u], loaded
    assert set(page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)")) == GEO.traces
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert translate("cases.title", lang) in body
    app_page.screenshot(f"cases-{lang}")
    assert app_page.foreign_requests() == []


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_challenges_page_renders(app_page, lang):
    block_foreign(app_page)
    page = app_page.open("challenges", query=f"lang={lang}")
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # charts mount after the script run
    assert translate("challenges.title", lang) in page.locator('[data-testid="stMain"]').inner_text()
    app_page.screenshot(f"challenges-{lang}")
    assert app_page.foreign_requests() == []


def test_clicking_a_country_on_the_map_filters_the_cases_and_clear_brings_them_back(app_page):
    cases = default_cases()
    page = app_page.open("cases")
    page.wait_for_selector(".js-plotly-plot .geo path.choroplethlocation", timeout=30_000, state="attached")
    codes = sorted({c.country for c in cases})  # the map's locations, in the order it draws them
    australia = page.locator(".js-plotly-plot .geo path.choroplethlocation").nth(codes.index("AUS"))
    australia.scroll_into_view_if_needed()
    australia.click(force=True)
    app_page.wait_idle()
    main = page.locator('[data-testid="stMain"]')
    expected = translate("cases.country.filtering", "en", country="Australia")
    page.get_by_text(expected).wait_for(timeout=15_000)
    n_aus = sum(c.country == "AUS" for c in cases)
    metric = page.locator('[data-testid="stMetricValue"]').first.inner_text()
    assert metric.strip() == str(n_aus)
    app_page.screenshot("cases-australia")
    page.get_by_role("button", name=translate("cases.country.clear", "en")).click()
    app_page.wait_idle()
    assert expected not in main.inner_text()
    assert page.locator('[data-testid="stMetricValue"]').first.inner_text().strip() == str(len(cases))


def test_search_narrows_the_cases(app_page):
    page = app_page.open("cases")
    box = page.get_by_label(translate("cases.search.label", "en"))
    box.fill("protein")
    box.press("Enter")
    app_page.wait_idle()
    assert "AlphaFold" in page.locator('[data-testid="stMain"]').inner_text()
    assert int(page.locator('[data-testid="stMetricValue"]').first.inner_text()) < len(default_cases())
