"""Who may change things here, as every page that changes something asks it: the
launcher (runs), the lab (sweeps) and the service (deployments, load, API keys).

One token box (``access_panel``) and one check at the moment of each action
(``guard``): a page asks again at every click, not only when it draws its controls,
so a forged or stale click is refused with the same message everywhere. The policy
itself (a token from the environment or the secrets file) is ``bigmodels.base.access``.
"""
from __future__ import annotations

import streamlit as st

from bigmodels.app.session import t
from bigmodels.base.access import AccessPolicy, load_policy

TOKEN_KEY = "launcher_operator_token"  # one token per browser session, whichever page it was typed on


def access_policy() -> AccessPolicy:
    return load_policy()


def operator_token() -> str | None:
    return st.session_state.get(TOKEN_KEY) or None


def may_change() -> bool:
    """May this session launch, change or delete (runs, sweeps, deployments, keys)?"""
    return access_policy().allows(operator_token())


def guard() -> bool:
    """True if this session may change things now; else the one refusal is shown."""
    if may_change():
        return True
    st.error(t("access.denied"))
    return False


def access_panel(what_key: str) -> bool:
    """The operator-token box; True if this session may change things. ``what_key``
    names, in the page's words, what an operator may do there."""
    policy = access_policy()
    what = t(what_key)
    if policy.open and not policy.problem:  # one line, so the page's own controls stay in the first screen
        st.caption(":material/lock_open: " + t("access.open_short", what=what),
                   help=t("access.open", what=what))
        return True
    with st.container(border=True):
        st.markdown(f"**{t('access.title')}**")
        if policy.problem:
            st.error(t("access.problem", problem=policy.problem))
        else:
            given = st.text_input(t("access.token"), type="password", key=TOKEN_KEY,
                                  help=t("access.token_help", what=what))
            if may_change():
                st.success(t("access.operator", what=what))
            else:
                st.warning(t("access.watch_only", what=what))
                if given:
                    st.error(t("access.wrong"))
    return may_change()
