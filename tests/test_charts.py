"""bigmodels.app.charts: which figures the cartesian bundle draws, Streamlit's theme
applied on the server, the vendored bundle itself, and what a page sends."""
import hashlib
import json
import re
from pathlib import Path

import plotly
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots
from streamlit.testing.v1 import AppTest

from bigmodels.app import charts
from bigmodels.figures.chart_payload import BUNDLES, CARTESIAN, COMPONENT_NAME, GEO

REPO = Path(__file__).resolve().parent.parent


def bundle_file(bundle):
    return REPO / "static" / bundle.url.removeprefix("app/static/")
PLACEHOLDER = re.compile(r"#0000[0-9]{2}\b")


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda bundle: bundle.name)
def test_each_bundle_is_the_plotly_js_that_plotly_bundles_and_the_one_its_source_names(bundle):
    path = bundle_file(bundle)
    version = plotly.offline.get_plotlyjs_version()
    assert f"plotly.js ({bundle.name} - minified) v{version}" in path.read_text(encoding="utf-8")[:200]
    assert version in path.name  # versioned name: a browser may cache it for good
    source = (path.parent / "SOURCE.md").read_text(encoding="utf-8")
    assert hashlib.sha256(path.read_bytes()).hexdigest() in source
    assert (path.parent / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_streamlit_serves_static_files_so_the_bundle_urls_resolve():
    import tomllib
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["enableStaticServing"] is True
    for bundle in BUNDLES:
        assert not bundle.url.startswith("/")  # relative: it also works under a base URL path


@pytest.mark.parametrize("fig, cartesian, geo", [
    (go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), True, True),
    (go.Figure([go.Bar(x=[1], y=[2]), go.Heatmap(z=[[1, 2], [3, 4]])]), True, False),
    (go.Figure(), True, True),  # nothing to draw needs nothing more
    (go.Figure(go.Choropleth(locations=["AUS"], z=[1])), False, True),
    (go.Figure(go.Parcoords(dimensions=[{"values": [1, 2]}])), False, False),
    (go.Figure([go.Scatter(x=[1], y=[1]), go.Scatter3d(x=[1], y=[1], z=[1])]), False, False),  # one is enough
])
def test_a_bundle_draws_only_figures_whose_every_trace_it_has(fig, cartesian, geo):
    assert CARTESIAN.draws(fig) is cartesian
    assert GEO.draws(fig) is geo


def themed(fig):
    import streamlit.elements.plotly_chart  # noqa: F401 -- makes Streamlit's placeholder template the default
    return charts.themed_spec(fig)


def test_themed_spec_leaves_no_placeholder_colour_and_merges_the_theme():
    fig = make_subplots(rows=1, cols=2)
    fig.add_trace(go.Scatter(x=[1, 2], y=[1, 2]), row=1, col=1)
    fig.add_trace(go.Heatmap(z=[[1, 2], [3, 4]]), row=1, col=2)
    fig.update_layout(title="Accuracy", margin=dict(l=10, r=10, t=40, b=10))
    assert PLACEHOLDER.search(fig.to_json())  # Streamlit's template is there to be themed
    spec = themed(fig)
    text = json.dumps(spec)
    assert not PLACEHOLDER.search(text)
    template = spec["layout"]["template"]["layout"]
    assert template["colorway"][0] == "#0068c9"  # Streamlit's first categorical colour
    assert template["xaxis"]["automargin"] and template["yaxis"]["automargin"]  # tick labels are not cut off
    assert template["font"]["family"] == '"Source Sans", sans-serif'
    assert template["title"]["font"]["color"] == charts._theme_option("textColor", charts.DEFAULT_TEXT_COLOUR)
    assert spec["layout"]["title"]["text"] == "<b>Accuracy</b>"
    assert spec["layout"]["margin"] == {"l": 10, "r": 10, "t": 40, "b": 10}  # the figure's own layout wins
    heatmap = spec["layout"]["template"]["data"]["heatmap"][0]
    assert heatmap["colorscale"][0][1] == "#e4f5ff"  # sequential placeholders too


def test_a_title_already_bold_is_left_as_it_is():
    assert themed(go.Figure(layout={"title": "<b>Loss</b>"}))["layout"]["title"]["text"] == "<b>Loss</b>"


PAGE = """
import plotly.graph_objects as go
from bigmodels.app.charts import chart
from bigmodels.figures.chart_payload import GEO
chart(go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"height": 200}), key="line", config={"displayModeBar": False})
chart(go.Figure(go.Parcoords(dimensions=[{"values": [1, 2]}])), key="parallel")
chart(go.Figure(go.Choropleth(locations=["AUS"], z=[1])), key="map", bundle=GEO, on_select=lambda: None)
chart(go.Figure(go.Choropleth(locations=["AUS"], z=[1])), key="map_without_its_bundle", on_select=lambda: None)
"""


def test_a_page_sends_figures_its_bundle_draws_to_the_component_and_the_rest_to_st_plotly_chart():
    at = AppTest.from_string(PAGE).run()
    assert not at.exception
    line, world = at.get("bidi_component")
    assert line.proto.component_name == world.proto.component_name == COMPONENT_NAME
    data = json.loads(line.proto.json)
    assert data["figure"]["data"][0]["y"] == [3, 4]
    assert data["height"] == 200
    assert data["bundle"] == CARTESIAN.url and not data["selectable"]
    assert data["config"] == charts.BASE_CONFIG | {"displayModeBar": False}
    assert data["unavailable"]  # what the element says if the bundle cannot load
    world = json.loads(world.proto.json)
    assert world["bundle"] == GEO.url and world["selectable"]  # clicks come back as selections
    parallel, fallback = at.get("plotly_chart")
    assert json.loads(parallel.proto.spec)["data"][0]["type"] == "parcoords"
    assert list(fallback.proto.selection_mode)  # st.plotly_chart keeps the selection instead
