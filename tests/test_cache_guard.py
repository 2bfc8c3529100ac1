"""A visitor's ``clear_cache`` message empties only that visitor's session state:
the server's caches survive and its memory stays bounded (issue #16)."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.app_session import AppSession

from bigmodels.app import cache_guard
from bigmodels.harness.streamlit_client import StreamlitSession
from bigmodels.base.processes import tree_memory
from tests.conftest import run_async

TIMEOUT = 240


class FakeSessionState:
    def __init__(self):
        self.values = {"lang": "zh"}

    def clear(self):
        self.values.clear()


def test_the_handler_streamlit_calls_leaves_shared_caches_alone():
    loads = {"data": 0, "resource": 0}

    @st.cache_data
    def data(x):
        loads["data"] += 1
        return x * 2

    @st.cache_resource
    def resource(x):
        loads["resource"] += 1
        return object()

    data(1), resource(1)
    cache_guard.install()
    assert cache_guard.installed()
    session = type("Sender", (), {})()
    session._session_state = FakeSessionState()
    for _ in range(5):
        AppSession._handle_clear_cache_request(session)  # what app_session does for BackMsg.clear_cache
    assert session._session_state.values == {}  # the sender's own state is gone, as a reload would do
    first = resource(1)
    data(1)
    assert resource(1) is first and loads == {"data": 1, "resource": 1}  # nothing was loaded twice


@pytest.mark.browser
def test_a_flood_of_clear_cache_messages_keeps_the_server_whole(app_server):
    async def scenario():
        async with StreamlitSession(app_server.url, timeout=TIMEOUT) as s:
            await s.open_page("sandbox")
            await s.open_page("comparison")
            baseline = tree_memory(app_server.process.pid)
            for _ in range(30):
                await s.send_clear_cache()
                await s.open_page("sandbox")
            assert s.exceptions == []
            return baseline, tree_memory(app_server.process.pid)

    baseline, after = run_async(scenario())
    assert after - baseline < 400 * 2**20, (baseline, after)  # caches refilling 30 times would take GBs
    log = Path(app_server.log_path).read_text(errors="replace")
    assert "clear_cache request(s) cleared only their sender's session state" in log  # the guard ran there
