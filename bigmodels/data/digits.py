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
from PIL import Image

from bigmodels.data.mnist import MNIST_MEAN, MNIST_STD
from bigmodels.models.nets import IMAGE_SIZE

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


def ink_map(image: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] (H, W) float32 from a grey (H, W), (H, W, 1), RGB or RGBA uint8 image.

    * A transparent image (the canvas: strokes on a see-through background) has
      its ink in the alpha channel.
    * Otherwise brightness is the ink; when the background -- judged from the
      image border -- is light (black pen on white paper), brightness is
      inverted, so the result is always light ink on a dark background.
    * The background level is subtracted, so grey paper reads as no ink
      (``mnist_style`` then scales the strongest ink to 1, as MNIST's digits
      peak at 255, so a faint pencil still gives a full-strength digit).

    numpy and Pillow, not torch: these are single-image operations, and torch's
    intra-op threads only add overhead here (10x, measured, on a busy 2-core CPU).
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
    if array.ndim == 3 and array.shape[2] == 4 and array[:, :, 3].min() < 255:
        grey = array[:, :, 3].astype(np.float32) / 255.0
    elif array.ndim == 3:
        # ITU-R 601 luma, the weights Pillow's "L" conversion uses.
        rgb = array[:, :, :3].astype(np.float32)
        grey = (rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114) / 255.0
    else:
        grey = array.astype(np.float32) / 255.0
    background = _border_median(grey)
    if background > 0.5:
        grey, background = 1.0 - grey, 1.0 - background
    return np.clip((grey - background) / max(1.0 - background, 1e-6), 0.0, 1.0)


def _border_median(grey: np.ndarray) -> float:
    """The typical value of the outermost pixels: the background, for any digit
    that does not touch every edge."""
    return float(np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])))


def is_blank(ink: np.ndarray) -> bool:
    return ink.size == 0 or float(ink.max()) < BLANK_LEVEL


def _clean(ink: np.ndarray) -> np.ndarray:
    """Scale the strongest ink to 1 (MNIST digits peak at 255) and drop faint specks."""
    ink = ink / ink.max()
    return np.where(ink >= INK_FLOOR, ink, 0.0).astype(np.float32)


def _resize(ink: np.ndarray, height: int, width: int) -> np.ndarray:
    # Pillow's bilinear filter widens with the shrink factor (anti-aliasing): it
    # averages over the source footprint when a 20 px canvas stroke becomes 2 px,
    # as MNIST's own anti-aliasing did. Same numbers as torch's antialias=True.
    out = Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32), mode="F").resize(
        (width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out), 0.0, 1.0)


def ink_bbox(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the ink, bottom/right exclusive."""
    rows = np.flatnonzero(ink.max(1) > 0)
    cols = np.flatnonzero(ink.max(0) > 0)
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def centre_of_mass(pixels: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """(row, column) of the ink's centre of mass, in pixel-index coordinates."""
    pixels = np.asarray(pixels, dtype=np.float64)
    total = pixels.sum()
    rows = np.arange(pixels.shape[0])
    cols = np.arange(pixels.shape[1])
    return float((pixels.sum(1) * rows).sum() / total), float((pixels.sum(0) * cols).sum() / total)


def place(patch: np.ndarray, top: int, left: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """``patch`` pasted into a size x size black field at (top, left), clipped at the edges."""
    field = np.zeros((size, size), dtype=np.float32)
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
    if float(patch.max()) <= 0:  # a hair-thin stroke can vanish when shrunk
        return None
    patch = patch / patch.max()
    row, col = centre_of_mass(patch)
    return torch.from_numpy(place(patch, round(MNIST_CENTRE[0] - row), round(MNIST_CENTRE[1] - col)))


def naive_resize(image: np.ndarray) -> torch.Tensor | None:
    """The whole image squeezed to 28x28 with no cropping or centring -- what
    feeding a canvas straight to the models would do. Same ink handling as
    ``mnist_style``, so the comparison isolates the crop/scale/centre steps."""
    ink = ink_map(image)
    if is_blank(ink):
        return None
    out = _resize(_clean(ink), IMAGE_SIZE, IMAGE_SIZE)
    return torch.from_numpy(out / out.max()) if float(out.max()) > 0 else None


def prepare(image: np.ndarray, method: str = "mnist") -> torch.Tensor | None:
    """Pixels for the models by ``method``: "mnist" (the MNIST recipe) or "naive"."""
    if method == "mnist":
        return mnist_style(image)
    if method == "naive":
        return naive_resize(image)
    raise ValueError(f"unknown preprocessing method {method!r}; use 'mnist' or 'naive'")


def to_model_input(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels (28, 28) or (B, 28, 28) in [0, 1] -> the normalised (B, 1, 28, 28)
    float input the models were trained on (same as ``bigmodels.data.mnist.normalize``)."""
    if pixels.ndim == 2:
        pixels = pixels[None]
    return ((pixels.float() - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def from_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """MNIST's uint8 images (..., 28, 28) as float pixels in [0, 1]."""
    return torch.as_tensor(np.asarray(images)).float().div(255.0)


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """Pixels in [0, 1] as a uint8 array, for display."""
    return pixels.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()


def enlarge(image: np.ndarray | torch.Tensor, scale: int) -> np.ndarray | torch.Tensor:
    """Nearest-neighbour upscaling of the first two axes (numpy or torch): every
    pixel becomes a ``scale`` x ``scale`` square, so model pixels stay visible."""
    repeat = torch.repeat_interleave if isinstance(image, torch.Tensor) else np.repeat
    return repeat(repeat(image, scale, 0), scale, 1)


def first_of_each_class(labels, classes: int = 10) -> list[int]:
    """The index of the first digit of each class (0, 1, ..., 9) in ``labels``'
    order -- the sandbox's examples to start from: MNIST's test set in its own
    order, so they are ordinary digits, not picked to flatter the models.
    Classes that do not occur are left out."""
    labels = np.asarray(labels).reshape(-1)
    found = []
    for digit in range(classes):
        hits = np.flatnonzero(labels == digit)
        if hits.size:
            found.append(int(hits[0]))
    return found
