"""The write-ups' charts: the case-study map and timeline, and the challenges' datasets
(training compute, tokens, prices) with their points labelled so none covers another.
What they show comes from ``bigmodels.content``; the words from the catalogues."""
from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go

from bigmodels.base.i18n import translate
from bigmodels.content.cases import MODALITIES, WEIGHTS, Case
from bigmodels.content.challenges import Dataset
from bigmodels.content.views import country_name, format_scientific, label
from bigmodels.figures.labels import place_labels

#: Where the app serves the plotly topojson files (see static/topojson/SOURCE.md).
#: Relative, so that it also works when Streamlit runs under a base URL path:
#: plotly.js fetches ``TOPOJSON_URL + "world_110m.json"`` relative to the page.
TOPOJSON_URL = "app/static/topojson/"
PLOTLY_CONFIG = {"topojsonURL": TOPOJSON_URL, "displaylogo": False}

BASIS_COLOURS = {"reported": "#1f77b4", "estimated": "#ff7f0e", "derived": "#2ca02c"}
BASIS_SYMBOLS = {"reported": "circle", "estimated": "diamond", "derived": "square"}


def world_map_figure(cases: Sequence[Case], lang: str) -> go.Figure:
    """Choropleth of the number of cases per country (ISO-3 locations).

    Render with ``config=PLOTLY_CONFIG`` so plotly.js loads the map from the
    app's own static folder instead of its CDN.
    """
    by_country: dict[str, list[Case]] = {}
    for c in cases:
        by_country.setdefault(c.country, []).append(c)
    codes = sorted(by_country)
    hover = []
    for code in codes:
        names = "<br>".join(f"• {c.name[lang]} ({c.year})" for c in sorted(by_country[code], key=lambda c: c.year))
        hover.append(f"<b>{country_name(code, lang)}</b><br>{names}")
    fig = go.Figure(
        go.Choropleth(
            locations=codes,
            locationmode="ISO-3",
            z=[len(by_country[code]) for code in codes],
            text=hover,
            hovertemplate="%{text}<extra></extra>",
            colorscale=[[0.0, "#9ecae1"], [1.0, "#08306b"]],
            zmin=1,
            zmax=max([len(v) for v in by_country.values()] + [2]),
            marker_line_color="#555",
            marker_line_width=0.5,
            colorbar_title_text=translate("cases.map.colorbar", lang),
        )
    )
    fig.update_geos(
        scope="world",
        resolution=110,
        projection_type="natural earth",
        projection_rotation_lon=0,
        center={"lon": 0, "lat": 15},
        lonaxis_range=[-180, 180],
        lataxis_range=[-58, 85],
        showcountries=True,
        countrycolor="#bbb",
        showcoastlines=True,
        coastlinecolor="#999",
        showland=True,
        landcolor="#f2f2f2",
        showframe=False,
    )
    fig.update_layout(
        title_text=translate("cases.map.title", lang, n=len(cases), countries=len(codes)),
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        height=460,
    )
    return fig


MODALITY_COLOURS = {
    "text": "#1f77b4", "code": "#ff7f0e", "image": "#2ca02c", "speech": "#d62728",
    "biology": "#9467bd", "weather": "#17becf", "translation": "#8c564b", "multimodal": "#e377c2",
    "video": "#bcbd22",
}


def timeline_figure(cases: Sequence[Case], lang: str) -> go.Figure:
    """One row per case, ordered by year; colour = modality, circle = open weights,
    diamond = closed weights."""
    ordered = sorted(cases, key=lambda c: (c.year, c.name[lang].casefold()))
    row_labels = [c.name[lang] for c in ordered]
    fig = go.Figure()
    for modality in MODALITIES:
        group = [c for c in ordered if c.modality == modality]
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[c.year for c in group],
            y=[c.name[lang] for c in group],
            mode="markers",
            marker={
                "symbol": ["circle" if c.weights == "open" else "diamond" for c in group],
                "size": 13,
                "color": MODALITY_COLOURS[modality],
                "line": {"width": 1, "color": "#333"},
            },
            customdata=[
                [c.organisation[lang], country_name(c.country, lang), label(WEIGHTS, c.weights, lang)] for c in group
            ],
            hovertemplate=(
                "<b>%{y}</b> (%{x})<br>%{customdata[0]} · %{customdata[1]}<br>%{customdata[2]}<extra></extra>"
            ),
            name=label(MODALITIES, modality, lang),
        ))
    years = [c.year for c in cases] or [0]
    fig.update_layout(
        title_text=translate("cases.timeline.title", lang),
        xaxis={"title": translate("cases.col.year", lang), "dtick": 1, "range": [min(years) - 0.5, max(years) + 0.5]},
        yaxis={"categoryorder": "array", "categoryarray": row_labels[::-1], "automargin": True},
        height=max(320, 26 * len(ordered) + 140),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"title": {"text": translate("cases.col.modality", lang)}},
    )
    return fig


