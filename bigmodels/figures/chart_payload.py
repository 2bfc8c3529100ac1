"""How a drawn chart travels to the browser, readable without Streamlit.

``bigmodels.app.charts`` sends each figure either as an ``st.plotly_chart``
element or as its own component's element; tests, the protocol client and the
load test read the figure back off the wire with :func:`figure_of`, so they need
neither Streamlit's runtime nor the app layer.
"""
from __future__ import annotations

import json
from typing import Any

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
