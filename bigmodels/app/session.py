"""Streamlit glue shared by the pages: the language choice and translation,
the MNIST folder this session uses, and the device summary.

Pages stay thin by calling it; everything it calls is testable without Streamlit.
"""
from __future__ import annotations

import streamlit as st

from bigmodels.app import cache_guard
from bigmodels.app.routing import leave_pages_directory_mode
from bigmodels.data.mnist import ENV_DATA_DIR, DataError, load_mnist, load_sample
from bigmodels.base.i18n import DEFAULT_LANGUAGE, LANGUAGES, translate
from bigmodels.runs import sources
from bigmodels.train.plan import Resources

cache_guard.install()  # before any visitor can empty the server's caches: see bigmodels.app.cache_guard

_LANG_KEY = "lang"


def language() -> str:
    """The language this browser session chose (query param ``?lang=`` wins, so
    a shared link opens in the sender's language)."""
    # Every script -- app.py and each page -- asks for the language early in its run, so
    # this is where a fresh server leaves pages-directory mode (bigmodels.app.routing):
    # at run time, never inside an import. Raised out of an import, that rerun left the
    # modules being imported half-made for the sessions importing them at the same moment
    # (5 of 16 simultaneous first visits: ImportError, tests/test_first_visits.py).
    leave_pages_directory_mode()  # one attribute read once switched
    wanted = st.query_params.get(_LANG_KEY)
    if wanted in LANGUAGES and _LANG_KEY not in st.session_state:
        st.session_state[_LANG_KEY] = wanted
    return st.session_state.get(_LANG_KEY, DEFAULT_LANGUAGE)


def t(key: str, **values: object) -> str:
    """Translate ``key`` into the session's language."""
    return translate(key, language(), **values)


def model_title(name: str) -> str:
    """An architecture's display name in the session's language."""
    return sources.model_title(name, language())


def language_switch() -> None:
    """Sidebar selector for the UI language; keeps ``?lang=`` in the URL in step."""
    current = language()
    choice = st.sidebar.selectbox(
        t("app.language"),
        options=list(LANGUAGES),
        index=list(LANGUAGES).index(current),
        format_func=LANGUAGES.__getitem__,
        key="_language_select",
    )
    if choice != current:
        st.session_state[_LANG_KEY] = choice
        st.query_params[_LANG_KEY] = choice
        st.rerun()


# ------------------------------------------------------------ shared resources
_DATA_DIR_KEY = "data_dir"


@st.cache_resource(show_spinner=False)
def _load_data_cached(data_dir: str | None):
    return load_mnist(data_dir)


def data_dir_choice() -> str | None:
    """The MNIST folder named in this session (None: environment, ./data, sample)."""
    return st.session_state.get(_DATA_DIR_KEY)


def set_data_dir(folder: str | None) -> None:
    st.session_state[_DATA_DIR_KEY] = folder


def current_data():
    """MNIST as this session chose it, loaded once per server per folder.

    Returns (data, error): a folder that fails to load gives its message and the
    default source instead, so one bad setting never breaks a page."""
    try:
        return _load_data_cached(data_dir_choice()), None
    except DataError as exc:
        error = str(exc)
    if data_dir_choice() is not None:
        try:  # the session's folder is bad; the server's may be fine
            return _load_data_cached(None), error
        except DataError as exc:
            error = f"{error}; {exc}"
    # the server's own folder is bad too (a wrong BIGMODELS_DATA_DIR): the pages still work on the sample
    return _load_sample_cached(), f"{ENV_DATA_DIR}: {error}"


def server_train_size() -> int | None:
    """Training images in the data this server's device sessions train on (its
    default data, not a visitor's chosen folder); None when it cannot be loaded."""
    try:
        return len(_load_data_cached(None).train_labels)
    except DataError:
        return len(_load_sample_cached().train_labels)


@st.cache_resource(show_spinner=False)
def _load_sample_cached():
    return load_sample()


@st.cache_resource(show_spinner=False)
def device_summary() -> tuple[str, str]:
    """(device id, human description) of the best device on this server."""
    best = Resources.local().devices[0]
    return best.name, best.description

