"""bigmodels -- the Streamlit entry point: page routing and the sidebar.

Pages live in ``pages/`` and are thin views over the ``bigmodels`` package.
Run with ``streamlit run app.py``.
"""
from pathlib import Path

import streamlit as st

from bigmodels.app.session import language_switch, t

st.set_page_config(page_title="bigmodels", page_icon="🧠", layout="wide")

HERE = Path(__file__).parent
# (file, title key, emoji icon, section key). Emoji, not ":material/" icons:
# those load a web font from the internet.
PAGES = [
    ("pages/home.py", "nav.home", "🏠", "nav.section.start"),
    ("pages/comparison.py", "nav.comparison", "📊", "nav.section.models"),
    ("pages/launcher.py", "nav.launcher", "🚀", "nav.section.models"),
    ("pages/sandbox.py", "nav.sandbox", "✏️", "nav.section.models"),
    ("pages/cases.py", "nav.cases", "🌍", "nav.section.writeups"),
    ("pages/challenges.py", "nav.challenges", "⚖️", "nav.section.writeups"),
]

sections: dict[str, list] = {}
for file, title_key, icon, section_key in PAGES:
    if (HERE / file).is_file():  # pages arrive issue by issue
        sections.setdefault(t(section_key), []).append(
            st.Page(file, title=t(title_key), icon=icon, default=file == "pages/home.py",
                    url_path=Path(file).stem))

navigation = st.navigation(sections)
language_switch()
navigation.run()
