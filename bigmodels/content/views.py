"""View logic for the case-study and challenge pages, testable without Streamlit.

Filtering, sorting, formatting and table rows (the charts: bigmodels.figures.writeups). Labels come from the
string catalogues through :func:`bigmodels.base.i18n.translate`; case text comes
from the YAML files in the chosen language.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


from bigmodels.base.formatting import format_count_in, format_flops
from bigmodels.base.i18n import translate
from bigmodels.content.cases import CONTINENTS, COUNTRIES, MODALITIES, WEIGHTS, Case, parse_as_of
from bigmodels.content.challenges import Dataset



# --------------------------------------------------------------------------
# filtering and sorting
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseFilter:
    """Empty collections mean "no restriction"."""

    regions: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()
    weights: frozenset[str] = frozenset()
    challenges: frozenset[str] = frozenset()
    year_range: tuple[int, int] | None = None
    countries: frozenset[str] = frozenset()  # ISO-3 codes, e.g. the country clicked on the map

    def matches(self, case: Case) -> bool:
        if self.regions and case.region not in self.regions:
            return False
        if self.modalities and case.modality not in self.modalities:
            return False
        if self.weights and case.weights not in self.weights:
            return False
        if self.challenges and case.challenge not in self.challenges:
            return False
        if self.countries and case.country not in self.countries:
            return False
        if self.year_range is not None:
            lo, hi = self.year_range
            if not lo <= case.year <= hi:
                return False
        return True


def filter_cases(cases: Iterable[Case], case_filter: CaseFilter) -> list[Case]:
    return [c for c in cases if case_filter.matches(c)]


def searchable_text(case: Case, lang: str) -> str:
    """What a text search looks through, in the chosen language: name,
    organisation, country, deployment and outcome."""
    return " ".join((case.name[lang], case.organisation[lang], country_name(case.country, lang),
                     case.deployment[lang], case.outcome[lang])).casefold()


def search_cases(cases: Iterable[Case], query: str, lang: str) -> list[Case]:
    """The cases whose text (``searchable_text``) holds every word of ``query``,
    ignoring case; all of them for an empty query. Chinese needs no spaces:
    "医疗" finds "医疗问答", and "openai 编程" needs both."""
    words = query.casefold().split()
    return [c for c in cases if all(w in searchable_text(c, lang) for w in words)]


def selected_country(selection: object, known: Iterable[str] = ()) -> str | None:
    """The ISO-3 code of the country clicked on the world map, from the selection
    state the map's chart keeps (``{"selection": {"points": [{"location": "AUS", ...}]}}``, as
    ``st.plotly_chart(..., on_select=...)`` and ``bigmodels.app.charts.chart(..., on_select=...)``
    both keep it); None when nothing (or something unknown) is selected."""
    try:
        points = selection["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    codes = [p.get("location") for p in points if isinstance(p, dict)]
    allowed = set(known) or set(COUNTRIES)
    return next((code for code in codes if code in allowed), None)


SORT_KEYS = ("year", "name", "country", "parameters")
#: Cards drawn at once. All 39 cases as cards were most of a new tab's 3.3 s on the case-study page
#: (one 714 ms React render in a Chromium trace); the table above lists every case anyway.
CARDS_PER_PAGE = 10


def card_pages(n: int, per_page: int = CARDS_PER_PAGE) -> list[range]:
    """The cards' pages: index ranges into the sorted cases, ``per_page`` each, the last one shorter."""
    return [range(start, min(start + per_page, n)) for start in range(0, n, per_page)]


def sort_cases(cases: Iterable[Case], key: str = "year", lang: str = "en", descending: bool = False) -> list[Case]:
    """Sort by year, name, country or published parameter count.

    Cases with an undisclosed parameter count always sort last.
    """
    cases = list(cases)
    if key == "year":
        return sorted(cases, key=lambda c: (c.year, c.name[lang].casefold()), reverse=descending)
    if key == "name":
        return sorted(cases, key=lambda c: c.name[lang].casefold(), reverse=descending)
    if key == "country":
        return sorted(cases, key=lambda c: (COUNTRIES[c.country][lang], c.year), reverse=descending)
    if key == "parameters":
        known = sorted((c for c in cases if c.parameters is not None), key=lambda c: c.parameters, reverse=descending)
        return known + [c for c in cases if c.parameters is None]
    raise ValueError(f"unknown sort key {key!r}; use one of {', '.join(SORT_KEYS)}")


