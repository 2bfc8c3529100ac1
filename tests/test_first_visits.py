"""A fresh app process that many visitors reach at once -- a restart with a room
connected, or a new process in the nginx pool -- answers every first visit, deep
links included. (A fresh server leaves Streamlit's pages-directory mode with a
rerun; raised out of the import of bigmodels.app.session, that rerun left the
modules being imported half-made for the sessions importing them at the same
moment: 5 of 16 first visits ended in "ImportError: cannot import name
'language'". It is now raised at run time, from ``language()``.)"""

import asyncio
import pytest
from bigmodels.harness.server import StreamlitServer
from bigmodels.harness.streamlit_client import StreamlitSession
from tests.conftest import run_async, server_env

pytestmark = pytest.mark.server  # starts a fresh app server

PAGES = ("sandbox", "comparison", "launcher", "lab", "service", "challenges", "cases", "")


def test_a_fresh_process_answers_a_crowd_of_first_visits(tmp_path):
    async def visit(page: str) -> list[str]:
        async with StreamlitSession(server.url, check_exceptions=False) as s:
            await s.open_page(page)
            return s.exceptions

    async def crowd():
        return await asyncio.gather(*(visit(PAGES[i % len(PAGES)]) for i in range(16)))

    with StreamlitServer(tmp_path / "home", server_env()) as server:
        shown = run_async(crowd())
    assert shown == [[]] * 16, [e for e in shown if e]
