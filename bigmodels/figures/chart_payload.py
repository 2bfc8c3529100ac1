"""How a drawn chart travels to the browser, readable without Streamlit.

``bigmodels.app.charts`` sends each figure either as an ``st.plotly_chart``
element or as its own component's element, drawn by one of the partial plotly.js
bundles below; tests, the protocol client and the benchmarks read which bundle
and which figure off the wire (:func:`figure_of`), so they need neither
Streamlit's runtime nor the app layer.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go


@dataclass(frozen=True)
class Bundle:
    """A partial plotly.js bundle: where Streamlit serves it from ``static/``
    (``server.enableStaticServing``; relative, so it also resolves under a base URL
    path, behind nginx at /bigmodels/) and the trace modules it registers (its
    README; tests/test_charts.py asks the bundle itself)."""

    name: str  # plotly.js's own name for it, as in "plotly.js (cartesian - minified)"
    url: str
    traces: frozenset[str]

    def draws(self, fig: go.Figure) -> bool:
        """Whether this bundle can draw every trace of ``fig``."""
        return all((trace.type or "scatter") in self.traces for trace in fig.data)


#: Every chart of the app but the world map and the parallel coordinates.
CARTESIAN = Bundle("cartesian", "app/static/plotly/plotly-cartesian-4.1.1.min.js", frozenset({
    "bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "image", "pie", "scatter",
    "scatterternary", "violin"}))
#: The case studies' page: its world map and its timeline, so that the page loads one bundle.
GEO = Bundle("geo", "app/static/plotly/plotly-geo-4.1.1.min.js", frozenset({"choropleth", "scatter", "scattergeo"}))
BUNDLES = (CARTESIAN, GEO)

#: The chart component's name in Streamlit's protocol.
COMPONENT_NAME = "bigmodels_chart"


def figure_of(kind: str, element: Any) -> dict[str, Any] | None:
    """The figure a delta's element carries if it is a chart of either kind (``kind`` is
    the element's type in Streamlit's protocol, ``element`` its payload), else None."""
    if kind == "plotly_chart":
        return json.loads(element.spec)
    if kind == "bidi_component" and element.component_name == COMPONENT_NAME:
        return json.loads(element.json)["figure"]
    return None
