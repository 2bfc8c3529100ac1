"""Plotly figures drawn with a lighter plotly.js: ``chart(fig, key=...)``.

``st.plotly_chart`` draws with Streamlit's own chunk of the whole plotly.js
(4.7 MB): a new browser tab evaluates it before its first chart, 768 ms of the
comparison page's 2.9 s in a Chromium trace on the 2-core server (issue 16's
"a new tab on a chart page in <= 3 s"). ``chart`` draws with one of plotly.js's
partial bundles instead (the same plotly.js release; ``static/plotly/SOURCE.md``):
the cartesian one (1.5 MB) for almost every chart, the geo one (1.4 MB) for the
case studies' map and timeline. It does so through a Streamlit component that
renders in the page itself, not in an iframe, so a bundle is evaluated once per
tab however many charts the page has. A figure with a trace its bundle lacks
(parallel coordinates) goes to ``st.plotly_chart`` unchanged.

The look is Streamlit's: its frontend themes every ``st.plotly_chart`` figure
(``frontend/lib/src/components/elements/PlotlyChart/CustomTheme.tsx``), here done
on the server by :func:`themed_spec`, from the app's ``[theme]`` options.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Callable

import pandas  # noqa: F401 -- see below
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from bigmodels.app.session import t
from bigmodels.figures.chart_payload import CARTESIAN, COMPONENT_NAME, Bundle

# pandas is imported with this module, before any chart is drawn, on purpose: plotly's JSON
# encoder reads pandas from sys.modules without importing it, and while another session's
# thread is still importing pandas (st.dataframe imports it lazily) it finds a half-made module
# ("partially initialized module 'pandas' has no attribute 'Series'", tests/test_first_visits.py).

#: plotly.js's own ``layout.height`` when a figure sets none; the element is sized to it before plotly draws.
DEFAULT_HEIGHT_PX = 450
#: What every chart's plotly config starts from, as ``st.plotly_chart`` sets it for a chart without selections.
BASE_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d", "sendDataToCloud"]}
#: The class of the element plotly draws in.
CHART_CLASS = "bigmodels-chart"

# Streamlit's light theme, which [theme] base = "light" in .streamlit/config.toml builds on
# (frontend/lib/src/theme: its grey scale and chart palettes).
_GRAY_30, _GRAY_70, _GRAY_90 = "#e6eaf1", "#808495", "#262730"
_BODY_FONT = '"Source Sans", sans-serif'
DEFAULT_TEXT_COLOUR = "#31333f"  # Streamlit's light theme's, when [theme] sets no textColor
_CATEGORICAL = ("#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a",
                "#6d3fc0", "#d5dae5")
_SEQUENTIAL = ("#e4f5ff", "#c7ebff", "#a6dcff", "#83c9ff", "#60b4ff", "#3d9df3", "#1c83e1", "#0068c9",
               "#0054a3", "#004280")
_DIVERGING = ("#7d353b", "#bd4043", "#ff4b4b", "#ff8c8c", "#ffc7c7", "#a6dcff", "#60b4ff", "#1c83e1",
              "#0054a3", "#004280")
# Streamlit's Python template (the default once Streamlit is imported) puts these placeholder
# colours in every figure, #000001 up; its frontend swaps them for the theme's.
_PLACEHOLDER = re.compile(r"#0000([0-9]{2})\b")

_RENDERER = r"""
// Each bundle once per tab, loaded by the first chart that needs it and shared by every later one.
// Every bundle sets window.Plotly; each chart keeps the one its bundle made.
function plotly(url) {
  const loading = (window.__bigmodelsPlotly = window.__bigmodelsPlotly || {});
  if (!loading[url]) {
    loading[url] = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => { delete loading[url]; reject(new Error(url)); };
      document.head.appendChild(script);
    });
  }
  return loading[url];
}

