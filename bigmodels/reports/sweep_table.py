"""A sweep's measurements as the table the scaling-law fits take.

One row per measured point: parameters ``N`` counted on the module, images
seen ``D``, training compute ``C = D x`` training FLOPs per image (forward +
backward, PyTorch's FLOP counter on the real module,
``bigmodels.models.profile.training_flops_per_image``), and the test
cross-entropy of the run's last epoch. Rows come from the run store (a sweep's
succeeded runs) or from an exported sweep file (the shipped one, or a user's);
``export`` writes the first as the second.

The modules are built on PyTorch's ``meta`` device: shapes without storage, so
counting a large model allocates nothing. Nothing here writes to the store.

A sweep's *checks* are the predictions registered in the run store before
their runs trained (``RunStore.register_prediction``), each scored here by the
mean test loss of its runs once they have landed (``RegisteredCheck``).

A sweep file::

    {"format": "bigmodels-sweep/2", "name": ..., "model": "cnn", "commands": [...],
     "provenance": {...}, "data": ..., "exported_at": ..., "lr_search": {...},
     "points": [{"run_id", "width", "depth", "parameters", "flops_per_image",
                 "images", "compute", "test_loss", "test_accuracy", "check",
                 "seconds", "config_hash", "seed", "lr", "config"}, ...],
     "checks": [{"id", "point", "predicted", "interval": [low, high], "level",
                 "measured", "inside", "relative_error", "registered_at",
                 "started_at", "runs", "fit", "grid", "digest"}, ...],
     "not_measured": {"failed": 1, ...}}

Files of format ``bigmodels-sweep/1`` (no seeds, no registered checks) still read.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from bigmodels.models.profile import count_parameters, training_flops_per_image
from bigmodels.models.registry import create_model
from bigmodels.base.problems import Problem
from bigmodels.runs.store import Run, prediction_digest
from bigmodels.runs.sweeps import CHECK_TAG
from bigmodels.train.sweep import knobs_of

FORMAT = "bigmodels-sweep/2"
READABLE = ("bigmodels-sweep/1", FORMAT)
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
SHIPPED_SWEEP = SHIPPED_DIR / "cnn_sweep.json"


def shipped_lr_search(model: str) -> Path | None:
    """The shipped learning-rate search of ``model`` (``python -m bigmodels sweep tune``), if any."""
    path = SHIPPED_DIR / f"{model}_lr_search.json"
    return path if path.is_file() else None
MAX_FILE_BYTES = 5 * 2**20  # a sweep of thousands of points is well under this


class SweepDataError(ValueError):
    """A sweep file or a set of runs that cannot become a table; ``problem`` says why, in either language."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class SweepRow:
    run_id: str
    width: int | None
    depth: int | None
    parameters: int
    flops_per_image: int
    images: int  # D: training images seen
    test_loss: float
    test_accuracy: float
    check: bool = False
    seconds: float | None = None
    config_hash: str = ""
    seed: int | None = None
    lr: float | None = None

    @property
    def compute(self) -> float:
        return float(self.flops_per_image) * self.images


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RegisteredCheck:
    """A prediction registered before its runs trained, and (once they have) its score."""

    id: str
    width: int | None
    depth: int | None
    parameters: int
    images: int
    seeds: int
    predicted: float
    low: float
    high: float
    level: float
    registered_at: str  # ISO 8601, UTC
    started_at: str | None  # when its first run started (None: not yet)
    runs: tuple[str, ...]
    measured: float | None = None  # mean test loss of its runs, once every one has landed
    measured_runs: int = 0
    fit: dict[str, float] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    payload: dict[str, Any] = field(default_factory=dict)  # the prediction as registered, digested with...
    registered_unix: float | None = None  # ...its registration time as the store keeps it

    @property
    def intact(self) -> bool | None:
        """Its content and time still hash to the digest written when it was registered
        (None: a file that does not carry them)."""
        if not self.payload or self.registered_unix is None or not self.digest:
            return None
        return prediction_digest(self.payload, self.registered_unix) == self.digest

    @property
    def inside(self) -> bool | None:
        return None if self.measured is None else self.low <= self.measured <= self.high

    @property
    def error(self) -> float | None:
        """(measured - predicted) / predicted."""
        return None if self.measured is None else (self.measured - self.predicted) / self.predicted

    @property
    def registered_first(self) -> bool | None:
        return None if self.started_at is None else self.registered_at <= self.started_at

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "point": {"width": self.width, "depth": self.depth, "parameters": self.parameters,
                                         "images": self.images, "seeds": self.seeds},
                "predicted": self.predicted, "interval": [self.low, self.high], "level": self.level,
                "measured": self.measured, "measured_runs": self.measured_runs, "inside": self.inside,
                "relative_error": self.error, "registered_at": self.registered_at, "started_at": self.started_at,
                "runs": list(self.runs), "fit": self.fit, "grid": self.grid, "digest": self.digest,
                "payload": self.payload, "registered_at_unix": self.registered_unix}


