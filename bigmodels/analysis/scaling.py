"""How cost grows with model scale: width and depth knobs for each architecture,
measured on the real module.

Every number here comes from building the model with ``create_model`` and
measuring it (``profile_model``: parameters and multiply-accumulates with
PyTorch's FLOP counter; ``training_memory_bytes``: weights + gradients + Adam
state). The CNN and the Transformer are built on PyTorch's ``meta`` device:
tensors there have shapes but no storage, so an 85-million-parameter encoder is
"built" and run through the FLOP counter in well under a second without
allocating its 340 MB. The LSTM is the exception: on ``meta`` its fused kernel
decomposes into a dozen small ops per row and layer, each passing through the
counter's Python dispatch, which is several times slower than running the real
CPU kernel -- so it is laid out on the CPU without random initialisation.
tests/test_scaling.py checks that these counts equal those of the ordinary,
initialised CPU module for small sizes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from bigmodels.formatting import format_count_in, format_si_bytes, log_axis
from bigmodels.models.profile import profile_model, training_memory_bytes
from bigmodels.models.registry import create_model, make_config

# The CNN's stack is two conv+pool stages (a 28x28 digit leaves room for no
# more 5x5 ones), so its depth knob is the number of dense layers after them.
LENET_CONV = (6, 16)
LENET_DENSE = (120, 84)


@dataclass(frozen=True)
class ScaleKnobs:
    """What "width" and "depth" mean for one architecture, and their ranges."""

    model: str
    preset: str
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    default_width: int
    default_depth: int
    overrides: Callable[[int, int], dict[str, Any]]


def _cnn_overrides(width: int, depth: int) -> dict[str, Any]:
    scale = width / LENET_CONV[0]  # width = channels of the first convolution (LeNet: 6)
    dense = [LENET_DENSE[0]] + [LENET_DENSE[1]] * (depth - 1)
    return {"conv_channels": tuple(max(1, round(c * scale)) for c in LENET_CONV),
            "fc_sizes": tuple(max(1, round(d * scale)) for d in dense)}


def _lstm_overrides(width: int, depth: int) -> dict[str, Any]:
    return {"hidden_size": width, "num_layers": depth}


def _transformer_overrides(width: int, depth: int) -> dict[str, Any]:
    # 64-wide heads, as in ViT-Base (768 = 12 x 64): the head count grows with width.
    return {"dim": width, "depth": depth, "heads": max(1, width // 64)}


KNOBS: dict[str, ScaleKnobs] = {
    "cnn": ScaleKnobs("cnn", "default", widths=(3, 6, 12, 24, 48, 96, 192), depths=(1, 2, 3, 4, 5, 6),
                      default_width=6, default_depth=2, overrides=_cnn_overrides),
    "lstm": ScaleKnobs("lstm", "default", widths=(16, 32, 64, 128, 256, 512, 1024),
                       depths=(1, 2, 3, 4, 6, 8), default_width=128, default_depth=2, overrides=_lstm_overrides),
    # The "article" preset is the source article's 768-wide encoder (ViT-Base shape:
    # MLP 4x dim, 4x4 patches); scaling its width and depth keeps that shape.
    "transformer": ScaleKnobs("transformer", "article", widths=(64, 128, 256, 384, 512, 768, 1024),
                              depths=(1, 2, 4, 6, 8, 12, 16, 24), default_width=768, default_depth=12,
                              overrides=_transformer_overrides),
}

# The article's model, marked on the Transformer's curves.
ARTICLE_REFERENCE = {"model": "transformer", "width": 768, "depth": 12}


@dataclass(frozen=True)
class ScalePoint:
    model: str
    width: int
    depth: int
    parameters: int
    macs_per_image: int
    weight_bytes: int
    training_bytes: int  # weights + gradients + Adam's two moments
    config: dict[str, Any]


def knob_overrides(model: str, width: int, depth: int) -> dict[str, Any]:
    knobs = KNOBS[model]
    if width < 1 or depth < 1:
        raise ValueError(f"{model}: width and depth must be at least 1 (got {width}, {depth})")
    return knobs.overrides(width, depth)


# Where each architecture is measured (see the module docstring).
MEASURE_DEVICE = {"cnn": "meta", "lstm": "cpu", "transformer": "meta"}


def build(model: str, width: int, depth: int, device: str | None = None) -> torch.nn.Module:
    """The real module at this width and depth, on ``meta`` (shapes, no storage)
    or laid out on the CPU with zeros instead of a random initialisation (the
    values do not change any count, and filling a few hundred MB with random
    numbers would be most of the cost)."""
    device = device or MEASURE_DEVICE[model]
    overrides = knob_overrides(model, width, depth)
    make_config(model, KNOBS[model].preset, **overrides)  # validate before building anything
    with torch.device("meta"):
        module = create_model(model, KNOBS[model].preset, **overrides)
    if device != "meta":
        module = module.to_empty(device=device)
        with torch.no_grad():
            for tensor in module.parameters():
                tensor.zero_()
    return module


@functools.lru_cache(maxsize=512)
def measure(model: str, width: int, depth: int) -> ScalePoint:
    """Parameters, MACs per image, weight and training memory, measured on the module."""
    module = build(model, width, depth)
    profile = profile_model(module)
    config = make_config(model, KNOBS[model].preset, **knob_overrides(model, width, depth))
    return ScalePoint(
        model=model, width=width, depth=depth,
        parameters=profile.parameters,
        macs_per_image=profile.macs_per_image,
        weight_bytes=profile.weight_bytes,
        training_bytes=training_memory_bytes(module, "adam")["total"],
        config={k: v for k, v in vars(config).items()},
    )


def width_sweep(model: str, depth: int) -> list[ScalePoint]:
    return [measure(model, w, depth) for w in KNOBS[model].widths]


def depth_sweep(model: str, width: int) -> list[ScalePoint]:
    return [measure(model, width, d) for d in KNOBS[model].depths]


def growth_factor(points: list[ScalePoint], key: str) -> float:
    """How many times ``key`` grows from the first point to the last of a sweep."""
    first, last = getattr(points[0], key), getattr(points[-1], key)
    return last / first if first else float("inf")


# ------------------------------------------------------------------ figures
METRICS = ("parameters", "macs_per_image", "training_bytes")
METRIC_TICKS = {"parameters": format_count_in, "macs_per_image": format_count_in, "training_bytes": format_si_bytes}


def growth_figure(width_points: list[ScalePoint], depth_points: list[ScalePoint], current: ScalePoint,
                  labels: dict[str, str], reference: ScalePoint | None = None) -> go.Figure:
    """Two rows (grow the width; grow the depth) by three columns (parameters,
    MACs, training memory), log-scaled, with the chosen model and the article's
    model marked. ``labels`` holds the translated titles."""
    fig = make_subplots(rows=2, cols=3, horizontal_spacing=0.07, vertical_spacing=0.24,
                        subplot_titles=[labels[m] for m in METRICS] * 2)
    for row, points, axis in ((1, width_points, "width"), (2, depth_points, "depth")):
        xs = [getattr(p, axis) for p in points]
        for col, metric in enumerate(METRICS, start=1):
            fig.add_trace(go.Scatter(x=xs, y=[getattr(p, metric) for p in points], mode="lines+markers",
                                     line={"color": "#3b5bdb"}, name=labels[axis], showlegend=False,
                                     hovertemplate=f"{labels[axis]} %{{x}}<br>%{{y:,.0f}}<extra></extra>"),
                          row=row, col=col)
            fig.add_trace(go.Scatter(x=[getattr(current, axis)], y=[getattr(current, metric)], mode="markers",
                                     marker={"size": 13, "color": "#e8590c", "symbol": "circle"},
                                     name=labels["current"], showlegend=row == 1 and col == 1,
                                     hovertemplate=f"{labels['current']}: %{{y:,.0f}}<extra></extra>"),
                          row=row, col=col)
            if reference is not None and ((axis == "width" and reference.depth == current.depth)
                                          or (axis == "depth" and reference.width == current.width)):
                fig.add_trace(go.Scatter(x=[getattr(reference, axis)], y=[getattr(reference, metric)],
                                         mode="markers", marker={"size": 16, "color": "#2b8a3e", "symbol": "star"},
                                         name=labels["reference"], showlegend=row == 1 and col == 1,
                                         hovertemplate=f"{labels['reference']}: %{{y:,.0f}}<extra></extra>"),
                              row=row, col=col)
            # Ticks at 1, 10, 100 ... (1-2-5 on a short range), written 1K, 1M, 1 GB: never stacked.
            fig.update_xaxes(title_text=labels[axis], row=row, col=col, **log_axis(xs, label=lambda v: f"{v:g}"))
            fig.update_yaxes(row=row, col=col, **log_axis([getattr(p, metric) for p in points],
                                                          label=METRIC_TICKS[metric]))
    fig.update_layout(height=640, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.12})
    return fig


def architectures_figure(sweeps: dict[str, list[ScalePoint]], titles: dict[str, str], labels: dict[str, str],
                         reference: ScalePoint | None = None) -> go.Figure:
    """Parameters against MACs per image for each architecture's width sweep:
    how much compute each parameter buys (a shared conv filter is applied at
    every position, an LSTM weight at every row, a Transformer weight at every
    patch)."""
    colours = {"cnn": "#1971c2", "lstm": "#e8590c", "transformer": "#2b8a3e"}
    fig = go.Figure()
    for name, points in sweeps.items():
        fig.add_trace(go.Scatter(
            x=[p.parameters for p in points], y=[p.macs_per_image for p in points], mode="lines+markers",
            name=titles[name], line={"color": colours.get(name)},
            text=[f"{labels['width']} {p.width}, {labels['depth']} {p.depth}" for p in points],
            hovertemplate="%{text}<br>%{x:,.0f} params<br>%{y:,.0f} MACs<extra>" + titles[name] + "</extra>"))
    if reference is not None:  # named in the legend: a label on the chart would sit on the green line
        fig.add_trace(go.Scatter(x=[reference.parameters], y=[reference.macs_per_image], mode="markers",
                                 marker={"size": 16, "color": "#2b8a3e", "symbol": "star"},
                                 name=labels["reference"]))
    every = [p for points in sweeps.values() for p in points]
    fig.update_xaxes(title_text=labels["parameters"], **log_axis([p.parameters for p in every]))
    fig.update_yaxes(title_text=labels["macs_per_image"], **log_axis([p.macs_per_image for p in every]))
    fig.update_layout(height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "y": -0.2})
    return fig
