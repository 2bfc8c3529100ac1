"""Streamlit's ``clear_cache`` message, made harmless.

Any browser connected to the app can send ``BackMsg.clear_cache`` (the
developer menu's "Clear cache"), and Streamlit then empties every
``st.cache_data`` and ``st.cache_resource`` of the server, for every visitor:
the loaded MNIST, the models, the figures, the dispatcher's handle. Sent once a
second it slowed every session about 3x and took the app to 4-6 GB while the
caches refilled (issue #16). A visitor's message now clears only that
visitor's own session state -- what reloading the tab does anyway -- and the
server's caches survive. An operator who really wants empty caches restarts the
app (``systemctl restart "bigmodels-app@*"``), which is what the caches' lifetime
is tied to.
"""
from __future__ import annotations

import sys
import threading
import time

from streamlit.runtime.app_session import AppSession

LOG_EVERY_S = 60.0  # a flood of requests is one log line a minute, not one a message
_log = {"last": 0.0, "count": 0}
_log_lock = threading.Lock()

def _clear_own_session_only(self: AppSession) -> None:
    """The replacement handler: the sender's session state, nothing shared."""
    self._session_state.clear()
    with _log_lock:
        _log["count"] += 1
        now = time.monotonic()
        if now - _log["last"] >= LOG_EVERY_S:
            print(f"bigmodels: {_log['count']} clear_cache request(s) cleared only their sender's session state; "
                  f"the server's caches were kept", file=sys.stderr, flush=True)
            _log["last"], _log["count"] = now, 0


def install() -> None:
    """Replace the handler in this server process (idempotent)."""
    AppSession._handle_clear_cache_request = _clear_own_session_only


def installed() -> bool:
    return AppSession._handle_clear_cache_request is _clear_own_session_only