def check_from_prediction(prediction, rows_by_run: dict[str, "SweepRow"]) -> RegisteredCheck:
    """A store prediction (``bigmodels.runs.store.Prediction``) with the measured rows of its runs."""
    p = prediction.payload
    point = p.get("point", {})
    measured = [rows_by_run[r].test_loss for r in prediction.runs if r in rows_by_run]
    done = bool(prediction.runs) and len(measured) == len(prediction.runs)
    return RegisteredCheck(
        prediction.id, point.get("width"), point.get("depth"), int(point.get("parameters", 0)),
        int(point.get("images", 0)), int(point.get("seeds", len(prediction.runs) or 1)), float(p["predicted"]),
        float(p["interval"][0]), float(p["interval"][1]), float(p.get("level", 0.8)), _iso(prediction.registered_at),
        _iso(prediction.frozen_at), tuple(prediction.runs), float(np.mean(measured)) if done else None,
        len(measured), dict(p.get("fit", {})), dict(p.get("grid", {})), prediction.digest, dict(p),
        prediction.registered_at)


@dataclass(frozen=True)
class SweepTable:
    name: str
    model: str
    rows: tuple[SweepRow, ...]
    meta: dict[str, Any] = field(default_factory=dict)  # commands, provenance, data, exported_at
    not_measured: dict[str, int] = field(default_factory=dict)  # points without a result, by status
    shipped: bool = False
    registered: tuple[RegisteredCheck, ...] = ()  # predictions registered before their runs

    def grid(self) -> "SweepTable":
        """The rows the law is fitted on (every row that is not a check)."""
        return SweepTable(self.name, self.model, tuple(r for r in self.rows if not r.check), self.meta,
                          self.not_measured, self.shipped)

    @property
    def checks(self) -> tuple[SweepRow, ...]:
        return tuple(r for r in self.rows if r.check)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(N, D, C, loss), one value per row."""
        return (np.array([r.parameters for r in self.rows], float), np.array([r.images for r in self.rows], float),
                np.array([r.compute for r in self.rows], float), np.array([r.test_loss for r in self.rows], float))

    def signature(self) -> str:
        """What a cache of fits over this table is keyed on: a digest of its rows."""
        blob = json.dumps([self.name, [asdict(r) for r in self.rows], [c.to_json() for c in self.registered]],
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


# ------------------------------------------------------------ measuring
@functools.lru_cache(maxsize=1024)
def _measure(model: str, preset: str, overrides_json: str) -> tuple[int, int]:
    with torch.device("meta"):
        module = create_model(model, preset, **json.loads(overrides_json))
    return count_parameters(module)[0], training_flops_per_image(module)


def measure_config(config: dict[str, Any]) -> tuple[int, int]:
    """(parameters, training FLOPs per image) of a run's model, counted on the module."""
    return _measure(config["model"], config.get("preset", "default"),
                    json.dumps(config.get("model_overrides") or {}, sort_keys=True))


_TRAIN_COUNT = re.compile(r"\(([\d,]+) train")


def images_seen(run: Run) -> int:
    """Training images the run saw: its subset (or all the data) times its epochs;
    a subset larger than the data it ran on is that data (the store records which)."""
    config = run.config
    available = None
    if run.data_source and (found := _TRAIN_COUNT.search(run.data_source)):
        available = int(found.group(1).replace(",", ""))
    subset = config.get("train_subset")
    per_epoch = min(v for v in (subset, available) if v is not None) if (subset or available) else None
    if per_epoch is None:
        raise SweepDataError(Problem.of("lab.problem.images_unknown", run=run.id))
    return int(per_epoch) * int(config.get("epochs", 1))


