"""bigmodels -- the Streamlit entry point: page routing and the sidebar.

Pages live in ``pages/`` and are thin views over the ``bigmodels`` package;
the table of them is ``bigmodels.app.routing.PAGES``.
Run with ``streamlit run app.py``.
"""
import streamlit as st

from bigmodels.app.routing import navigation
from bigmodels.app.session import language_switch, t

st.set_page_config(page_title="bigmodels", page_icon="🧠", layout="wide")
page = navigation(t)
language_switch()
page.run()