DATASET_PLOT_PX = (730, 290)  # inside the axes of a full-width chart at 1280 px with the sidebar open (measured)
DATASET_LABEL_FONT = 10


def dataset_label_positions(dataset: Dataset, xs: Sequence[float], log_y: bool) -> list[str | None]:
    """A text position per row, from the points' places in px on the chart."""
    ys = [math.log10(r.value) if log_y else r.value for r in dataset.rows]
    x_lo, x_hi = min(xs) - 0.5, max(xs) + 0.5
    y_lo, y_hi = min(ys), max(ys)
    pad = (y_hi - y_lo) * 0.08 or 1.0
    width, height = DATASET_PLOT_PX
    points = [((x - x_lo) / (x_hi - x_lo) * width, (y - y_lo + pad) / (y_hi - y_lo + 2 * pad) * height)
              for x, y in zip(xs, ys)]
    return place_labels(points, [r.model for r in dataset.rows], DATASET_PLOT_PX, DATASET_LABEL_FONT,
                        drop_crowded=True)


def dataset_figure(dataset: Dataset, lang: str, log_y: bool = True) -> go.Figure:
    """Scatter of a challenge dataset over time, coloured by where each number comes from."""
    fig = go.Figure()
    # Points of the same year are spread sideways, and each label takes the place
    # around its point where it covers no other label or point.
    same_year: dict[int, list[int]] = {}
    for i, r in enumerate(dataset.rows):
        same_year.setdefault(r.year, []).append(i)
    x_of: dict[int, float] = {}
    for members in same_year.values():
        ordered = sorted(members, key=lambda i: dataset.rows[i].value)
        for k, i in enumerate(ordered):
            x_of[i] = dataset.rows[i].year + (k - (len(ordered) - 1) / 2) * min(0.25, 0.8 / len(ordered))
    label_pos = dict(enumerate(dataset_label_positions(dataset, [x_of[i] for i in range(len(dataset.rows))],
                                                       log_y)))
    for basis in BASIS_COLOURS:
        idx = [i for i, r in enumerate(dataset.rows) if r.basis == basis]
        if not idx:
            continue
        rows = [dataset.rows[i] for i in idx]
        fig.add_trace(go.Scatter(
            x=[x_of[i] for i in idx],
            y=[r.value for r in rows],
            mode="markers+text",
            text=[r.model if label_pos[i] else "" for i, r in zip(idx, rows)],  # a crowded point: named on hover
            textposition=[label_pos[i] or "top center" for i in idx],
            textfont={"size": DATASET_LABEL_FONT},
            marker={"size": 11, "color": BASIS_COLOURS[basis], "symbol": BASIS_SYMBOLS[basis]},
            customdata=[[r.organisation, format_scientific(r.value), r.source.title, r.year, r.model] for r in rows],
            hovertemplate=(
                "<b>%{customdata[4]}</b> (%{customdata[0]}, %{customdata[3]})<br>%{customdata[1]} " + dataset.unit
                + "<br>%{customdata[2]}<extra></extra>"
            ),
            name=translate(f"challenges.basis.{basis}", lang),
        ))
    years = [r.year for r in dataset.rows]
    if dataset.reference is not None:
        ref = dataset.reference
        fig.add_trace(go.Scatter(
            x=[min(years) - 0.5, max(years) + 0.5],
            y=[ref.value, ref.value],
            mode="lines",
            line={"dash": "dash", "color": "#d62728"},
            name=ref.label[lang],
            hovertemplate=ref.label[lang] + "<extra></extra>",
        ))
    fig.update_layout(
        title_text=dataset.title[lang],
        xaxis={"title": translate("challenges.chart.year", lang), "dtick": 1},
        yaxis={
            "title": translate("challenges.chart.value", lang, unit=dataset.unit),
            "type": "log" if log_y else "linear",
            "exponentformat": "power",
        },
        height=460,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
