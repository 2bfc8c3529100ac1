"""English / Simplified Chinese string catalogues.

Every string the UI shows comes from here. Catalogues live in
``bigmodels/locales/<lang>/<area>.json`` as flat ``{"key": "text"}`` objects;
keys are namespaced by area (``home.title``, ``sandbox.hint``) so that each page
owns one file per language and no two pages edit the same file. All files of a
language are merged into one catalogue at load time; a key defined twice is an
error, because a silent override would make one page's text depend on file
order.

This module does not import Streamlit: the pages call ``bigmodels.app.session.t`` which
adds the user's language choice from the session.
"""
from __future__ import annotations

import functools
import json
import string
from pathlib import Path

LANGUAGES: dict[str, str] = {"en": "English", "zh": "简体中文"}
DEFAULT_LANGUAGE = "en"
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


class CatalogueError(ValueError):
    """A catalogue file is malformed or defines a key twice."""


@functools.lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    """The merged catalogue for ``lang`` (cached: files ship with the package)."""
    if lang not in LANGUAGES:
        raise KeyError(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    merged: dict[str, str] = {}
    for path in sorted((LOCALES_DIR / lang).glob("*.json")):
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CatalogueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(entries, dict):
            raise CatalogueError(f"{path}: expected an object of key -> text")
        for key, text in entries.items():
            if not isinstance(text, str):
                raise CatalogueError(f"{path}: value of {key!r} is not a string")
            if key in merged:
                raise CatalogueError(f"{path}: key {key!r} is defined twice in {lang}")
            merged[key] = text
    return merged


def translate(key: str, lang: str = DEFAULT_LANGUAGE, /, **values: object) -> str:
    """Look ``key`` up in ``lang`` and fill ``{placeholders}`` from ``values``.

    A missing key raises ``KeyError``: a page showing a raw key to a user is a
    bug that tests should catch, not something to paper over with a fallback.
    """
    text = catalogue(lang)[key]
    return text.format(**values) if values else text


def placeholders(text: str) -> set[str]:
    """Names of the ``{fields}`` in a catalogue text (used to check that both
    languages take the same values)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def missing_keys() -> dict[str, set[str]]:
    """For each language, the keys that another language has and it lacks."""
    all_keys = set().union(*(catalogue(lang).keys() for lang in LANGUAGES))
    return {lang: all_keys - catalogue(lang).keys() for lang in LANGUAGES}
