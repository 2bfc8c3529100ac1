"""Page support for the sandbox: models loaded once per server, and the pictures.

Kept out of ``bigmodels.app.session`` (the lead's) so the sandbox owns its caching. The
picture helpers are pure numpy and tested without Streamlit.
"""
from __future__ import annotations

import contextlib
import html
import io
import ipaddress

import numpy as np
import streamlit as st
import torch
from plotly.colors import hex_to_rgb, sequential
from PIL import Image
from torch import nn

from bigmodels.analysis.explain import read_digit
from bigmodels.data.digits import enlarge, to_uint8
from bigmodels.models.checkpoints import model_from_checkpoint
from bigmodels.models.sources import ModelSource, list_sources
from bigmodels.app.session import language

ARCHITECTURES = ("cnn", "lstm", "transformer")  # the three columns, left to right
SCALE = 6  # a 28x28 digit is shown 168 px wide: big enough to see pixels, small enough for three
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


# ----------------------------------------------------------------- pictures
def _palette(name: str = "Inferno", steps: int = 256) -> np.ndarray:
    """(steps, 3) uint8 colours interpolated from one of plotly's colour scales."""
    stops = np.array([hex_to_rgb(c) for c in getattr(sequential, name)], dtype=np.float64)
    at = np.linspace(0, len(stops) - 1, steps)
    low = np.floor(at).astype(int)
    high = np.minimum(low + 1, len(stops) - 1)
    frac = (at - low)[:, None]
    return np.round(stops[low] * (1 - frac) + stops[high] * frac).astype(np.uint8)


HEAT = _palette("Inferno")


def digit_picture(pixels: torch.Tensor, scale: int = SCALE) -> np.ndarray:
    """A 28x28 digit as the model sees it (white ink on black), enlarged, uint8 grey."""
    return enlarge(to_uint8(pixels), scale)


def heat_picture(heat: torch.Tensor, pixels: torch.Tensor | None = None, scale: int = SCALE,
                 opacity: float = 0.6) -> np.ndarray:
    """A [0, 1] heat map in colour, over the digit in grey when ``pixels`` is
    given: (H*scale, W*scale, 3) uint8."""
    index = heat.detach().clamp(0, 1).mul(255).round().to(torch.long).cpu().numpy()
    colour = HEAT[index].astype(np.float32)
    if pixels is not None:
        grey = pixels.detach().clamp(0, 1).cpu().numpy()[..., None] * 255.0
        colour = opacity * colour + (1 - opacity) * grey
    return enlarge(np.round(colour).astype(np.uint8), scale)


def maps_picture(maps: torch.Tensor, columns: int = 3, scale: int = 3, gap: int = 4) -> np.ndarray:
    """Feature maps (C, H, W) tiled in a grid, each scaled to its own [0, 1]: uint8 grey."""
    count, h, w = maps.shape
    rows = -(-count // columns)
    tile_h, tile_w = h * scale, w * scale
    sheet = np.full((rows * tile_h + (rows - 1) * gap, columns * tile_w + (columns - 1) * gap), 255, np.uint8)
    for i, fmap in enumerate(maps):
        lo, hi = float(fmap.min()), float(fmap.max())
        unit = (fmap - lo) / (hi - lo) if hi > lo else torch.zeros_like(fmap)
        r, c = divmod(i, columns)
        top, left = r * (tile_h + gap), c * (tile_w + gap)
        sheet[top:top + tile_h, left:left + tile_w] = enlarge(to_uint8(unit), scale)
    return sheet


def belief_picture(row_probabilities: torch.Tensor, pixels: torch.Tensor, scale: int = SCALE,
                   gap: int = 2) -> np.ndarray:
    """The LSTM's belief after each row beside the row itself: the digit (28 rows)
    in grey, then a (28 rows x 10 digits) heat map, row r of the map level with
    row r of the digit. (28*scale, (28+gap+10)*scale, 3) uint8."""
    rows = row_probabilities.shape[0]
    grey = np.repeat(to_uint8(pixels)[..., None], 3, axis=2)
    index = row_probabilities.detach().clamp(0, 1).mul(255).round().to(torch.long).cpu().numpy()
    beliefs = HEAT[index]  # (rows, 10, 3)
    spacer = np.full((rows, gap, 3), 255, np.uint8)
    return enlarge(np.concatenate([grey, spacer, beliefs], axis=1), scale)


# ------------------------------------------------------------- cached PNGs
# Pictures are encoded once per distinct input (the pixel bytes are the key):
# a rerun that shows the same digit again -- a tab switch, a slider elsewhere --
# sends the same bytes, which Streamlit serves from the same media URL.
def png_bytes(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "PNG", compress_level=1)  # tiny pictures: speed over size
    return buffer.getvalue()


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
