import json
import re
from pathlib import Path

import pytest

from bigmodels.base.i18n import LANGUAGES, LOCALES_DIR, CatalogueError, catalogue, missing_keys, placeholders, translate


def test_every_key_exists_in_every_language():
    assert missing_keys() == {lang: set() for lang in LANGUAGES}


def test_both_languages_take_the_same_placeholders():
    en, zh = catalogue("en"), catalogue("zh")
    for key in en:
        assert placeholders(en[key]) == placeholders(zh[key]), key


def test_chinese_texts_are_translated_not_copied():
    en, zh = catalogue("en"), catalogue("zh")
    def words(text):  # the text without its {placeholders}
        return re.sub(r"\{[^}]*\}", "", text)

    same = [k for k in en if en[k] == zh[k] and sum(c.isalpha() for c in words(en[k])) > 3]
    assert same == []


def test_translate_fills_values_and_missing_keys_fail():
    assert translate("home.data.not_found", "en", folder="/x") == "No MNIST IDX files found in /x; nothing was changed."
    with pytest.raises(KeyError):
        translate("no.such.key", "en")
    with pytest.raises(KeyError):
        translate("app.language", "fr")


def test_duplicate_keys_across_files_are_an_error(tmp_path, monkeypatch):
    import bigmodels.base.i18n as i18n

    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "a.json").write_text(json.dumps({"x.y": "1"}))
    (tmp_path / "en" / "b.json").write_text(json.dumps({"x.y": "2"}))
    monkeypatch.setattr(i18n, "LOCALES_DIR", tmp_path)
    i18n.catalogue.cache_clear()
    try:
        with pytest.raises(CatalogueError, match="defined twice"):
            i18n.catalogue("en")
    finally:
        monkeypatch.setattr(i18n, "LOCALES_DIR", LOCALES_DIR)
        i18n.catalogue.cache_clear()


def test_every_registered_model_has_a_title_and_source_labels_in_each_language():
    from bigmodels.runs.sources import model_title, run_source, shipped_source
    from bigmodels.models.registry import list_models

    for lang in LANGUAGES:
        titles = {name: model_title(name, lang) for name in list_models()}
        assert len(set(titles.values())) == len(titles)  # distinct names
        for name, title in titles.items():
            assert title in shipped_source(name, lang).label
            run = run_source("r1", name, 0.9876, Path("x.pt"), lang)
            assert title in run.label and "98.76%" in run.label and "r1" in run.label
    assert "随附" in shipped_source("cnn", "zh").label and "shipped" in shipped_source("cnn", "en").label