def year_bounds(cases: Sequence[Case]) -> tuple[int, int]:
    years = [c.year for c in cases]
    return (min(years), max(years))


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------

def format_count(n: float, lang: str) -> str:
    """Large numbers the way each language writes them: 671B / 6710 亿."""
    return format_count_in(n, lang)


def format_parameters(case: Case, lang: str) -> str:
    if case.parameters is None:
        return translate("cases.parameters.undisclosed", lang)
    return format_count(case.parameters, lang)


_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_as_of(as_of: str, lang: str) -> str:
    """A case's ``as_of`` the way each language writes a date: "27 Feb 2026" / "2026 年 2 月 27 日",
    or only the month where only the month is known ("Jun 2025" / "2025 年 6 月")."""
    date = parse_as_of(as_of)
    if date is None:
        return as_of
    has_day = len(as_of.strip()) > 7
    if lang == "zh":
        return f"{date.year} 年 {date.month} 月" + (f" {date.day} 日" if has_day else "")
    month = f"{_MONTHS_EN[date.month - 1]} {date.year}"
    return f"{date.day} {month}" if has_day else month


def newest_as_of(cases: Iterable[Case]) -> str | None:
    """The latest ``as_of`` among the cases (None when there are none): how current the write-ups are."""
    cases = list(cases)
    return max(cases, key=lambda c: (c.as_of_date, len(c.as_of))).as_of if cases else None


def format_scientific(value: float) -> str:
    """``3.14 × 10²³`` (same notation as the calculators)."""
    return format_flops(value)


def country_name(code: str, lang: str) -> str:
    return COUNTRIES[code][lang]


def label(mapping: dict[str, dict[str, str]], key: str, lang: str) -> str:
    return mapping[key][lang]


# --------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------

#: The cases table's columns, what people look for first; each fits a 1280 px screen together.
CASE_COLUMNS = ("name", "organisation", "country", "year", "parameters", "licence", "modality", "source")


def cases_table(cases: Iterable[Case], lang: str) -> list[dict[str, object]]:
    """Rows for ``st.dataframe``: one dict per case, keyed by ``CASE_COLUMNS``
    (the page names the headers with ``column_config``).

    ``parameters`` is written as people write it (671B, 6710 亿) or "not
    disclosed": never a raw 671000000000 nor "None". ``licence`` is in the
    reader's language where it has ordinary words, with whether the weights are open.
    """
    return [{
        "name": c.name[lang],
        "organisation": c.organisation[lang],
        "country": country_name(c.country, lang),
        "year": c.year,
        "parameters": format_parameters(c, lang),
        "licence": f"{label(WEIGHTS, c.weights, lang)} · {c.licence_in(lang)}",
        "modality": label(MODALITIES, c.modality, lang),
        "source": c.outcome_source.url,
    } for c in cases]


def summary_counts(cases: Sequence[Case]) -> dict[str, int]:
    return {
        "cases": len(cases),
        "countries": len({c.country for c in cases}),
        "modalities": len({c.modality for c in cases}),
        "open": sum(c.weights == "open" for c in cases),
        "continents": len({c.continent for c in cases}),
    }


def dataset_table(dataset: Dataset, lang: str) -> list[dict[str, object]]:
    t = lambda key, **kw: translate(key, lang, **kw)  # noqa: E731
    return [
        {
            t("challenges.table.model"): r.model,
            t("challenges.table.organisation"): r.organisation,
            t("challenges.table.year"): r.year,
            t("challenges.table.value", unit=dataset.unit): format_scientific(r.value),
            t("challenges.table.basis"): t(f"challenges.basis.{r.basis}") + (f" — {r.note[lang]}" if r.note else ""),
            t("challenges.table.source"): r.source.url,
        }
        for r in dataset.rows
    ]


def growth_factor(dataset: Dataset) -> tuple[float, int]:
    """(largest / smallest value, span in years) — e.g. how much training compute grew."""
    lo = min(dataset.rows, key=lambda r: r.value)
    hi = max(dataset.rows, key=lambda r: r.value)
    return hi.value / lo.value, hi.year - lo.year


