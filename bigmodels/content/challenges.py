"""The four challenges: loading and validation of ``challenges.yaml``."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from bigmodels.content.cases import CHALLENGES, LANGS, Source, _check_source, _check_text

CHALLENGES_PATH = Path(__file__).with_name("challenges.yaml")

#: App pages a challenge may link to (registered by the app shell as
#: ``pages/<name>.py``).
DEMO_PAGES = ("comparison", "launcher", "sandbox")
BASES = ("reported", "estimated", "derived")
FIRST_YEAR = 2012


@dataclass(frozen=True)
class Evidence:
    text: Mapping[str, str]
    source: Source


@dataclass(frozen=True)
class DataPoint:
    model: str
    organisation: str
    year: int
    value: float
    basis: str
    source: Source
    note: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Reference:
    value: float
    label: Mapping[str, str]
    source: Source


@dataclass(frozen=True)
class Dataset:
    key: str
    unit: str
    title: Mapping[str, str]
    rows: tuple[DataPoint, ...]
    reference: Reference | None = None


@dataclass(frozen=True)
class Challenge:
    id: str
    title: Mapping[str, str]
    summary: Mapping[str, str]
    evidence: tuple[Evidence, ...]
    responses: tuple[Mapping[str, str], ...]
    demo_page: str
    demo_label: Mapping[str, str]
    chart: str | None

    @property
    def sources(self) -> tuple[Source, ...]:
        seen: dict[str, Source] = {}
        for ev in self.evidence:
            seen.setdefault(ev.source.url, ev.source)
        return tuple(seen.values())


@dataclass(frozen=True)
class ChallengeContent:
    challenges: tuple[Challenge, ...]
    datasets: Mapping[str, Dataset]

    def get(self, challenge_id: str) -> Challenge:
        for c in self.challenges:
            if c.id == challenge_id:
                return c
        raise KeyError(challenge_id)


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

def _validate_dataset(key: str, raw: Any, errors: list[str]) -> None:
    where = f"datasets.{key}"
    if not isinstance(raw, dict):
        errors.append(f"{where}: must be a mapping")
        return
    if not isinstance(raw.get("unit"), str) or not raw["unit"]:
        errors.append(f"{where}: missing unit")
    _check_text(f"{where}.title", raw.get("title"), errors)
    rows = raw.get("rows")
    if not isinstance(rows, list) or len(rows) < 3:
        errors.append(f"{where}: needs a 'rows' list with at least 3 entries")
        return
    seen: set[str] = set()
    for i, row in enumerate(rows):
        rw = f"{where}.rows[{i}]"
        if not isinstance(row, dict):
            errors.append(f"{rw}: must be a mapping")
            continue
        for field in ("model", "organisation"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                errors.append(f"{rw}: missing {field}")
        if row.get("model") in seen:
            errors.append(f"{rw}: duplicate model {row.get('model')!r}")
        seen.add(row.get("model"))
        year = row.get("year")
        if not isinstance(year, int) or isinstance(year, bool) or year < FIRST_YEAR:
            errors.append(f"{rw}: year must be a whole number from {FIRST_YEAR}, got {year!r}")
        value = row.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            errors.append(f"{rw}: value must be a positive number, got {value!r}")
        if row.get("basis") not in BASES:
            errors.append(f"{rw}: basis must be one of {', '.join(BASES)}, got {row.get('basis')!r}")
        if row.get("basis") == "derived" and row.get("note") is None:
            errors.append(f"{rw}: a derived value needs a note giving its formula")
        if row.get("note") is not None:
            _check_text(f"{rw}.note", row["note"], errors)
        _check_source(f"{rw}.source", row.get("source"), errors)
    ref = raw.get("reference")
    if ref is not None:
        if not isinstance(ref, dict):
            errors.append(f"{where}.reference: must be a mapping")
        else:
            value = ref.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                errors.append(f"{where}.reference: value must be a positive number")
            _check_text(f"{where}.reference.label", ref.get("label"), errors)
            _check_source(f"{where}.reference.source", ref.get("source"), errors)


def validate_challenges(data: Any) -> list[str]:
    """Errors in the raw challenges document (empty list when it is valid)."""
    if not isinstance(data, dict) or not isinstance(data.get("challenges"), list):
        return ["the file must be a mapping with a 'challenges' list"]
    errors: list[str] = []
    datasets = data.get("datasets") or {}
    if not isinstance(datasets, dict):
        errors.append("datasets: must be a mapping")
        datasets = {}
    for key, raw in datasets.items():
        _validate_dataset(key, raw, errors)

    seen: list[str] = []
    for i, raw in enumerate(data["challenges"]):
        label = f"challenge #{i + 1}"
        if not isinstance(raw, dict):
            errors.append(f"{label}: must be a mapping")
            continue
        cid = raw.get("id")
        if cid not in CHALLENGES:
            errors.append(f"{label}: id must be one of {', '.join(CHALLENGES)}, got {cid!r}")
        else:
            label = f"challenge '{cid}'"
            if cid in seen:
                errors.append(f"{label}: defined twice")
            seen.append(cid)
        for field in ("title", "summary"):
            _check_text(f"{label}.{field}", raw.get(field), errors)
        evidence = raw.get("evidence")
        if not isinstance(evidence, list) or len(evidence) < 2:
            errors.append(f"{label}: needs at least 2 pieces of evidence")
        else:
            for j, ev in enumerate(evidence):
                if not isinstance(ev, dict):
                    errors.append(f"{label}.evidence[{j}]: must be a mapping")
                    continue
                _check_text(f"{label}.evidence[{j}].text", ev.get("text"), errors)
                text = ev.get("text")
                if isinstance(text, dict) and isinstance(text.get("en"), str) and not re.search(r"\d", text["en"]):
                    errors.append(f"{label}.evidence[{j}]: evidence must contain a figure (no digits found)")
                _check_source(f"{label}.evidence[{j}].source", ev.get("source"), errors)
        responses = raw.get("responses")
        if not isinstance(responses, list) or not responses:
            errors.append(f"{label}: needs a non-empty 'responses' list")
        else:
            for j, resp in enumerate(responses):
                _check_text(f"{label}.responses[{j}]", resp, errors)
        demo = raw.get("demo")
        if not isinstance(demo, dict) or demo.get("page") not in DEMO_PAGES:
            errors.append(f"{label}: demo.page must be one of {', '.join(DEMO_PAGES)}")
        else:
            _check_text(f"{label}.demo.label", demo.get("label"), errors)
        chart = raw.get("chart")
        if chart is not None and chart not in datasets:
            errors.append(f"{label}: chart {chart!r} is not a dataset in this file")
    if missing := [c for c in CHALLENGES if c not in seen]:
        errors.append(f"challenges missing: {', '.join(missing)}")
    return errors


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------

class ChallengesError(ValueError):
    """The challenges file is invalid; the message lists every problem."""


def _text(raw: Mapping[str, Any]) -> dict[str, str]:
    return {lang: str(raw[lang]).strip() for lang in LANGS}


def _source(raw: Mapping[str, str]) -> Source:
    return Source(title=raw["title"].strip(), url=raw["url"].strip())


def _dataset(key: str, raw: Mapping[str, Any]) -> Dataset:
    ref = raw.get("reference")
    rows = tuple(
        DataPoint(
            model=r["model"],
            organisation=r["organisation"],
            year=r["year"],
            value=float(r["value"]),
            basis=r["basis"],
            source=_source(r["source"]),
            note=_text(r["note"]) if r.get("note") else None,
        )
        for r in raw["rows"]
    )
    return Dataset(
        key=key,
        unit=raw["unit"],
        title=_text(raw["title"]),
        rows=tuple(sorted(rows, key=lambda r: (r.year, r.value))),
        reference=Reference(float(ref["value"]), _text(ref["label"]), _source(ref["source"])) if ref else None,
    )


def load_challenges(path: Path | str = CHALLENGES_PATH) -> ChallengeContent:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if errors := validate_challenges(data):
        raise ChallengesError(f"{path}: {len(errors)} problem(s):\n  " + "\n  ".join(errors))
    datasets = {k: _dataset(k, v) for k, v in (data.get("datasets") or {}).items()}
    challenges = tuple(
        Challenge(
            id=raw["id"],
            title=_text(raw["title"]),
            summary=_text(raw["summary"]),
            evidence=tuple(Evidence(_text(e["text"]), _source(e["source"])) for e in raw["evidence"]),
            responses=tuple(_text(r) for r in raw["responses"]),
            demo_page=raw["demo"]["page"],
            demo_label=_text(raw["demo"]["label"]),
            chart=raw.get("chart"),
        )
        for raw in data["challenges"]
    )
    return ChallengeContent(challenges=challenges, datasets=datasets)


@functools.lru_cache(maxsize=1)
def default_challenges() -> ChallengeContent:
    return load_challenges(CHALLENGES_PATH)
