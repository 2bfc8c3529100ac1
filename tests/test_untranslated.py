"""No page shows an English catalogue string, or an English label, when the
user chose Chinese. Each page runs in-process (AppTest) with lang=zh; every
title, header, label, button, message and caption it renders is checked."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from pathlib import Path

from bigmodels.base.i18n import catalogue

REPO = Path(__file__).resolve().parent.parent

PAGES = ["home", "cases", "challenges", "launcher", "sandbox", "comparison"]
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{3,}(?:\s+[A-Za-z]{2,}){3,}\b")  # four or more English words in a row


def english_only_texts() -> set[str]:
    en, zh = catalogue("en"), catalogue("zh")
    return {text for key, text in en.items() if zh[key] != text and sum(c.isalpha() for c in text) > 3}


def shown_texts(at: AppTest) -> list[str]:
    texts = []
    for kind in ("title", "header", "subheader", "caption", "info", "warning", "error", "success"):
        texts += [str(e.value) for e in getattr(at, kind)]
    for kind in ("button", "selectbox", "slider", "number_input", "text_input", "checkbox", "toggle", "radio",
                 "multiselect", "tabs", "expander"):
        for element in getattr(at, kind, []):
            label = getattr(element, "label", None)
            if label:
                texts.append(str(label))
    return texts


def run_in_chinese(page: str, tmp_path, monkeypatch) -> AppTest:
    """``page`` run in-process with the language set to 中文, an empty run store, no exception."""
    monkeypatch.setenv("BIGMODELS_HOME", str(tmp_path))
    at = AppTest.from_file(str(REPO / "pages" / f"{page}.py"), default_timeout=240)
    at.session_state["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", PAGES)
def test_page_in_chinese_shows_no_english_labels(page, tmp_path, monkeypatch):
    at = run_in_chinese(page, tmp_path, monkeypatch)
    texts = shown_texts(at)
    assert texts, "the page rendered nothing to check"
    english = english_only_texts()
    leaked = [t for t in texts if t in english]
    assert leaked == []
    # code, URLs and cited titles (markdown links to sources) stay in their own language
    long_english = [t for t in texts if ENGLISH_RUN.search(re.sub(r"`[^`]*`|\[[^\]]*\]\([^)]*\)|https?://\S+", "", t))]
    assert long_english == []


# Words that stay as they are in Chinese text: names of models, methods, data and
# hardware, units, and the short technical abbreviations the Chinese catalogue uses too.
KEPT_WORDS = {
    "lenet", "cnn", "lstm", "rnn", "vit", "transformer", "mnist", "adam", "adamw", "sgd", "gpu", "cpu", "cuda",
    "mps", "fp", "bf", "auto", "onecycle", "cosine", "step", "constant", "relu", "gelu", "cls", "mean", "pca",
    "ms", "img", "mb", "kb", "gb", "mib", "gib", "px", "tflop", "flop", "flops", "macs", "fgsm", "grad", "cam",
    "llm", "api", "kv", "zero", "csv", "json", "png", "default", "article", "wide", "torch", "pytorch",
}
WORD = re.compile(r"[A-Za-z]{2,}")


def option_texts(at: AppTest) -> list[str]:
    """The formatted options of every picker the page shows (what a person reads in the list)."""
    texts = []
    for kind in ("selectbox", "multiselect", "radio"):
        for element in getattr(at, kind, []):
            texts += [str(option) for option in (element.options or [])]
    return texts


@pytest.mark.parametrize("page", ["comparison", "launcher", "sandbox"])
def test_pickers_in_chinese_show_no_english_words(page, tmp_path, monkeypatch):
    """Model names and sources in pickers are translated too (they come from the
    registry and the run store, not straight from a catalogue)."""
    at = run_in_chinese(page, tmp_path, monkeypatch)
    options = option_texts(at)
    assert options, "the page showed no pickers to check"
    english = [o for o in options if any(w.lower() not in KEPT_WORDS for w in WORD.findall(o))]
    assert english == []


# ------------------------------------------------------------ the pages of the write-ups and the comparison
MY_PAGES = ["home", "comparison", "cases", "challenges"]


@pytest.mark.parametrize("page", ["comparison", "cases"])
def test_every_multiselect_has_a_chinese_placeholder(page, tmp_path, monkeypatch):
    """Streamlit's own placeholder ("Choose an option") is English: each picker names its own."""
    at = run_in_chinese(page, tmp_path, monkeypatch)
    pickers = list(at.multiselect)
    assert pickers
    for picker in pickers:
        placeholder = picker.proto.placeholder
        assert placeholder and re.search(r"[\u4e00-\u9fff]", placeholder), (picker.label, placeholder)


def test_a_bad_calculator_input_is_reported_in_chinese(tmp_path, monkeypatch):
    at = run_in_chinese("challenges", tmp_path, monkeypatch)
    label = catalogue("zh")["challenges.calc.train.params"]
    (params,) = [n for n in at.number_input if n.label == label]
    params.set_value(0.0)
    (submit,) = [b for b in at.button if b.label == catalogue("zh")["challenges.calc.train.submit"]]
    submit.click().run()
    assert not at.exception
    errors = [str(e.value) for e in at.error]
    assert len(errors) == 1 and "参数量" in errors[0] and "正数" in errors[0], errors
    assert not ENGLISH_RUN.search(errors[0]) and "must be" not in errors[0]


def proper_names() -> set[str]:
    """Words that stay as they are in a Chinese table cell: names of systems, makers
    and licences (their Chinese text keeps them, as in "Google DeepMind 与 ...")."""
    from bigmodels.content.cases import default_cases
    from bigmodels.content.challenges import default_challenges

    names = set()
    for case in default_cases():
        names |= {w.lower() for w in WORD.findall(f"{case.name['zh']} {case.organisation['zh']}")}
        names |= {w.lower() for w in WORD.findall(case.licence_zh or case.licence)
                  if case.licence_zh or not re.search("(?i)proprietary|non-commercial|service", case.licence)}
    for dataset in default_challenges().datasets.values():
        names |= {w.lower() for row in dataset.rows for w in WORD.findall(f"{row.model} {row.organisation}")}
    return names


@pytest.mark.parametrize("page", MY_PAGES)
def test_table_cells_in_chinese_have_no_english_words(page, tmp_path, monkeypatch):
    """What a table shows in 中文 is Chinese, but for proper names and units."""
    at = run_in_chinese(page, tmp_path, monkeypatch)
    frames = [e.value for e in at.dataframe]
    assert frames, "the page showed no table"
    # "token" is written as is in Chinese ML text; Epoch AI and HyperCLOVA Studio are names
    allowed = KEPT_WORDS | proper_names() | {"token", "epoch", "studio"}
    english = set()
    for frame in frames:
        for column in frame.columns:
            if "source" in str(column).lower() or "出处" in str(column) or column == "source":
                continue  # links to the sources stay as they are
            english |= {w for cell in frame[column] if isinstance(cell, str) for w in WORD.findall(cell)
                        if w.lower() not in allowed}
    assert english == set()
