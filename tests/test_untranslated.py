"""No page shows an English catalogue string, or an English label, when the
user chose Chinese. Each page runs in-process (AppTest) with lang=zh; every
title, header, label, button, message and caption it renders is checked."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from pathlib import Path

from bigmodels.i18n import catalogue

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
