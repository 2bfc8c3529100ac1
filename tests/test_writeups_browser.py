"""Case studies and challenges in a real browser, in both languages, with every
request that leaves the server blocked: the world map must still draw."""
import pytest

from bigmodels.i18n import translate

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
