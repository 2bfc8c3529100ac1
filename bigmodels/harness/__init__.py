"""Tooling for the tests and the benchmarks, not used by the app.

Both ``tests/`` and ``benchmarks/`` import from here, and never from each other:

* ``bigmodels.harness.server``: ``streamlit run app.py`` on a free loopback port
  (``StreamlitServer``), as a subprocess;
* ``bigmodels.harness.browser``: headless Chromium on that server through
  Playwright (``AppPage``, ``browser_available``);
* ``bigmodels.harness.streamlit_client``: a browser's side of Streamlit's
  websocket protocol without a browser (``StreamlitSession``);
* ``bigmodels.harness.catalogue``: a catalogue text as Streamlit shows it
  (``shown``), for checking what a page put on screen.

None of it imports Streamlit's API: the app is driven from outside, over HTTP,
its websocket and a browser. The protocol client reads and writes Streamlit's
wire messages with the protobuf classes in ``streamlit.proto``.
"""
