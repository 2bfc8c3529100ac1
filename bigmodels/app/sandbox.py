"""Page support for the sandbox: its sources per architecture, the pictures' PNGs cached
per distinct input, and light HTML charts. The models come from ``bigmodels.app.models``
(one cache per server for every page); the pictures from ``bigmodels.figures.pictures``.
"""
from __future__ import annotations

import html
import ipaddress

import numpy as np
import streamlit as st
import torch

from bigmodels.figures.pictures import SCALE, belief_picture, digit_picture, heat_picture, maps_picture, png_bytes
from bigmodels.runs.sources import ModelSource, list_sources
from bigmodels.app.session import language

ARCHITECTURES = ("cnn", "lstm", "transformer")  # the three columns, left to right


# ------------------------------------------------------------------- models
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


# ------------------------------------------------------------------ visitors
#: Streamlit hides a loopback client's address (st.context.ip_address is None then): a reverse
#: proxy on this host, or someone on the host itself, who all count as this one visitor.
LOCAL_VISITOR = "127.0.0.1"


def visitor_address() -> str:
    """Who is adding to the shared gallery: the client's address; behind a reverse
    proxy on this host (deploy/nginx.conf), the address the proxy appended last to
    X-Forwarded-For (a visitor can only prepend to that header); else LOCAL_VISITOR."""
    address = st.context.ip_address
    if address:
        try:
            if not ipaddress.ip_address(address).is_loopback:
                return address
        except ValueError:
            return address
    forwarded = (st.context.headers.get("X-Forwarded-For") or "").split(",")[-1].strip()
    return forwarded or LOCAL_VISITOR
