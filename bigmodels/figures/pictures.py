"""The sandbox's pictures as numpy arrays: a digit as the model sees it, heat maps over
it, feature-map sheets and the LSTM's row beliefs, and a picture as PNG bytes. Pure
numpy and PIL (tested without Streamlit); the page caches their PNGs."""
from __future__ import annotations

import io

import numpy as np
import torch
from plotly.colors import hex_to_rgb, sequential
from PIL import Image

from bigmodels.data.digits import enlarge, to_uint8

SCALE = 6  # a 28x28 digit is shown 168 px wide: big enough to see pixels, small enough for three


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


def png_bytes(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "PNG", compress_level=1)  # tiny pictures: speed over size
    return buffer.getvalue()