def continent_of(code: str) -> str:
    return COUNTRIES[code]["continent"]


def cases_per_continent(cases: Iterable[Case]) -> dict[str, int]:
    """Number of cases on each inhabited continent (every continent listed, zeros included)."""
    counts = {key: 0 for key in CONTINENTS}
    for c in cases:
        counts[c.continent] += 1
    return counts


# --------------------------------------------------------------------------
# calculator presets (published configurations, each with its source)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingPreset:
    label: str
    n_params: float
    n_tokens: float
    source_title: str
    source_url: str
    label_zh: str | None = None  # where the label has words besides the model's name


@dataclass(frozen=True)
class ServingPreset:
    label: str
    n_params: float
    layers: int
    kv_heads: int
    head_dim: int
    dtype: str
    source_title: str
    source_url: str


TRAINING_PRESETS: dict[str, TrainingPreset] = {
    "gpt3": TrainingPreset("GPT-3 175B", 175e9, 300e9, "Brown et al. 2020, Table D.1", "https://arxiv.org/abs/2005.14165"),
    "chinchilla": TrainingPreset("Chinchilla 70B", 70e9, 1.4e12, "Hoffmann et al. 2022", "https://arxiv.org/abs/2203.15556"),
    "llama31_405b": TrainingPreset("Llama 3.1 405B", 405e9, 15.6e12, "The Llama 3 Herd of Models", "https://arxiv.org/abs/2407.21783"),
    "deepseek_v3": TrainingPreset(
        "DeepSeek-V3 (37B activated)", 37e9, 14.8e12, "DeepSeek-V3 Technical Report", "https://arxiv.org/abs/2412.19437",
        label_zh="DeepSeek-V3（每个 token 激活 370 亿参数）",
    ),
}

SERVING_PRESETS: dict[str, ServingPreset] = {
    "opt13b": ServingPreset(
        "OPT-13B", 13e9, 40, 40, 128, "fp16",
        "Kwon et al. 2023 (PagedAttention), section 3", "https://arxiv.org/abs/2309.06180",
    ),
    "qwen25_72b": ServingPreset(
        "Qwen2.5-72B", 72.7e9, 80, 8, 128, "bf16",
        "Qwen/Qwen2.5-72B config.json", "https://huggingface.co/Qwen/Qwen2.5-72B/blob/main/config.json",
    ),
    "llama31_405b": ServingPreset(
        "Llama 3.1 405B", 405e9, 126, 8, 128, "bf16",
        "The Llama 3 Herd of Models, Table 3", "https://arxiv.org/abs/2407.21783",
    ),
}

#: Model sizes for the memory calculator (parameters as published).
MEMORY_PRESETS: dict[str, tuple[str, float, str]] = {
    "gpt2_xl": ("GPT-2 1.5B (ZeRO paper example)", 1.5e9, "https://arxiv.org/abs/1910.02054"),
    "llama31_405b": ("Llama 3.1 405B", 405e9, "https://arxiv.org/abs/2407.21783"),
    "deepseek_v3": ("DeepSeek-V3 671B (all experts)", 671e9, "https://arxiv.org/abs/2412.19437"),
}
#: Chinese for the memory presets' labels that have words besides the model's name.
MEMORY_PRESET_LABELS_ZH = {"gpt2_xl": "GPT-2 1.5B（ZeRO 论文中的例子）", "deepseek_v3": "DeepSeek-V3 671B（全部专家）"}


def preset_label(presets: dict, key: str, lang: str) -> str:
    """A calculator preset's label in ``lang`` (the model's name where it has no words to translate)."""
    preset = presets[key]
    if presets is MEMORY_PRESETS:
        return (MEMORY_PRESET_LABELS_ZH.get(key) if lang == "zh" else None) or preset[0]
    return (getattr(preset, "label_zh", None) if lang == "zh" else None) or preset.label


def cases_for_challenge(cases: Iterable[Case], challenge_id: str, lang: str) -> list[str]:
    return [c.name[lang] for c in cases if c.challenge == challenge_id]
