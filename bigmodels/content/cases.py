"""Case studies of large-model deployments: loading and validation.

The data lives in ``cases.yaml`` beside this module. ``validate_cases`` checks
the raw YAML structure and returns readable error messages (an empty list
means the file is valid); ``load_cases`` validates and returns immutable
:class:`Case` objects. No Streamlit here.
"""
from __future__ import annotations

import datetime as _dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from bigmodels.base.i18n import translate

CASES_PATH = Path(__file__).with_name("cases.yaml")
LANGS = ("en", "zh")


def _labelled(kind: str, keys: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """key -> {language: display name}; the names live in the catalogues (``cases.<kind>.<key>``)."""
    return {key: {lang: translate(f"cases.{kind}.{key}", lang) for lang in LANGS} for key in keys}


#: Modalities a case may have, with display names.
MODALITIES = _labelled("modality", (
    "text", "code", "image", "speech", "biology", "weather", "translation", "multimodal", "video"
))

#: The four challenges named by the source article.
CHALLENGES = _labelled("challenge", ("compute", "data", "interpretability", "robustness"))

WEIGHTS = _labelled("weights", ("open", "closed"))

#: Regions used by the filters.
REGIONS = _labelled("region", (
    "north_america", "latin_america", "europe", "africa", "middle_east", "east_asia", "south_asia", "oceania"
))

#: The six inhabited continents (the Americas counted as two). Every country
#: names one, so the cases can be counted per continent.
CONTINENTS = _labelled("continent", ("africa", "asia", "europe", "north_america", "south_america", "oceania"))

#: ISO 3166-1 alpha-3 codes a case may use, their names, region and
#: continent. A code must be here to be accepted, so a typo cannot silently
#: drop a case off the map.
COUNTRIES: dict[str, dict[str, str]] = {
    "USA": {"en": "United States", "zh": "美国", "region": "north_america", "continent": "north_america"},
    "CAN": {"en": "Canada", "zh": "加拿大", "region": "north_america", "continent": "north_america"},
    "MEX": {"en": "Mexico", "zh": "墨西哥", "region": "latin_america", "continent": "north_america"},
    "BRA": {"en": "Brazil", "zh": "巴西", "region": "latin_america", "continent": "south_america"},
    "CHL": {"en": "Chile", "zh": "智利", "region": "latin_america", "continent": "south_america"},
    "ARG": {"en": "Argentina", "zh": "阿根廷", "region": "latin_america", "continent": "south_america"},
    "GBR": {"en": "United Kingdom", "zh": "英国", "region": "europe", "continent": "europe"},
    "FRA": {"en": "France", "zh": "法国", "region": "europe", "continent": "europe"},
    "DEU": {"en": "Germany", "zh": "德国", "region": "europe", "continent": "europe"},
    "CHE": {"en": "Switzerland", "zh": "瑞士", "region": "europe", "continent": "europe"},
    "PRT": {"en": "Portugal", "zh": "葡萄牙", "region": "europe", "continent": "europe"},
    "ZAF": {"en": "South Africa", "zh": "南非", "region": "africa", "continent": "africa"},
    "NGA": {"en": "Nigeria", "zh": "尼日利亚", "region": "africa", "continent": "africa"},
    "KEN": {"en": "Kenya", "zh": "肯尼亚", "region": "africa", "continent": "africa"},
    "ARE": {"en": "United Arab Emirates", "zh": "阿联酋", "region": "middle_east", "continent": "asia"},
    "SAU": {"en": "Saudi Arabia", "zh": "沙特阿拉伯", "region": "middle_east", "continent": "asia"},
    "CHN": {"en": "China", "zh": "中国", "region": "east_asia", "continent": "asia"},
    "JPN": {"en": "Japan", "zh": "日本", "region": "east_asia", "continent": "asia"},
    "KOR": {"en": "South Korea", "zh": "韩国", "region": "east_asia", "continent": "asia"},
    "IND": {"en": "India", "zh": "印度", "region": "south_asia", "continent": "asia"},
    "AUS": {"en": "Australia", "zh": "澳大利亚", "region": "oceania", "continent": "oceania"},
    "NZL": {"en": "New Zealand", "zh": "新西兰", "region": "oceania", "continent": "oceania"},
}

UNDISCLOSED = "undisclosed"
FIRST_YEAR = 2017  # the Transformer paper; nothing earlier counts as a "large model" case
_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
#: ``as_of``: the date the case's figures are true for, to the day ("2026-02-27") or the month ("2025-06").
_AS_OF_RE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


def parse_as_of(value: Any) -> _dt.date | None:
    """The date an ``as_of`` value stands for (the 1st for a month), or None when it is not one.

    YAML reads an unquoted 2026-02-27 as a date, so dates are accepted as well as text.
    """
    if isinstance(value, _dt.datetime):
        return None
    if isinstance(value, _dt.date):
        return value
    if not isinstance(value, str) or not (m := _AS_OF_RE.match(value.strip())):
        return None
    try:
        return _dt.date(int(m[1]), int(m[2]), int(m[3] or 1))
    except ValueError:
        return None


def as_of_text(value: Any) -> str:
    """``as_of`` as written: "2026-02-27" or "2025-06"."""
    return value.isoformat() if isinstance(value, _dt.date) else str(value).strip()

REQUIRED_FIELDS = (
    "id", "name", "organisation", "country", "year", "modality", "parameters",
    "weights", "licence", "deployment", "outcome", "challenge", "challenge_note",
    "sources", "as_of",
)
TEXT_FIELDS = ("name", "organisation", "deployment", "challenge_note")
OPTIONAL_TEXT_FIELDS = ("parameters_note",)
# ``licence`` names the terms as their owner writes them (a proper name: "Apache-2.0",
# "Llama 4 Community License"); ``licence_zh`` says it in Chinese where it has ordinary words
# ("Proprietary service", "non-commercial").
OPTIONAL_FIELDS = ("licence_zh",)


@dataclass(frozen=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True)
class Case:
    id: str
    name: Mapping[str, str]
    organisation: Mapping[str, str]
    country: str
    year: int
    modality: str
    parameters: int | None  # None means undisclosed
    parameters_note: Mapping[str, str] | None
    weights: str
    licence: str
    deployment: Mapping[str, str]
    outcome: Mapping[str, str]
    outcome_source: Source
    challenge: str
    challenge_note: Mapping[str, str]
    sources: tuple[Source, ...]
    as_of: str = ""  # the date the figures are true for: "2026-02-27" or "2025-06"
    licence_zh: str | None = None

    @property
    def as_of_date(self) -> _dt.date:
        """``as_of`` as a date (the 1st of the month when only the month is given)."""
        return parse_as_of(self.as_of) or _dt.date(self.year, 1, 1)

    def licence_in(self, lang: str) -> str:
        """The licence as a reader of ``lang`` reads it (its proper name where it has no translation)."""
        return self.licence_zh if lang == "zh" and self.licence_zh else self.licence

    @property
    def region(self) -> str:
        return COUNTRIES[self.country]["region"]

    @property
    def continent(self) -> str:
        return COUNTRIES[self.country]["continent"]

    @property
    def all_sources(self) -> tuple[Source, ...]:
        """The outcome's source first, then the others (no duplicates)."""
        seen: dict[str, Source] = {self.outcome_source.url: self.outcome_source}
        for s in self.sources:
            seen.setdefault(s.url, s)
        return tuple(seen.values())


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

def _check_text(where: str, value: Any, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: must be a mapping with keys {', '.join(LANGS)}")
        return
    for lang in LANGS:
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where}: missing or empty '{lang}' text")
    if lang_extra := set(value) - set(LANGS) - {"source"}:
        errors.append(f"{where}: unexpected keys {sorted(lang_extra)}")
    zh = value.get("zh")
    if isinstance(zh, str) and zh.strip() and not re.search(r"[\u4e00-\u9fff]", zh) and value.get("en") != zh:
        # A Chinese text with no Chinese characters is almost always an untranslated copy.
        errors.append(f"{where}: 'zh' text contains no Chinese characters")


def _check_source(where: str, value: Any, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: must be a mapping with 'title' and 'url'")
        return
    title, url = value.get("title"), value.get("url")
    if not isinstance(title, str) or not title.strip():
        errors.append(f"{where}: missing title")
    if not isinstance(url, str) or not _URL_RE.match(url):
        errors.append(f"{where}: url must start with http:// or https://, got {url!r}")


def validate_case(raw: Any, index: int, current_year: int | None = None) -> list[str]:
    """Errors in one raw case mapping (empty list when it is valid)."""
    current_year = current_year or _dt.date.today().year
    errors: list[str] = []
    label = f"case #{index + 1}"
    if not isinstance(raw, dict):
        return [f"{label}: must be a mapping"]
    if isinstance(raw.get("id"), str):
        label = f"case '{raw['id']}'"
    for field in REQUIRED_FIELDS:
        if field not in raw:
            errors.append(f"{label}: missing required field '{field}'")
    known = set(REQUIRED_FIELDS) | set(OPTIONAL_TEXT_FIELDS) | set(OPTIONAL_FIELDS)
    if extra := set(raw) - known:
        errors.append(f"{label}: unknown fields {sorted(extra)}")

    case_id = raw.get("id")
    if "id" in raw and (not isinstance(case_id, str) or not _ID_RE.match(case_id)):
        errors.append(f"{label}: id must be a lowercase slug like 'my-case', got {case_id!r}")
    for field in TEXT_FIELDS:
        if field in raw:
            _check_text(f"{label}.{field}", raw[field], errors)
    for field in OPTIONAL_TEXT_FIELDS:
        if raw.get(field) is not None:
            _check_text(f"{label}.{field}", raw[field], errors)

    if "country" in raw and raw["country"] not in COUNTRIES:
        errors.append(
            f"{label}: country {raw['country']!r} is not a known ISO 3166-1 alpha-3 code "
            f"(known: {', '.join(sorted(COUNTRIES))})"
        )
    year = raw.get("year")
    if "year" in raw and (not isinstance(year, int) or isinstance(year, bool) or not FIRST_YEAR <= year <= current_year):
        errors.append(f"{label}: year must be a whole number from {FIRST_YEAR} to {current_year}, got {year!r}")
    if "modality" in raw and raw["modality"] not in MODALITIES:
        errors.append(f"{label}: modality {raw['modality']!r} is not one of {', '.join(MODALITIES)}")
    if "challenge" in raw and raw["challenge"] not in CHALLENGES:
        errors.append(f"{label}: challenge {raw['challenge']!r} is not one of {', '.join(CHALLENGES)}")
    if "weights" in raw and raw["weights"] not in WEIGHTS:
        errors.append(f"{label}: weights must be 'open' or 'closed', got {raw['weights']!r}")
    if "licence" in raw and (not isinstance(raw["licence"], str) or not raw["licence"].strip()):
        errors.append(f"{label}: licence must be a non-empty string")
    if "licence_zh" in raw and (not isinstance(raw["licence_zh"], str)
                                or not re.search(r"[\u4e00-\u9fff]", raw["licence_zh"])):
        errors.append(f"{label}: licence_zh must be Chinese text")

    if "as_of" in raw:
        as_of = parse_as_of(raw["as_of"])
        if as_of is None:
            errors.append(f"{label}: as_of must be a date like 2026-02-27 or a month like 2025-06, got {raw['as_of']!r}")
        elif not _dt.date(FIRST_YEAR, 1, 1) <= as_of <= _dt.date(current_year, 12, 31):
            errors.append(f"{label}: as_of {raw['as_of']!r} must fall between {FIRST_YEAR} and the end of {current_year}")
        elif isinstance(year, int) and not isinstance(year, bool) and as_of.year < year:
            errors.append(f"{label}: as_of {raw['as_of']!r} is before the case's year {year}")

    params = raw.get("parameters")
    if "parameters" in raw:
        if params == UNDISCLOSED:
            if raw.get("parameters_note") is None:
                errors.append(f"{label}: an undisclosed parameter count needs a parameters_note saying so")
        elif isinstance(params, bool) or not isinstance(params, int) or params <= 0:
            errors.append(f"{label}: parameters must be a positive whole number or '{UNDISCLOSED}', got {params!r}")

    outcome = raw.get("outcome")
    if "outcome" in raw:
        _check_text(f"{label}.outcome", outcome, errors)
        if isinstance(outcome, dict):
            if isinstance(outcome.get("en"), str) and not re.search(r"\d", outcome["en"]):
                errors.append(f"{label}.outcome: must state a measurable figure (no digits found)")
            if "source" not in outcome:
                errors.append(f"{label}.outcome: missing source")
            else:
                _check_source(f"{label}.outcome.source", outcome["source"], errors)

    sources = raw.get("sources")
    if "sources" in raw:
        if not isinstance(sources, list) or not sources:
            errors.append(f"{label}: sources must be a non-empty list")
        else:
            for i, src in enumerate(sources):
                _check_source(f"{label}.sources[{i}]", src, errors)
    return errors


def validate_cases(data: Any, current_year: int | None = None) -> list[str]:
    """Errors in the whole raw document (``{"cases": [...]}``)."""
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        return ["the file must be a mapping with a 'cases' list"]
    errors: list[str] = []
    ids: dict[str, int] = {}
    names: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(data["cases"]):
        errors.extend(validate_case(raw, i, current_year))
        if not isinstance(raw, dict):
            continue
        case_id = raw.get("id")
        if isinstance(case_id, str):
            if case_id in ids:
                errors.append(f"duplicate id '{case_id}' (cases #{ids[case_id] + 1} and #{i + 1})")
            ids.setdefault(case_id, i)
        name, org = raw.get("name"), raw.get("organisation")
        if isinstance(name, dict) and isinstance(org, dict):
            key = (str(name.get("en", "")).casefold(), str(org.get("en", "")).casefold())
            if key in names:
                errors.append(f"duplicate case {name.get('en')!r} by {org.get('en')!r} (cases #{names[key] + 1} and #{i + 1})")
            names.setdefault(key, i)
    return errors


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------

class CasesError(ValueError):
    """The cases file is invalid; the message lists every problem."""


def read_raw(path: Path | str = CASES_PATH) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _source(raw: Mapping[str, str]) -> Source:
    return Source(title=raw["title"].strip(), url=raw["url"].strip())


def _text(raw: Mapping[str, Any]) -> dict[str, str]:
    return {lang: str(raw[lang]).strip() for lang in LANGS}


def _build(raw: Mapping[str, Any]) -> Case:
    params = raw["parameters"]
    return Case(
        id=raw["id"],
        name=_text(raw["name"]),
        organisation=_text(raw["organisation"]),
        country=raw["country"],
        year=raw["year"],
        modality=raw["modality"],
        parameters=None if params == UNDISCLOSED else int(params),
        parameters_note=_text(raw["parameters_note"]) if raw.get("parameters_note") else None,
        weights=raw["weights"],
        licence=raw["licence"].strip(),
        licence_zh=raw["licence_zh"].strip() if raw.get("licence_zh") else None,
        deployment=_text(raw["deployment"]),
        outcome=_text(raw["outcome"]),
        outcome_source=_source(raw["outcome"]["source"]),
        challenge=raw["challenge"],
        challenge_note=_text(raw["challenge_note"]),
        sources=tuple(_source(s) for s in raw["sources"]),
        as_of=as_of_text(raw["as_of"]),
    )


def load_cases(path: Path | str = CASES_PATH) -> list[Case]:
    """Validated cases from ``path`` (raises :class:`CasesError` listing all problems)."""
    data = read_raw(path)
    if errors := validate_cases(data):
        raise CasesError(f"{path}: {len(errors)} problem(s):\n  " + "\n  ".join(errors))
    return [_build(raw) for raw in data["cases"]]


@functools.lru_cache(maxsize=1)
def default_cases() -> tuple[Case, ...]:
    """The shipped cases, loaded once per process."""
    return tuple(load_cases(CASES_PATH))
