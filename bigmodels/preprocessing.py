"""Turn a drawing or a photo of a digit into the 28x28 image an MNIST model expects.

MNIST's digits were made a particular way (LeCun et al.): white ink on black,
the digit's bounding box scaled so its longer side is 20 pixels (keeping the
aspect ratio, anti-aliased), then placed in a 28x28 field so that its centre of
mass sits at the centre. A model trained on MNIST has only ever seen digits
like that, so a canvas drawing must be brought into the same shape or the
models answer worse than they are -- ``naive_resize`` exists to show that.

A digit here is a float32 tensor (28, 28) of ink in [0, 1] ("pixels");
``to_model_input`` turns pixels into what the models take.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bigmodels.data import MNIST_MEAN, MNIST_STD
from bigmodels.models import IMAGE_SIZE

DIGIT_BOX = 20  # MNIST scaled each digit's longer side to 20 px ...
# ... and shifted it by whole pixels so that its centre of mass lands here (row,
# column in pixel-index coordinates). Measured on the 60,000 training digits:
# mean 13.996 / 14.007 with the +-0.29 spread that integer shifts leave;
# tests/test_preprocessing.py re-measures it.
MNIST_CENTRE = (14.0, 14.0)
# Ink below this fraction of the strongest ink is treated as background: it
# drops JPEG ringing and paper texture without eating anti-aliased stroke edges.
INK_FLOOR = 0.1
# A drawing whose strongest ink is fainter than this is an empty canvas.
BLANK_LEVEL = 0.05


def ink_map(image: np.ndarray) -> torch.Tensor:
    """Ink in [0, 1] (H, W) from a grey (H, W), (H, W, 1), RGB or RGBA uint8 image.

    * A transparent image (the canvas: strokes on a see-through background) has
      its ink in the alpha channel.
    * Otherwise brightness is the ink; when the background -- judged from the
      image border -- is light (black pen on white paper), brightness is
      inverted, so the result is always light ink on a dark background.
    * The background level is subtracted and the rest stretched to [0, 1], so
      grey paper or a dim photo still gives full-strength ink.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"expected a grey, RGB or RGBA image, got an array of shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"the image has no pixels (shape {array.shape})")
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    x = torch.tensor(array, dtype=torch.float32).div_(255.0)  # a copy: canvas arrays are read-only
    if x.ndim == 3 and x.shape[2] == 4 and bool((x[:, :, 3] < 1.0).any()):
        grey = x[:, :, 3]
    elif x.ndim == 3:
        # ITU-R 601 luma, the weights Pillow's "L" conversion uses.
        grey = x[:, :, 0] * 0.299 + x[:, :, 1] * 0.587 + x[:, :, 2] * 0.114
    else:
        grey = x
    background = _border_median(grey)
    if background > 0.5:
        grey, background = 1.0 - grey, 1.0 - background
    return ((grey - background) / max(1.0 - background, 1e-6)).clamp_(0.0, 1.0)


def _border_median(grey: torch.Tensor) -> float:
    """The typical value of the outermost pixels: the background, for any digit
    that does not touch every edge."""
    border = torch.cat([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return float(border.median())


def is_blank(ink: torch.Tensor) -> bool:
    return ink.numel() == 0 or float(ink.max()) < BLANK_LEVEL


def _clean(ink: torch.Tensor) -> torch.Tensor:
    """Scale the strongest ink to 1 (MNIST digits peak at 255) and drop faint specks."""
    ink = ink / ink.max()
    return torch.where(ink >= INK_FLOOR, ink, torch.zeros_like(ink))


def _resize(ink: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # Anti-aliased bilinear: averages over the source footprint when shrinking a
    # 280 px canvas stroke to 2 px, as MNIST's own anti-aliasing did.
    out = F.interpolate(ink[None, None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].clamp_(0.0, 1.0)


def ink_bbox(ink: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the ink, bottom/right exclusive."""
    rows = torch.nonzero(ink.amax(1) > 0).flatten()
    cols = torch.nonzero(ink.amax(0) > 0).flatten()
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def centre_of_mass(pixels: torch.Tensor) -> tuple[float, float]:
    """(row, column) of the ink's centre of mass, in pixel-index coordinates."""
    total = pixels.sum()
    rows = torch.arange(pixels.shape[0], dtype=pixels.dtype)
    cols = torch.arange(pixels.shape[1], dtype=pixels.dtype)
    return float((pixels.sum(1) * rows).sum() / total), float((pixels.sum(0) * cols).sum() / total)


def place(patch: torch.Tensor, top: int, left: int, size: int = IMAGE_SIZE) -> torch.Tensor:
    """``patch`` pasted into a size x size black field at (top, left), clipped at the edges."""
    field = torch.zeros(size, size, dtype=patch.dtype)
    h, w = patch.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + h, size), min(left + w, size)
    if t1 > t0 and l1 > l0:
        field[t0:t1, l0:l1] = patch[t0 - top:t1 - top, l0 - left:l1 - left]
    return field


def mnist_style(image: np.ndarray) -> torch.Tensor | None:
    """The 28x28 MNIST-style digit (float32 pixels in [0, 1]) for a drawing or
    photo, or None when there is no ink to read (an empty canvas)."""
    ink = ink_map(image)
    if is_blank(ink):
        return None
    ink = _clean(ink)
    top, left, bottom, right = ink_bbox(ink)
    crop = ink[top:bottom, left:right]
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    patch = _resize(crop, max(1, round(h * scale)), max(1, round(w * scale)))
    if float(patch.sum()) <= 0:  # a hair-thin stroke can vanish when shrunk
        return None
    patch = patch / patch.max()
    row, col = centre_of_mass(patch)
    return place(patch, round(MNIST_CENTRE[0] - row), round(MNIST_CENTRE[1] - col))


def naive_resize(image: np.ndarray) -> torch.Tensor | None:
    """The whole image squeezed to 28x28 with no cropping or centring -- what
    feeding a canvas straight to the models would do. Same ink handling as
    ``mnist_style``, so the comparison isolates the crop/scale/centre steps."""
    ink = ink_map(image)
    if is_blank(ink):
        return None
    out = _resize(_clean(ink), IMAGE_SIZE, IMAGE_SIZE)
    return out / out.max() if float(out.max()) > 0 else None


def prepare(image: np.ndarray, method: str = "mnist") -> torch.Tensor | None:
    """Pixels for the models by ``method``: "mnist" (the MNIST recipe) or "naive"."""
    if method == "mnist":
        return mnist_style(image)
    if method == "naive":
        return naive_resize(image)
    raise ValueError(f"unknown preprocessing method {method!r}; use 'mnist' or 'naive'")


def to_model_input(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels (28, 28) or (B, 28, 28) in [0, 1] -> the normalised (B, 1, 28, 28)
    float input the models were trained on (same as ``bigmodels.data.normalize``)."""
    if pixels.ndim == 2:
        pixels = pixels[None]
    return ((pixels.float() - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def from_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """MNIST's uint8 images (..., 28, 28) as float pixels in [0, 1]."""
    return torch.as_tensor(np.asarray(images)).float().div(255.0)


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """Pixels in [0, 1] as a uint8 array, for display."""
    return pixels.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
