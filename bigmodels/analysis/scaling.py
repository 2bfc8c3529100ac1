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

import torch

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
