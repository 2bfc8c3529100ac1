"""Following runs that are still training: a page reruns when a new epoch lands.

A "live" model source (``bigmodels.runs.sources``) is a running run's latest
checkpoint, which the dispatcher replaces atomically after every epoch. A page
that shows live sources calls ``follow`` with them; a small fragment then
checks their checkpoint files every ``LIVE_REFRESH_S`` seconds and reruns the
page when one has changed -- pages cache models and evaluations by the file's
time and size, so the rerun picks up the new weights and nothing else is
recomputed.
"""
from __future__ import annotations

import streamlit as st

from bigmodels.runs.sources import ModelSource, list_sources

# How far behind a live view may be, on every page: the runs table and a run's curves,
# a sweep's progress, the service's charts, a still-training source's new epoch.
LIVE_REFRESH_S = 2.0
# How often a page checks a background job it waits on (the lab's fits, a load run).
JOB_POLL_S = 1.0


def checkpoint_signature(source: ModelSource) -> tuple[int, int] | None:
    """(mtime_ns, size) of the source's checkpoint -- what the pages' caches key on --
    or None when it cannot be read (being replaced, a deleted run)."""
    try:
        stat = source.checkpoint.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@st.fragment(run_every=LIVE_REFRESH_S)
def _watch(key: str) -> None:
    seen = st.session_state.get(f"{key}_live_seen", {})
    now = {name: checkpoint_signature(s) for name, s in st.session_state.get(f"{key}_live", {}).items()}
    if now != seen and None not in now.values():  # None: being replaced right now; look again next time
        st.rerun()


def follow(key: str, sources: dict[str, ModelSource | None]) -> dict[str, ModelSource]:
    """Watch the live ones among ``sources`` (name -> source) for this page (``key``);
    returns them, so the page can say what it is watching."""
    live = {name: s for name, s in sources.items() if s is not None and s.origin == "live"}
    st.session_state[f"{key}_live"] = live
    st.session_state[f"{key}_live_seen"] = {name: checkpoint_signature(s) for name, s in live.items()}
    if live:
        _watch(key)
    return live


def source_ids() -> frozenset[str]:
    """Every model source a picker can offer now (one store query): a run reaching its first
    epoch, or finishing, adds one."""
    return frozenset(source.id for source in list_sources())


@st.fragment(run_every=LIVE_REFRESH_S)
def _watch_sources(key: str) -> None:
    # Compared with what this fragment saw last, not with the page's own list: a rerun it
    # starts finds the ids it just stored, so it can never loop.
    now, before = source_ids(), st.session_state.get(f"{key}_source_ids")
    st.session_state[f"{key}_source_ids"] = now
    if before is not None and now != before:
        st.rerun()


def follow_sources(key: str) -> None:
    """Rerun the page (``key``) when the model sources change (checked every
    ``LIVE_REFRESH_S``), so a run launched while it is open joins its pickers without a reload."""
    _watch_sources(key)
