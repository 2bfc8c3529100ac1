"""The app's pages, and the one Streamlit workaround that keeping ``pages/`` needs.

``PAGES`` is the table ``app.py`` builds its ``st.navigation`` from: every page
of the app, its title and section (as translation keys) and its URL, which is
the file's name (``pages/sandbox.py`` is ``/sandbox``).

The workaround: because a ``pages/`` folder sits next to ``app.py``, Streamlit
starts each server in its old multipage ("pages directory") mode, and until
the first ``st.navigation`` call it runs a requested page on its own. A deep
link such as ``/sandbox`` on a fresh server would then run
``pages/sandbox.py`` without ``app.py`` -- without the language switch or this
navigation. ``leave_pages_directory_mode`` switches that mode off and reruns,
so the rerun goes through ``app.py`` like every later one. Every script asks
``bigmodels.app.session.language`` for the language early in its run, and that
calls it -- at run time, not on import, so the rerun never interrupts a module
being imported. (Sessions whose first run began before the switch -- several
visitors reaching a fresh server at the same moment -- show that first run
without the navigation; their next interaction goes through ``app.py``.)
tests/test_app_home.py opens a deep link on a fresh server to check it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import streamlit as st
from streamlit.errors import StreamlitAPIException
from streamlit.runtime.pages_manager import PagesManager

# (file, title key, icon, section key). Material icons ship with Streamlit's own font,
# so they draw on any machine; emoji need an emoji font the browser may not have.
PAGES = [
    ("pages/home.py", "nav.home", ":material/home:", "nav.section.start"),
    ("pages/comparison.py", "nav.comparison", ":material/bar_chart:", "nav.section.models"),
    ("pages/launcher.py", "nav.launcher", ":material/rocket_launch:", "nav.section.models"),
    ("pages/sandbox.py", "nav.sandbox", ":material/draw:", "nav.section.models"),
    ("pages/lab.py", "nav.lab", ":material/trending_up:", "nav.section.models"),
    ("pages/service.py", "nav.service", ":material/api:", "nav.section.models"),
    ("pages/cases.py", "nav.cases", ":material/public:", "nav.section.writeups"),
    ("pages/challenges.py", "nav.challenges", ":material/balance:", "nav.section.writeups"),
]
HOME = "pages/home.py"


def leave_pages_directory_mode() -> None:
    """Make a deep link work on a fresh server (see the module docstring)."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def navigation(translate: Callable[[str], str]):
    """``st.navigation`` over ``PAGES``, grouped by section, titled by ``translate``."""
    sections: dict[str, list] = {}
    for file, title_key, icon, section_key in PAGES:
        sections.setdefault(translate(section_key), []).append(
            st.Page(file, title=translate(title_key), icon=icon, default=file == HOME, url_path=Path(file).stem))
    return st.navigation(sections)


def page_link(page: str, label: str) -> bool:
    """A link to ``pages/<page>.py``; False (nothing drawn) when the app has no such
    page, or when a page script runs on its own, outside ``app.py``'s navigation
    (AppTest), where Streamlit refuses links to pages it was not told about."""
    file = f"pages/{page}.py"
    if file not in {f for f, *_ in PAGES}:
        return False
    try:
        st.page_link(file, label=label)
    except StreamlitAPIException:
        return False
    return True
