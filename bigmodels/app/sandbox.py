"""Page support for the sandbox: models loaded once per server, and the pictures.

Kept out of ``bigmodels.app.session`` (the lead's) so the sandbox owns its caching. The
picture helpers are pure numpy and tested without Streamlit.
"""
from __future__ import annotations

import contextlib
import html

import numpy as np
import streamlit as st
import torch
from torch import nn

from bigmodels.analysis.explain import read_digit
from bigmodels.figures.pictures import SCALE, belief_picture, digit_picture, heat_picture, maps_picture, png_bytes
from bigmodels.models.checkpoints import model_from_checkpoint
from bigmodels.runs.sources import ModelSource, list_sources
from bigmodels.app.session import language

ARCHITECTURES = ("cnn", "lstm", "transformer")  # the three columns, left to right
# ------------------------------------------------------------------- models
@contextlib.contextmanager
def one_thread():
    """Run torch on one thread inside the block (this script thread only: with
    ATen's OpenMP backend the thread count is per thread; other sessions keep
    theirs). The sandbox does batch-1 work on tiny tensors, where extra threads
    are pure overhead -- and on a CPU shared with training jobs they spin-wait
    for each other: measured here on 2 busy cores, one LSTM answer took 8 s on
    2 threads and 20 ms on 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@st.cache_resource(show_spinner=False, max_entries=24)
def _load(checkpoint: str, mtime_ns: int, size: int) -> nn.Module:
    # mtime and size are part of the key: a re-exported checkpoint is reloaded,
    # an unchanged one is loaded once per server, however many sessions ask.
    del mtime_ns, size
    model = model_from_checkpoint(checkpoint)
    # The first answer and the first explanation pay one-off costs (allocations,
    # autograd's first backward, attention with weights): pay them here, once per
    # server, not in the first stroke a visitor makes.
    warm = torch.zeros(28, 28)
    warm[6:22, 12:16] = 1.0  # a "1"
    with one_thread():
        read_digit(model, warm, with_explanation=True)
    return model


def cached_model(source: ModelSource) -> nn.Module:
    """The model for ``source``; raises ``CheckpointError`` for an unreadable file."""
    stat = source.checkpoint.stat()
    return _load(str(source.checkpoint), stat.st_mtime_ns, stat.st_size)


def sources_by_architecture(sources: list[ModelSource] | None = None) -> dict[str, list[ModelSource]]:
    """Every usable source per architecture, shipped weights first."""
    grouped: dict[str, list[ModelSource]] = {name: [] for name in ARCHITECTURES}
    if sources is None:
        sources = list_sources(language())
    for source in sources:
        if source.model_name in grouped:
            grouped[source.model_name].append(source)
    return grouped


# ------------------------------------------------------------- cached PNGs
# Pictures are encoded once per distinct input (the pixel bytes are the key):
# a rerun that shows the same digit again -- a tab switch, a slider elsewhere --
# sends the same bytes, which Streamlit serves from the same media URL.
def _tensor(data: bytes, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(data, np.float32).reshape(shape).copy())


def _key(x: torch.Tensor) -> tuple[bytes, tuple[int, ...]]:
    x = x.detach().float().cpu().contiguous()
    return x.numpy().tobytes(), tuple(x.shape)


@st.cache_data(show_spinner=False, max_entries=512)
def _digit_png(data: bytes, shape: tuple[int, ...], scale: int) -> bytes:
    return png_bytes(digit_picture(_tensor(data, shape), scale))


@st.cache_data(show_spinner=False, max_entries=512)
def _heat_png(heat: bytes, heat_shape: tuple[int, ...], pixels: bytes, pixels_shape: tuple[int, ...]) -> bytes:
    return png_bytes(heat_picture(_tensor(heat, heat_shape), _tensor(pixels, pixels_shape)))


@st.cache_data(show_spinner=False, max_entries=256)
def _maps_png(data: bytes, shape: tuple[int, ...]) -> bytes:
    return png_bytes(maps_picture(_tensor(data, shape)))


@st.cache_data(show_spinner=False, max_entries=256)
def _belief_png(beliefs: bytes, beliefs_shape: tuple[int, ...], pixels: bytes, pixels_shape: tuple[int, ...]) -> bytes:
    return png_bytes(belief_picture(_tensor(beliefs, beliefs_shape), _tensor(pixels, pixels_shape)))


def digit_png(pixels: torch.Tensor, scale: int = SCALE) -> bytes:
    return _digit_png(*_key(pixels), scale)


def heat_png(heat: torch.Tensor, pixels: torch.Tensor) -> bytes:
    return _heat_png(*_key(heat), *_key(pixels))


def maps_png(maps: torch.Tensor) -> bytes:
    return _maps_png(*_key(maps))


def belief_png(row_probabilities: torch.Tensor, pixels: torch.Tensor) -> bytes:
    return _belief_png(*_key(row_probabilities), *_key(pixels))


# ------------------------------------------------------------ light charts
def probability_bars(probabilities, predicted: int, title: str, height: int = 64) -> str:
    """Ten probability bars as plain HTML (no chart library: nothing to load or
    lay out in the browser, so a new digit's bars appear with its answer)."""
    bars = []
    for digit, p in enumerate(probabilities):
        colour = "#3b5bdb" if digit == predicted else "#adb5bd"
        bar = max(1, round(float(p) * height))
        bars.append(
            f'<div title="{digit}: {float(p):.1%}" style="flex:1;display:flex;flex-direction:column;'
            f'justify-content:flex-end;align-items:center">'
            f'<div style="width:70%;height:{bar}px;background:{colour};border-radius:2px 2px 0 0"></div>'
            f'<div style="font-size:0.75rem;line-height:1.1rem">{digit}</div></div>')
    return (f'<div class="sb-bars"><div style="font-size:0.8rem;opacity:0.75">{html.escape(title)}</div>'
            f'<div style="display:flex;gap:2px;height:{height + 18}px;align-items:flex-end">'
            + "".join(bars) + "</div></div>")
