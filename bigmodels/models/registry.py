"""A timm-style registry: build any architecture by name, list what exists.

``create_model("transformer", preset="article", depth=2)`` builds the model from
its config dataclass, a named preset and keyword overrides, so the UI can offer
every architecture and preset without knowing the classes.
``check_model_settings`` says what is wrong with settings that came from a user
(a form, a flag, a checkpoint) before anything is built, and ``parameter_count``
sizes a model on PyTorch's meta device, so no memory is spent on a huge one.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from bigmodels.base.problems import ConfigError, Key, Problem, show_value

from bigmodels.models.nets import (
    CNNConfig, LeNet5, LSTMConfig, RowLSTM, TransformerConfig, VisionTransformer, init_weights_,
)


#: The most parameters any model may have here: a settings box, a flag or a
#: checkpoint must not be able to exhaust a shared server's memory.
MAX_PARAMETERS = 1_000_000_000
MAX_LAYERS = 64  # entries in a per-layer tuple setting (conv_channels, fc_sizes)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "CNN", "RNN", "Transformer"
    config_cls: type
    build: Callable[[Any], nn.Module]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


register(ModelSpec(
    "cnn", "CNN", CNNConfig, LeNet5,
    presets={"default": {}, "wide": {"conv_channels": (32, 64), "fc_sizes": (256, 128)}},
))
register(ModelSpec(
    "lstm", "RNN", LSTMConfig, RowLSTM,
    presets={"default": {}, "article": {"hidden_size": 256, "num_layers": 2}},
))
register(ModelSpec(
    "transformer", "Transformer", TransformerConfig, VisionTransformer,
    # "article": the source article's 768-wide encoder, here in ViT-Base's shape
    # (12 heads, MLP 4x); far too slow to train on a CPU, there for the scale story.
    presets={"default": {}, "article": {"dim": 768, "heads": 12, "depth": 12, "mlp_ratio": 4.0, "patch_size": 4}},
))


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def _type_problem(name: str, hint: Any, value: Any) -> Problem | None:
    """Why ``value`` is not of the config field's type ``hint`` (None if it is).
    Checks one level only, so ten thousand nested lists cost one look."""
    def whole(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def wrong(kind: str) -> Problem:
        return Problem.of("train.problem.settings_type", name=name, wanted=Key(f"train.type.{kind}"),
                          got=show_value(value))
    if hint is bool:
        return None if isinstance(value, bool) else wrong("bool")
    if hint is int:
        return None if whole(value) else wrong("whole")
    if hint is float:
        return None if (whole(value) or isinstance(value, float)) else wrong("number")
    if hint is str:
        return None if isinstance(value, str) else wrong("text")
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or not all(whole(v) for v in value):
            return wrong("layers")
        if len(value) > MAX_LAYERS:
            return Problem.of("train.problem.settings_layers", name=name, n=MAX_LAYERS)
    return None


def check_model_settings(name: Any, preset: Any = "default", overrides: Any = None) -> list[Problem]:
    """Every problem with (architecture, preset, settings) from outside, or []."""
    if not isinstance(name, str) or name not in _REGISTRY:
        return [Problem.of("train.problem.model", got=show_value(name), choices=", ".join(_REGISTRY))]
    spec = _REGISTRY[name]
    if not isinstance(preset, str) or preset not in spec.presets:
        return [Problem.of("train.problem.preset", model=name, got=show_value(preset), choices=", ".join(spec.presets))]
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        return [Problem.of("train.problem.settings_object")]
    hints = typing.get_type_hints(spec.config_cls)
    unknown = sorted(str(k)[:40] for k in overrides if k not in hints)
    if unknown:
        return [Problem.of("train.problem.settings_unknown", model=name, names=", ".join(unknown),
                           known=", ".join(hints))]
    found = []
    for key, value in overrides.items():
        problem = _type_problem(key, hints[key], value)
        if problem is not None:
            found.append(problem)
    if found:
        return found
    try:
        _build_config(spec, preset, overrides)
    except (ValueError, TypeError) as exc:  # the config's own checks (__post_init__)
        return [Problem.of("train.problem.settings_invalid", detail=str(exc))]
    return []


def _build_config(spec: ModelSpec, preset: str, overrides: dict[str, Any]):
    values = {**spec.presets[preset], **overrides}
    # JSON round-trips turn tuples into lists; configs are frozen/hashable, so normalise.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return spec.config_cls(**values)


def make_config(name: str, preset: str = "default", **overrides: Any):
    """The config for ``name`` from a preset plus overrides; ConfigError if they are wrong."""
    problems = check_model_settings(name, preset, overrides)
    if problems:
        raise ConfigError(problems)
    return _build_config(get_spec(name), preset, overrides)


def create_model(name: str, preset: str = "default", **overrides: Any) -> nn.Module:
    model = get_spec(name).build(make_config(name, preset, **overrides))
    init_weights_(model)
    return model


def parameter_count(name: str, preset: str = "default", **overrides: Any) -> int:
    """Parameters of the model these settings build, counted on the meta device
    (shapes only: a billion-parameter request costs nothing to size)."""
    with torch.device("meta"):
        model = get_spec(name).build(make_config(name, preset, **overrides))
    return sum(p.numel() for p in model.parameters())


def model_from_config(name: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from a checkpoint's stored (name, config dict)."""
    return create_model(name, "default", **config)
