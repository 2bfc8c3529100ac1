"""Ways to disturb a digit, to see which architecture breaks first.

The source article lists robustness and safety among the challenges of large
models; these make it visible on one digit. All take and return pixels: a
float tensor (28, 28) of ink in [0, 1] (see ``bigmodels.data.digits``). None
changes its input in place.

* ``rotate``, ``shift``, ``thickness`` -- the natural variation of handwriting;
* ``gaussian_noise`` -- a noisy sensor;
* ``fgsm`` -- an adversary: the fast gradient sign method (Goodfellow et al.,
  2015, "Explaining and Harnessing Adversarial Examples"), computed against one
  model's own gradient, so each model gets the attack that hurts it most.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from bigmodels.data.digits import to_model_input

# Slider ranges the UI offers; ``Perturbation.problems`` enforces them so a
# hand-built request cannot ask for a 10,000-step dilation.
MAX_ROTATION = 180.0
MAX_SHIFT = 14
MAX_THICKNESS = 3
MAX_NOISE = 1.0
MAX_EPSILON = 0.5


def rotate(pixels: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate anticlockwise about the image centre; corners fill with background."""
    if degrees == 0:
        return pixels.clone()
    out = TF.rotate(pixels[None], float(degrees), interpolation=InterpolationMode.BILINEAR, fill=0.0)
    return out[0].clamp(0.0, 1.0)


def shift(pixels: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move right by ``dx`` and down by ``dy`` whole pixels; ink pushed past an edge is lost."""
    h, w = pixels.shape
    out = torch.zeros_like(pixels)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_rows = slice(max(0, -dy), h - max(0, dy))
    src_cols = slice(max(0, -dx), w - max(0, dx))
    dst_rows = slice(max(0, dy), h - max(0, -dy))
    dst_cols = slice(max(0, dx), w - max(0, -dx))
    out[dst_rows, dst_cols] = pixels[src_rows, src_cols]
    return out


def thickness(pixels: torch.Tensor, steps: int) -> torch.Tensor:
    """Thicker strokes (steps > 0, grey-level dilation) or thinner (steps < 0,
    erosion). Each step is a 3x3 max (or min) filter: about one pixel more or
    less on each side of every stroke."""
    x = pixels[None, None]
    for _ in range(abs(int(steps))):
        if steps > 0:
            x = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            # a min filter; max_pool2d pads with -inf, so the frame never counts as ink or as background
            x = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return x[0, 0].clone()


def gaussian_noise(pixels: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Add N(0, sigma^2) noise to every pixel (fixed ``seed``: the same noise on every
    rerun, so moving another slider does not reshuffle it), clipped to [0, 1]."""
    if sigma <= 0:
        return pixels.clone()
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(pixels.shape, generator=g, dtype=pixels.dtype)
    return (pixels + sigma * noise).clamp(0.0, 1.0)


def fgsm(model: nn.Module, pixels: torch.Tensor, epsilon: float, label: int | None = None) -> torch.Tensor:
    """One fast-gradient-sign step of size ``epsilon`` (in pixel units, 0-1) that
    raises the model's loss on ``label`` -- by default the class the model itself
    predicts for the clean digit, so no ground truth is needed.

    The gradient is taken with respect to the pixels only; the model's weights
    get no ``.grad``, so one cached model can serve many sessions at once."""
    if epsilon <= 0:
        return pixels.clone()
    device = next(model.parameters()).device
    x = pixels.detach().to(device).clone().requires_grad_(True)
    logits = model(to_model_input(x))
    target = logits.argmax(1) if label is None else torch.tensor([int(label)], device=device)
    loss = F.cross_entropy(logits, target)
    (grad,) = torch.autograd.grad(loss, x)
    return (x.detach() + epsilon * grad.sign()).clamp(0.0, 1.0).to(pixels.device)


@dataclass(frozen=True)
class Perturbation:
    """Everything the robustness controls ask for. Applied in a fixed order:
    stroke thickness, rotation, shift, noise -- then, per model, FGSM."""
    rotation: float = 0.0  # degrees, anticlockwise
    shift_x: int = 0  # pixels right
    shift_y: int = 0  # pixels down
    thickness: int = 0  # dilation (+) / erosion (-) steps
    noise: float = 0.0  # Gaussian sigma in pixel units
    noise_seed: int = 0
    epsilon: float = 0.0  # FGSM step in pixel units

    def problems(self) -> list[str]:
        found = []
        if not -MAX_ROTATION <= self.rotation <= MAX_ROTATION:
            found.append(f"rotation must be within +-{MAX_ROTATION:g} degrees")
        if not (-MAX_SHIFT <= self.shift_x <= MAX_SHIFT and -MAX_SHIFT <= self.shift_y <= MAX_SHIFT):
            found.append(f"shift must be within +-{MAX_SHIFT} pixels")
        if not -MAX_THICKNESS <= self.thickness <= MAX_THICKNESS:
            found.append(f"thickness must be within +-{MAX_THICKNESS} steps")
        if not 0.0 <= self.noise <= MAX_NOISE:
            found.append(f"noise must be in [0, {MAX_NOISE:g}]")
        if not 0.0 <= self.epsilon <= MAX_EPSILON:
            found.append(f"epsilon must be in [0, {MAX_EPSILON:g}]")
        return found

    def validate(self) -> "Perturbation":
        found = self.problems()
        if found:
            raise ValueError("; ".join(found))
        return self

    @property
    def is_identity(self) -> bool:
        return self == Perturbation(noise_seed=self.noise_seed)

    @property
    def changes_shared(self) -> bool:
        """Whether anything but the per-model FGSM attack is asked for."""
        return not replace(self, epsilon=0.0).is_identity


def apply_shared(pixels: torch.Tensor, p: Perturbation) -> torch.Tensor:
    """The perturbations every model sees alike (all but FGSM)."""
    p.validate()
    x = thickness(pixels, p.thickness)
    x = rotate(x, p.rotation)
    x = shift(x, p.shift_x, p.shift_y)
    return gaussian_noise(x, p.noise, p.noise_seed)

