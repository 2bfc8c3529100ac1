"""Who may change the sandbox's shared gallery of hard digits, over the websocket.

With an operator token configured, a visitor without it may add digits (up to
MAX_PER_VISITOR of their own) and delete none. Every message here is what a
forged client can send: a drawing as the canvas component's state, the pills'
value, and presses of buttons that are disabled on screen. The server must
judge them as it judges a browser's."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import torch
from PIL import Image, ImageDraw
from streamlit.proto.WidgetStates_pb2 import WidgetState

from bigmodels.base.access import ENV_TOKEN
from bigmodels.app.sandbox import LOCAL_VISITOR
from bigmodels.data import gallery
from bigmodels.harness.server import StreamlitServer
from bigmodels.harness.streamlit_client import StreamlitSession
from bigmodels.base.i18n import translate
from tests.conftest import run_async, server_env

TOKEN = "gallery-operator-token-51c2"
TIMEOUT = 240.0


def en(key: str, **values) -> str:
    return translate(key, "en", **values)


def drawing_state(widget_id: str) -> WidgetState:
    """The canvas component's state after a stroke: a "1", as its PNG data URL."""
    picture = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    ImageDraw.Draw(picture).line([(140, 50), (140, 230)], fill=(0, 0, 0, 255), width=22)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    stroke = {"type": "path", "path": [["M", 140, 50], ["L", 140, 230]]}
    return WidgetState(id=widget_id, json_value=json.dumps(
        {"drawing": {"raw": {"objects": [stroke], "background": "#FFFFFF"}, "data": url}, "backgroundFit": None}))


def alerts(s: StreamlitSession) -> list[str]:
    return [a.body for a in s.find("alert")]


def button(s: StreamlitSession, suffix: str):
    (found,) = [b for b in s.find("button") if b.id.endswith(suffix)]
    return found


def test_visitors_add_within_their_bound_and_only_the_operator_deletes(tmp_path):
    home = tmp_path / "home"
    one = Image.new("L", (28, 28))
    ImageDraw.Draw(one).line([(14, 4), (14, 24)], fill=255, width=3)
    pixels = torch.from_numpy(np.asarray(one, dtype=np.float32) / 255)
    operators = gallery.add(pixels, 1, home)  # an operator's digit
    me = gallery.visitor_key(LOCAL_VISITOR, home)  # this client connects from loopback, without a proxy
    for _ in range(gallery.MAX_PER_VISITOR - 1):  # this visitor's earlier digits: one more is allowed
        gallery.add(pixels, 7, home, visitor=me)
    before = len(gallery.load(home).items)

    async def visit():
        async with StreamlitSession(server.url, timeout=TIMEOUT) as s:
            await s.open_page("sandbox")
            # deleting: the button is disabled for a visitor, and a forged press deletes nothing
            delete = button(s, f"sb_del_{operators.id}")
            await s.click(delete.id)  # (Streamlit drops a disabled widget's forged change; the page asks too)
            assert operators.id in {item.id for item in gallery.load(home).items}
            assert button(s, f"sb_del_{operators.id}").disabled
            assert s.find_widget("text_input", en("sandbox.gallery.token"))

            # adding: open, up to MAX_PER_VISITOR per visitor
            (canvas,) = [e.id for e in s.find("bidi_component")]
            await s.send_state(drawing_state(canvas))
            truth = s.find_widget("button_group", en("sandbox.gallery.true_label"))
            await s.send_state(WidgetState(id=truth, string_array_value={"data": ["1"]}))
            keep = s.find_widget("button", en("sandbox.gallery.keep"))
            await s.click(keep)
            assert len(gallery.load(home).items) == before + 1  # the visitor's 20th
            truth = s.find_widget("button_group", en("sandbox.gallery.true_label"))
            keep = s.find_widget("button", en("sandbox.gallery.keep"))
            await s.click(keep, WidgetState(id=truth, string_array_value={"data": ["1"]}))
            assert en("sandbox.gallery.error.visitor_full", limit=gallery.MAX_PER_VISITOR) in alerts(s)
            assert len(gallery.load(home).items) == before + 1  # and no 21st
            return s.exceptions

    with StreamlitServer(home, {**server_env(), ENV_TOKEN: TOKEN}) as server:
        assert run_async(visit()) == []
    found = gallery.load(home)
    assert sum(item.visitor == me for item in found.items) == gallery.MAX_PER_VISITOR
    assert operators.id in {item.id for item in found.items}


def test_only_the_operator_deletes_and_only_while_holding_the_token(tmp_path):
    """The operator deletes with the token. A message that clears the token and presses
    Delete at once (the button was enabled on the last run, so Streamlit passes the
    press on) is refused by the page's own check."""
    home = tmp_path / "home"
    first, second = gallery.add(torch.zeros(28, 28), 4, home), gallery.add(torch.zeros(28, 28), 5, home)

    async def visit():
        async with StreamlitSession(server.url, timeout=TIMEOUT) as s:
            await s.open_page("sandbox")
            token = s.find_widget("text_input", en("sandbox.gallery.token"))
            await s.set_widget(token, TOKEN)
            delete = button(s, f"sb_del_{first.id}")
            assert not delete.disabled
            await s.click(delete.id)
            assert [item.id for item in gallery.load(home).items] == [second.id]
            await s.click(button(s, f"sb_del_{second.id}").id, WidgetState(id=token, string_value=""))
            assert en("sandbox.gallery.error.denied") in alerts(s)
            assert button(s, f"sb_del_{second.id}").disabled
            return s.exceptions

    with StreamlitServer(home, {**server_env(), ENV_TOKEN: TOKEN}) as server:
        assert run_async(visit()) == []
    assert [item.id for item in gallery.load(home).items] == [second.id]