export default function ({ parentElement, data, setTriggerValue }) {
  const el = parentElement.querySelector(".%(chart_class)s");
  el.style.height = data.height + "px";
  el.bigmodelsSelect = setTriggerValue;  // the latest, for the handler bound once below
  plotly(data.bundle).then((Plotly) => {
    // react() updates a chart in place when a rerun sends it new data (live training curves).
    Plotly.react(el, data.figure.data, data.figure.layout, data.config);
    el.bigmodelsPlotly = Plotly;
    if (!el.bigmodelsResize) {  // the column can change width without the window resizing
      el.bigmodelsResize = new ResizeObserver(() => { if (el.data) Plotly.Plots.resize(el); });
      el.bigmodelsResize.observe(el);
    }
    if (data.selectable && !el.bigmodelsClicks) {
      // The shape st.plotly_chart's point selections have: {"selection": {"points": [...]}} in session state.
      el.bigmodelsClicks = true;
      el.on("plotly_click", (event) => el.bigmodelsSelect("selection", { points: event.points.map((point) => ({
        curve_number: point.curveNumber, point_index: point.pointIndex,
        location: point.location, x: point.x, y: point.y })) }));
    }
  }).catch(() => { el.style.height = "auto"; el.textContent = data.unavailable; });  // no empty box below it
  return () => {
    if (el.bigmodelsResize) el.bigmodelsResize.disconnect();
    if (el.bigmodelsPlotly) el.bigmodelsPlotly.purge(el);
  };
}
""" % {"chart_class": CHART_CLASS}

_COMPONENT = st.components.v2.component(COMPONENT_NAME, html=f'<div class="{CHART_CLASS}"></div>', js=_RENDERER,
                                        isolate_styles=False)  # plotly styles its modebar from the page's <head>


def chart(fig: go.Figure, *, key: str, config: dict[str, Any] | None = None, bundle: Bundle = CARTESIAN,
          on_select: Callable[[], None] | None = None) -> None:
    """Draw ``fig`` stretched to its container: with ``bundle`` when it has every trace
    of the figure, else with ``st.plotly_chart``. ``config`` is plotly's, over
    :data:`BASE_CONFIG`. With ``on_select``, a click on a point is a selection, read
    from ``st.session_state[key]`` as ``st.plotly_chart`` keeps one, then ``on_select()``."""
    config = BASE_CONFIG | (config or {})
    if not bundle.draws(fig):
        if on_select is None:
            st.plotly_chart(fig, key=key, config=config)
        else:
            st.plotly_chart(fig, key=key, config=config, on_select=on_select, selection_mode="points")
        return
    data = {"figure": themed_spec(fig), "config": config, "bundle": bundle.url, "selectable": on_select is not None,
            "height": fig.layout.height or DEFAULT_HEIGHT_PX, "unavailable": t("app.chart_unavailable", url=bundle.url)}
    if on_select is None:
        _COMPONENT(key=key, data=data)
    else:
        _COMPONENT(key=key, data=data, on_selection_change=on_select)


def themed_spec(fig: go.Figure) -> dict[str, Any]:
    """``fig`` as plotly.js takes it, themed as Streamlit themes ``st.plotly_chart``:
    the template's placeholder colours replaced and the theme's layout merged over
    its own, and the title in bold. Of the template's per-trace defaults only those
    of the figure's trace types are kept (they are most of a small figure's bytes)."""
    spec = json.loads(pio.to_json(fig, validate=False))
    layout = spec.setdefault("layout", {})
    template = layout.get("template") or {}
    used = {trace.get("type", "scatter") for trace in spec.get("data", [])}
    template["data"] = {kind: value for kind, value in (template.get("data") or {}).items() if kind in used}
    colours = _placeholder_colours()  # they are in the template only, a few kB: replaced in its text
    template = json.loads(_PLACEHOLDER.sub(lambda m: colours.get(int(m.group(1)), m.group(0)), json.dumps(template)))
    _merge(template.setdefault("layout", {}), _theme_layout())
    layout["template"] = template
    title = layout.get("title")
    if isinstance(title, dict) and title.get("text") and not str(title["text"]).startswith("<b>"):
        title["text"] = f"<b>{title['text']}</b>"
    return spec


def _merge(into: dict, over: dict) -> None:
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(into.get(name), dict):
            _merge(into[name], value)
        else:
            into[name] = value


@lru_cache(maxsize=1)
def _placeholder_colours() -> dict[int, str]:
    # The numbering of streamlit.elements.lib.streamlit_plotly_theme: 1-10 categorical,
    # 11-20 sequential, 21-30 diverging; the rest belong to traces the bundle lacks.
    colours = {}
    for first, palette in ((1, _CATEGORICAL), (11, _SEQUENTIAL), (21, _DIVERGING)):
        colours |= {first + i: colour for i, colour in enumerate(palette)}
    return colours


def _theme_option(name: str, default: str) -> str:
    return st.get_option(f"theme.{name}") or default


def _rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red}, {green}, {blue}, {alpha})"


@lru_cache(maxsize=1)
def _theme_layout() -> dict[str, Any]:
    """The layout Streamlit's frontend merges into a figure's template, in px
    (12 px is its theme's "twoSm" font size, 14 "sm", 16 "md")."""
    text = _theme_option("textColor", DEFAULT_TEXT_COLOUR)
    background = _theme_option("backgroundColor", "#ffffff")
    small, axis_title = {"color": _GRAY_70, "size": 12}, {"font": {"color": _GRAY_70, "size": 14}}
    return {
        "font": {"color": _GRAY_70, "family": _BODY_FONT, "size": 12, "weight": 400},
        "title": {"font": {"family": _BODY_FONT, "size": 16, "color": text}, "pad": {"l": 4}, "xanchor": "left", "x": 0},
        "legend": {"title": {"font": small, "side": "top"}, "valign": "top", "bordercolor": "transparent",
                   "borderwidth": 0, "font": {"size": 12, "color": _GRAY_90}},
        "paper_bgcolor": background, "plot_bgcolor": background,
        "yaxis": {"ticklabelposition": "outside", "zerolinecolor": _GRAY_30, "title": axis_title | {"standoff": 24},
                  "tickcolor": _GRAY_30, "tickfont": small, "gridcolor": _GRAY_30, "minor": {"gridcolor": _GRAY_30},
                  "automargin": True},
        "xaxis": {"zerolinecolor": _GRAY_30, "gridcolor": _GRAY_30, "showgrid": False, "tickfont": small,
                  "tickcolor": _GRAY_30, "title": axis_title | {"standoff": 20}, "minor": {"gridcolor": _GRAY_30},
                  "zeroline": False, "automargin": True},
        "margin": {"pad": 8, "r": 0, "l": 0},
        "hoverlabel": {"bgcolor": background, "bordercolor": _rgba(text, 0.2),
                       "font": {"color": _GRAY_70, "family": _BODY_FONT, "size": 12}},
        "coloraxis": {"colorbar": {"thickness": 16, "xpad": 24, "ticklabelposition": "outside",
                                   "outlinecolor": "transparent", "outlinewidth": 8, "len": 0.75, "y": 0.5745,
                                   "title": axis_title, "tickfont": small}},
    }