def row_from_run(run: Run, epochs: list[dict[str, Any]]) -> SweepRow | None:
    """The run's measurement (its last epoch), or None when it has none."""
    if run.status != "succeeded" or not epochs:
        return None
    last = epochs[-1]
    loss, accuracy = last.get("test_loss"), last.get("test_accuracy")
    if not isinstance(loss, (int, float)) or not math.isfinite(loss) or loss <= 0:
        return None
    parameters, flops = measure_config(run.config)
    knobs = knobs_of(run.model, run.config.get("model_overrides") or {})
    return SweepRow(run.id, knobs[0] if knobs else None, knobs[1] if knobs else None, parameters, flops,
                    images_seen(run), float(loss), float(accuracy or 0.0), CHECK_TAG in run.tags,
                    run.duration(), run.config_hash, run.config.get("seed"), run.config.get("lr"))


def table_from_runs(name: str, runs: Iterable[Run], epochs_of, predictions: Iterable = ()) -> SweepTable:
    """The sweep's succeeded runs as a table (``epochs_of(run_id)``: its epoch
    records, e.g. ``store.epochs``); the others are counted by status. One row
    per config: a config trained twice counts its latest run. ``predictions``:
    the sweep's registered predictions (``store.predictions(name)``), scored by
    the rows of their runs."""
    rows: dict[str, SweepRow] = {}
    missing: dict[str, int] = {}
    models = set()
    for run in sorted(runs, key=lambda r: r.finished_at or 0.0):
        models.add(run.model)
        row = row_from_run(run, epochs_of(run.id))
        if row is None:
            missing[run.status] = missing.get(run.status, 0) + 1
        else:
            rows[run.config_hash] = row
    ordered = tuple(sorted(rows.values(), key=lambda r: (r.check, r.parameters, r.images, r.seed or 0)))
    model = ",".join(sorted(models)) or "cnn"
    by_run = {r.run_id: r for r in ordered}
    checks = tuple(check_from_prediction(p, by_run) for p in predictions)
    return SweepTable(name, model, ordered, {}, missing, registered=checks)


# ------------------------------------------------------------- files
def export(table: SweepTable, meta: dict[str, Any], configs: dict[str, dict] | None = None) -> dict[str, Any]:
    """The table as a sweep file's content (``meta``: commands, provenance, data;
    ``configs``: each run's training config by run id, so a point can be trained
    again exactly -- the file's reader does not need them)."""
    configs = configs or {}
    return {"format": FORMAT, "name": table.name, "model": table.model, **meta,
            "points": [{**asdict(r), "compute": r.compute, **({"config": configs[r.run_id]}
                                                              if r.run_id in configs else {})} for r in table.rows],
            "checks": [c.to_json() for c in table.registered],
            "not_measured": dict(table.not_measured)}


_ROW_FIELDS = {"run_id": str, "parameters": int, "flops_per_image": int, "images": int, "test_loss": float,
               "test_accuracy": float}


