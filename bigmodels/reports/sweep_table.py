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

A sweep file::

    {"format": "bigmodels-sweep/1", "name": ..., "model": "cnn", "commands": [...],
     "provenance": {...}, "data": ..., "exported_at": ...,
     "points": [{"run_id", "width", "depth", "parameters", "flops_per_image",
                 "images", "compute", "test_loss", "test_accuracy", "check",
                 "seconds", "config_hash", "config"}, ...],
     "not_measured": {"failed": 1, ...}}
"""
from __future__ import annotations

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
from bigmodels.runs.store import Run
from bigmodels.runs.sweeps import CHECK_TAG
from bigmodels.train.sweep import knobs_of

FORMAT = "bigmodels-sweep/1"
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

    @property
    def compute(self) -> float:
        return float(self.flops_per_image) * self.images


@dataclass(frozen=True)
class SweepTable:
    name: str
    model: str
    rows: tuple[SweepRow, ...]
    meta: dict[str, Any] = field(default_factory=dict)  # commands, provenance, data, exported_at
    not_measured: dict[str, int] = field(default_factory=dict)  # points without a result, by status
    shipped: bool = False

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
        blob = json.dumps([self.name, [asdict(r) for r in self.rows]], sort_keys=True)
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
                    run.duration(), run.config_hash)


def table_from_runs(name: str, runs: Iterable[Run], epochs_of) -> SweepTable:
    """The sweep's succeeded runs as a table (``epochs_of(run_id)``: its epoch
    records, e.g. ``store.epochs``); the others are counted by status. One row
    per config: a config trained twice counts its latest run."""
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
    ordered = tuple(sorted(rows.values(), key=lambda r: (r.check, r.parameters, r.images)))
    model = ",".join(sorted(models)) or "cnn"
    return SweepTable(name, model, ordered, {}, missing)


# ------------------------------------------------------------- files
def export(table: SweepTable, meta: dict[str, Any], configs: dict[str, dict] | None = None) -> dict[str, Any]:
    """The table as a sweep file's content (``meta``: commands, provenance, data;
    ``configs``: each run's training config by run id, so a point can be trained
    again exactly -- the file's reader does not need them)."""
    configs = configs or {}
    return {"format": FORMAT, "name": table.name, "model": table.model, **meta,
            "points": [{**asdict(r), "compute": r.compute, **({"config": configs[r.run_id]}
                                                              if r.run_id in configs else {})} for r in table.rows],
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
    return SweepRow(**values)


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
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SweepDataError(Problem.of("lab.problem.format", expected=FORMAT))
    points = data.get("points")
    if not isinstance(points, list):
        raise SweepDataError(Problem.of("lab.problem.point", index=0, field="points"))
    rows = tuple(_row(raw, i + 1) for i, raw in enumerate(points))
    meta = {k: data[k] for k in ("commands", "provenance", "data", "exported_at") if k in data}
    missing = data.get("not_measured") if isinstance(data.get("not_measured"), dict) else {}
    missing = {str(k): int(v) for k, v in missing.items() if isinstance(v, int) and not isinstance(v, bool)}
    return SweepTable(str(data.get("name") or "?")[:60], str(data.get("model") or "?")[:40], rows, meta, missing,
                      shipped)


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