def _row(raw: Any, index: int) -> SweepRow:
    if not isinstance(raw, dict):
        raise SweepDataError(Problem.of("lab.problem.point", index=index, field="-"))
    values = {}
    for name, kind in _ROW_FIELDS.items():
        value = raw.get(name)
        ok = isinstance(value, str) if kind is str else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            and (kind is float or float(value).is_integer()))
        if name == "test_accuracy" and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = 0 <= value <= 1
        if not ok:
            raise SweepDataError(Problem.of("lab.problem.point", index=index, field=name))
        values[name] = kind(value)
    for name in ("width", "depth"):
        value = raw.get(name)
        values[name] = int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    seconds = raw.get("seconds")
    values["seconds"] = float(seconds) if isinstance(seconds, (int, float)) and math.isfinite(seconds) else None
    values["check"] = raw.get("check") is True
    values["config_hash"] = str(raw.get("config_hash") or "")
    seed, lr = raw.get("seed"), raw.get("lr")
    values["seed"] = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    values["lr"] = float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0 else None
    return SweepRow(**values)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _check(raw: Any, index: int) -> RegisteredCheck:
    """One registered check of a sweep file."""
    def bad(name):
        return SweepDataError(Problem.of("lab.problem.check", index=index, field=name))

    if not isinstance(raw, dict):
        raise bad("-")
    point = raw.get("point") if isinstance(raw.get("point"), dict) else {}
    interval = raw.get("interval")
    if not (isinstance(interval, list) and len(interval) == 2 and all(_number(v) for v in interval)):
        raise bad("interval")
    predicted = _number(raw.get("predicted"))
    if predicted is None or predicted <= 0:
        raise bad("predicted")
    for name in ("parameters", "images"):
        if not (isinstance(point.get(name), int) and point[name] > 0):
            raise bad(name)
    registered_at, started_at = raw.get("registered_at"), raw.get("started_at")
    for name, value in (("registered_at", registered_at), ("started_at", started_at)):
        try:
            if value is not None or name == "registered_at":
                dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise bad(name) from None
    measured = _number(raw.get("measured"))
    runs = raw.get("runs") if isinstance(raw.get("runs"), list) else []
    return RegisteredCheck(
        str(raw.get("id") or f"check-{index}")[:40], point.get("width"), point.get("depth"), point["parameters"],
        point["images"], int(point.get("seeds") or 1), predicted, float(interval[0]), float(interval[1]),
        _number(raw.get("level")) or 0.8, str(registered_at), None if started_at is None else str(started_at),
        tuple(str(r) for r in runs), measured, int(raw.get("measured_runs") or 0),
        {k: float(v) for k, v in (raw.get("fit") or {}).items() if _number(v) is not None},
        dict(raw.get("grid") or {}), str(raw.get("digest") or ""),
        raw["payload"] if isinstance(raw.get("payload"), dict) else {}, _number(raw.get("registered_at_unix")))


def parse(content: bytes | str, shipped: bool = False) -> SweepTable:
    """A sweep file's table; SweepDataError (never another exception) for anything
    that is not one."""
    if isinstance(content, bytes):
        if len(content) > MAX_FILE_BYTES:
            raise SweepDataError(Problem.of("lab.problem.too_large", mb=MAX_FILE_BYTES // 2**20))
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError:
            raise SweepDataError(Problem.of("lab.problem.not_json", detail="not UTF-8 text")) from None
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise SweepDataError(Problem.of("lab.problem.not_json", detail=f"{exc.msg}, character {exc.pos}")) from None
    except RecursionError:
        raise SweepDataError(Problem.of("lab.problem.not_json", detail="nested too deeply")) from None
    if not isinstance(data, dict) or data.get("format") not in READABLE:
        raise SweepDataError(Problem.of("lab.problem.format", expected=FORMAT))
    points = data.get("points")
    if not isinstance(points, list):
        raise SweepDataError(Problem.of("lab.problem.point", index=0, field="points"))
    rows = tuple(_row(raw, i + 1) for i, raw in enumerate(points))
    checks = data.get("checks") or []
    if not isinstance(checks, list):
        raise SweepDataError(Problem.of("lab.problem.check", index=0, field="checks"))
    registered = tuple(_check(raw, i + 1) for i, raw in enumerate(checks))
    meta = {k: data[k] for k in ("commands", "provenance", "data", "exported_at", "lr_search") if k in data}
    missing = data.get("not_measured") if isinstance(data.get("not_measured"), dict) else {}
    missing = {str(k): int(v) for k, v in missing.items() if isinstance(v, int) and not isinstance(v, bool)}
    return SweepTable(str(data.get("name") or "?")[:60], str(data.get("model") or "?")[:40], rows, meta, missing,
                      shipped, registered)


def read(path: str | Path, shipped: bool = False) -> SweepTable:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SweepDataError(Problem.of("lab.problem.too_large", mb=MAX_FILE_BYTES // 2**20))
        content = path.read_bytes()
    except OSError as exc:
        raise SweepDataError(Problem.of("lab.problem.unreadable", path=str(path), detail=exc.strerror or "")) from None
    return parse(content, shipped=shipped)


def read_shipped() -> SweepTable:
    return read(SHIPPED_SWEEP, shipped=True)
