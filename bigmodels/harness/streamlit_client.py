"""A browser's side of Streamlit's protocol, in asyncio: app sessions without a browser.

A load test that runs 20 Chromium tabs on the same 2 cores as the server
measures Chromium as much as the app. In a real deployment each user's
browser runs on their own machine; only the server's work is shared. This
client does what the browser's JavaScript does on the wire -- and nothing
of the rendering -- so many sessions cost the load generator almost nothing:

    async with StreamlitSession(server.url) as s:
        seconds = await s.open_page("sandbox")         # from the rerun request to script_finished
        radio = s.find_widget("radio", "Digit from")   # by the widget's label
        await s.set_widget(radio, "🎲 MNIST test digit")   # an option's label, or its index
        await s.click(s.find_widget("button", "🎲 Another test digit"))
        s.elements, s.find("markdown"), s.exceptions, s.media_urls
        await s.fetch_media()                          # GET the /media/ pictures, as <img> tags do
        await s.open_page("comparison")                # a click on the page's link

What it sends was read off Streamlit 1.67 (``streamlit/web/server/starlette``,
``streamlit/runtime``, the protobufs, and the shipped frontend bundle), then
checked against Chromium's own websocket frames on this app:

* **Connecting.** The page GET, then ``_stcore/health`` and
  ``_stcore/host-config`` (for a page below the root the frontend first probes
  ``<page>/_stcore/health``, a 404, and falls back to the root; both are done).
  The health response sets the ``_streamlit_xsrf`` cookie. The websocket
  (``_stcore/stream``) goes with that cookie, an ``Origin`` header, and the
  ``Sec-WebSocket-Protocol`` list ``streamlit, <xsrf cookie value>``: the
  frontend repurposes the subprotocol header to carry the XSRF token (a third
  entry would be a session id to resume). The server picks ``streamlit`` and
  compares the token with the cookie.
* **Runs.** Every interaction is a ``BackMsg.rerun_script`` carrying a
  ``ClientState``. The first one names the page by its URL path in
  ``page_name`` with an empty ``page_script_hash`` (what loading
  ``/sandbox`` does); later ones carry the current page's
  ``page_script_hash``, and moving to another page (a sidebar link) sends
  that page's hash from the ``navigation`` message and an empty
  ``page_name``. ``context_info`` carries the timezone, locale, URL and
  colour scheme as the browser reports them.
* **Widget states.** Like the frontend's widget manager, every widget puts its
  value in the state list when it first appears (default, or the server's
  ``set_value``), and every rerun sends the whole list: radio and selectbox
  as ``string_value`` (the formatted option label, not the index), sliders as
  ``double_array_value``, multiselects as ``string_array_value``, and so on.
  A button press is ``trigger_value: true`` for that one message. States of
  widgets no longer on screen are dropped after each run; a page change sends
  only the states of widgets the main script (``app.py``) draws.
* **Run end.** ``script_finished`` with ``FINISHED_SUCCESSFULLY`` (or the
  fragment/compile-error variants). ``FINISHED_EARLY_FOR_RERUN`` is not an
  end: an ``st.rerun()`` follows with a new ``new_session``.
* **Fragments.** ``auto_rerun`` messages (``st.fragment(run_every=...)``) make
  the client send ``is_auto_rerun`` reruns of that fragment on that interval,
  as the browser does, until a full run or ``stop_auto_rerun`` ends them.
* **Message cache.** Messages marked ``metadata.cacheable`` are kept by hash,
  their hashes go back in ``cached_message_hashes``, and a ``ref_hash``
  message is replaced by the kept one; entries expire after
  ``maxCachedMessageAge`` runs, as in the frontend.

Not done, because a returning visitor's browser would not do it either or the
app does not need it: the hashed JavaScript/CSS bundles (cached by browsers
for a year), component assets, favicons, forms, file uploads, and the state
of widget kinds not listed in ``_initial_state`` (date/time inputs, pills,
custom components), which are then left to the server's own copy.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState

from bigmodels.figures.chart_payload import figure_of

FINISHED_SUCCESSFULLY = ForwardMsg.FINISHED_SUCCESSFULLY
FINISHED_WITH_COMPILE_ERROR = ForwardMsg.FINISHED_WITH_COMPILE_ERROR
FINISHED_EARLY_FOR_RERUN = ForwardMsg.FINISHED_EARLY_FOR_RERUN
FINISHED_FRAGMENT_RUN_SUCCESSFULLY = ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY

USER_AGENT = "bigmodels-benchmark (Streamlit protocol client)"
MEDIA_CONNECTIONS = 6  # Chromium's parallel HTTP/1.1 connections per host
XSRF_COOKIE = "_streamlit_xsrf"
NO_XSRF_TOKEN = "PLACEHOLDER_AUTH_TOKEN"  # what the frontend sends without the cookie
DEFAULT_MAX_CACHED_MESSAGE_AGE = 2  # global.maxCachedMessageAge; new_session brings the real one


class StreamlitClientError(RuntimeError):
    """The app or the connection did not do what a browser would have seen it do."""


class ScriptError(StreamlitClientError):
    """The run showed an exception box (or the script failed to compile)."""

    def __init__(self, messages: list[str]):
        super().__init__("the app showed an exception:\n" + "\n".join(messages))
        self.messages = messages


class ConnectionLost(StreamlitClientError):
    """The websocket closed before the run this session waits for had finished."""


class PageNotFound(StreamlitClientError):
    """The app has no page at the URL path asked for."""


# ------------------------------------------------------------------ HTTP
@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> HttpResponse:
    """One HTTP/1.1 GET on its own connection. Enough for the handful of
    requests a page makes; asyncio streams, so it costs no thread per session."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", f"User-Agent: {USER_AGENT}", "Accept: */*",
             "Accept-Encoding: gzip", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=secure or None)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()

    raw = await asyncio.wait_for(exchange(), timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    response_headers = [tuple(s.strip() for s in line.split(":", 1)) for line in header_lines if ":" in line]
    response = HttpResponse(int(status_line.split()[1]), response_headers, body)
    if any(v.lower() == "chunked" for v in response.header_values("transfer-encoding")):
        response.body = _dechunk(body)
    return response


def _dechunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return bytes(out)


# ---------------------------------------------------------- element tree
@dataclass
class _Node:
    """One place in the app's delta tree: a block (with children) or an element."""

    run_id: str
    fragment_id: str = ""
    active_script_hash: str = ""
    element: Element | None = None
    block: object | None = None
    children: dict[int, "_Node"] = field(default_factory=dict)

    def walk(self, path: tuple[int, ...]):
        yield path, self
        for index in sorted(self.children):
            yield from self.children[index].walk(path + (index,))


def _clear_stale(node: _Node, run_id: str, fragment_ids: list[str], fragment_of_block: str = "") -> _Node | None:
    """The frontend's stale-node rule at the end of a run (ClearStaleNodeVisitor):
    a full run keeps only what it drew; a fragment run drops only the stale
    elements inside the fragments it reran."""
    if node.element is not None:
        kind = node.element.WhichOneof("type")
        if kind == "toast" or node.run_id == run_id:
            return node
        if fragment_ids and (not node.fragment_id or not fragment_of_block):
            return node
        return None
    inner = fragment_of_block
    if fragment_ids:
        if fragment_of_block and node.run_id != run_id:
            return None
        if node.fragment_id in fragment_ids and node.run_id == run_id:
            inner = node.fragment_id
    elif node.run_id != run_id:
        return None
    kept = {}
    for index, child in node.children.items():
        child = _clear_stale(child, run_id, fragment_ids, inner)
        if child is not None:
            kept[index] = child
    node.children = kept
    return node


def _keep_main_script(node: _Node, main_script_hash: str) -> None:
    """Another page is coming: keep only what the main script drew (filterMainScriptElements)."""
    node.children = {i: c for i, c in node.children.items() if c.active_script_hash == main_script_hash}
    for child in node.children.values():
        _keep_main_script(child, main_script_hash)


def _widget_id(element: Element) -> str | None:
    payload = getattr(element, element.WhichOneof("type") or "", None)
    if payload is None or "id" not in payload.DESCRIPTOR.fields_by_name:
        return None
    return payload.id or None


def _initial_state(element: Element, current: WidgetState | None) -> WidgetState | None:
    """The state the frontend's widget registers when it appears (or when the
    server pushes a value with ``set_value``), following each widget's
    getDefaultStateFromProto / getCurrStateFromProto / updateWidgetMgrState.
    None: leave the state list alone (kept value, or a kind not mirrored)."""
    kind = element.WhichOneof("type")
    w = getattr(element, kind)
    if kind not in ("radio", "selectbox", "multiselect", "slider", "checkbox", "number_input", "text_input",
                    "text_area", "color_picker"):
        return None
    if current is not None and not w.set_value:
        return None  # the widget keeps what it has
    state = WidgetState(id=w.id)
    use_current = w.set_value
    if kind in ("radio", "selectbox"):
        if use_current:
            if w.HasField("raw_value"):
                state.string_value = w.raw_value
        elif w.HasField("default") and len(w.options):
            state.string_value = w.options[w.default]
    elif kind == "multiselect":
        values = list(w.raw_values) if use_current else [w.options[i] for i in w.default]
        state.string_array_value.data[:] = values
    elif kind == "slider":
        if w.type == Slider.SELECT_SLIDER:
            if use_current and len(w.raw_value):
                labels = [r if r in w.options else w.options[int(w.default[i]) if i < len(w.default) else 0]
                          for i, r in enumerate(w.raw_value)]
            else:
                labels = [w.options[int(i)] for i in w.default]
            state.string_array_value.data[:] = labels
        else:
            state.double_array_value.data[:] = list(w.value if use_current else w.default)
    elif kind == "checkbox":
        state.bool_value = w.value if use_current else w.default
    elif kind == "number_input":
        value = (w.value if w.HasField("value") else w.default if w.HasField("default") else None) if use_current \
            else (w.default if w.HasField("default") else None)
        if value is not None:
            if w.data_type == type(w).INT:
                state.int_value = int(value)
            else:
                state.double_value = float(value)
    elif kind in ("text_input", "text_area"):
        source = "value" if use_current else "default"
        if w.HasField(source):
            state.string_value = getattr(w, source)
    elif kind == "color_picker":
        state.string_value = w.value if use_current else w.default
    return state


# ---------------------------------------------------------------- session
@dataclass
class _Waiter:
    """What a sent rerun waits for: the newest run started since that it could
    have caused (a full run; or, for a fragment's widget, that fragment's run),
    until that run (or the st.rerun() chain after it) ends."""

    fragment_id: str
    future: asyncio.Future
    target_run: str | None = None
    started_runs: list[str] = field(default_factory=list)


class StreamlitSession:
    """One browser tab's worth of a Streamlit app session, over its websocket.

    ``timeout`` bounds each run (seconds from sending the rerun to its
    ``script_finished``); ``check_exceptions`` makes a run that ends with an
    exception box on screen raise ``ScriptError``. Use as an async context
    manager, or call ``connect``/``close``.
    """

    def __init__(self, base_url: str, *, timeout: float = 120.0, check_exceptions: bool = True,
                 locale: str = "en-US", timezone: str = "UTC", timezone_offset: int = 0,
                 color_scheme: str = "light"):
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base_path = parts.path.rstrip("/")
        self.base_url = self.origin + self.base_path
        self.timeout = timeout
        self.check_exceptions = check_exceptions
        self.context = {"timezone": timezone, "timezone_offset": timezone_offset, "locale": locale,
                        "is_embedded": False, "color_scheme": color_scheme}
        self.cookies: dict[str, str] = {}
        self.connect_seconds: float | None = None
        self.session_id: str | None = None  # the server's session id (from new_session)
        self.url_path = ""  # the page the browser's address bar shows
        self.query_string = ""
        self.page_script_hash = ""
        self.main_script_hash = ""
        self.app_pages: dict[str, str] = {}  # url_pathname -> page_script_hash
        self.messages_received = 0
        self.bytes_received = 0
        self.cache_hits = 0  # ref_hash messages answered from this tab's message cache
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._closed: BaseException | None = None
        self._roots: dict[int, _Node] = {}
        self._run_id = ""  # the run whose deltas are arriving
        self._run_fragments: list[str] = []
        self._widget_states: dict[str, WidgetState] = {}  # in the order widgets registered, as a JS Map
        self._waiter: _Waiter | None = None
        self._auto_reruns: dict[str, tuple[float, asyncio.Task]] = {}
        self._settled = asyncio.Event()
        self._has_run = False
        self._new_session_since_send = False
        self._cache: dict[str, list] = {}  # hash -> [serialized ForwardMsg, run count when last used, fragment]
        self._cache_runs = 0
        self._max_cache_age = DEFAULT_MAX_CACHED_MESSAGE_AGE
        self._compile_error: str | None = None
        self._page_not_found = False
        self._fetched_media: set[str] = set()

    async def __aenter__(self) -> "StreamlitSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ----------------------------------------------------------- connecting
    async def connect(self, url_path: str = "", query: str = "") -> float:
        """Load ``/url_path`` as a browser tab does, up to an open websocket
        (no script run yet: ``open_page`` asks for it). Returns the seconds taken."""
        from websockets.asyncio.client import connect as ws_connect

        t0 = time.perf_counter()
        self.url_path, self.query_string = url_path.strip("/"), query.lstrip("?")
        page = await self._get(self._page_url())
        if page.status != 200:
            raise StreamlitClientError(f"GET {self._page_url()} answered {page.status}")
        probes = [self.base_url + "/_stcore/"]
        if self.url_path:  # the frontend tries the page's own path as a base URL first
            probes.insert(0, f"{self.base_url}/{self.url_path}/_stcore/")
        for probe in probes:
            health, host_config = await asyncio.gather(self._get(probe + "health"), self._get(probe + "host-config"))
            if health.status == 200 and host_config.status == 200:
                break
        else:
            raise StreamlitClientError(f"{self.base_url}/_stcore/health answered {health.status}")
        xsrf = self.cookies.get(XSRF_COOKIE, NO_XSRF_TOKEN)
        ws_url = self.base_url.replace("http", "ws", 1) + "/_stcore/stream"
        headers = {"Cookie": self._cookie_header()} if self.cookies else {}
        self._ws = await ws_connect(ws_url, origin=self.origin, subprotocols=["streamlit", xsrf],
                                    additional_headers=headers, user_agent_header=USER_AGENT, proxy=None,
                                    max_size=None, ping_interval=None, open_timeout=15)
        if self._ws.subprotocol != "streamlit":
            raise StreamlitClientError(f"the server chose subprotocol {self._ws.subprotocol!r}, not 'streamlit'")
        self._reader = asyncio.create_task(self._read(), name="streamlit-client-reader")
        self.connect_seconds = time.perf_counter() - t0
        return self.connect_seconds

    async def close(self) -> None:
        for _, task in self._auto_reruns.values():
            task.cancel()
        self._auto_reruns.clear()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await self._reader
            except asyncio.CancelledError:
                pass

    # ------------------------------------------------------------- actions
    async def open_page(self, url_path: str = "", query: str = "") -> float:
        """Show the page at ``url_path`` ("" is the default page) and wait for its run.

        In a tab that has not run anything yet this is the browser landing on
        ``/url_path``: ``page_name`` names it. Afterwards it is a click on the
        page's link: its ``page_script_hash``, and only the main script's
        widget states. (A fresh browser tab is a new StreamlitSession.)"""
        if self._ws is None:
            await self.connect(url_path, query)
        if not self._has_run:
            self._has_run = True
            self.url_path, self.query_string = url_path.strip("/"), query.lstrip("?")
            return await self._rerun(page_script_hash="", page_name=self.url_path, widget_states=[],
                                     what=f"opening /{self.url_path}")
        wanted = url_path.strip("/")
        page_hash = self.app_pages.get(wanted)
        if page_hash is None:
            raise PageNotFound(f"no page at /{wanted}; the app has {sorted(self.app_pages)}")
        self._stop_auto_reruns()
        common = {_widget_id(n.element) for _, n in self._nodes()
                  if n.element is not None and n.active_script_hash == self.main_script_hash}
        states = [s for wid, s in self._widget_states.items() if wid in common]
        self.query_string = query.lstrip("?")
        return await self._rerun(page_script_hash=page_hash, widget_states=states, what=f"going to /{wanted}")

    async def rerun(self) -> float:
        """Rerun the current page with the current widget states (the "R" key)."""
        return await self._rerun(what="rerun")

    async def set_widget(self, widget_id: str, value) -> float:
        """Give a widget a new value, as a person changing it does, and wait for the rerun.

        radio/selectbox: option label or index; multiselect: labels or indices;
        slider: a number or a (low, high) pair (select_slider: labels or
        indices); checkbox/toggle: bool; number_input: number; text_input/
        text_area/color_picker: str."""
        element, fragment_id = self._widget(widget_id)
        kind = element.WhichOneof("type")
        w = getattr(element, kind)
        if getattr(w, "form_id", ""):
            raise StreamlitClientError(f"{kind} {w.label!r} is in a form; forms are not mirrored")
        state = WidgetState(id=widget_id)

        def option(v, options):
            if isinstance(v, int) and not isinstance(v, bool):
                return options[v]
            if v not in options:
                raise ValueError(f"{v!r} is not one of {list(options)}")
            return v

        if kind in ("radio", "selectbox"):
            state.string_value = option(value, w.options)
        elif kind == "multiselect":
            state.string_array_value.data[:] = [option(v, w.options) for v in value]
        elif kind == "slider":
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if w.type == Slider.SELECT_SLIDER:
                state.string_array_value.data[:] = [option(v, w.options) for v in values]
            else:
                state.double_array_value.data[:] = [float(v) for v in values]
        elif kind == "checkbox":
            state.bool_value = bool(value)
        elif kind == "number_input":
            if w.data_type == type(w).INT:
                state.int_value = int(value)
            else:
                state.double_value = float(value)
        elif kind in ("text_input", "text_area", "color_picker"):
            state.string_value = str(value)
        else:
            raise StreamlitClientError(f"setting a {kind} is not mirrored by this client")
        self._widget_states[widget_id] = state
        return await self._rerun(fragment_id=fragment_id, what=f"setting {kind} {w.label!r}")

    async def send_state(self, state: WidgetState) -> float:
        """Send ``state`` for its widget and wait for the rerun: any value of any widget
        kind, the way a forged message would (pills, a value no browser sends, a widget
        that is disabled on screen). The server must judge it as it judges a browser's."""
        element, fragment_id = self._widget(state.id)
        self._widget_states[state.id] = state
        kind = element.WhichOneof("type")
        name = getattr(getattr(element, kind), "label", None) or state.id  # a component has no label
        return await self._rerun(fragment_id=fragment_id, what=f"sending a state for {kind} {name!r}")

    async def click(self, widget_id: str, *also: WidgetState) -> float:
        """Press a button: ``trigger_value`` true for this one rerun, as the browser sends it.
        ``also``: other widgets' states sent in the same message (kept for later runs), as a
        forged message may change a field and press a button at once."""
        element, fragment_id = self._widget(widget_id)
        for state in also:
            self._widget_states[state.id] = state
        # appended last and gone after this message: the frontend deletes trigger states once sent,
        # so a fragment auto-rerun during this run does not press the button again
        states = [s for wid, s in self._widget_states.items() if wid != widget_id]
        states.append(WidgetState(id=widget_id, trigger_value=True))
        kind = element.WhichOneof("type")
        return await self._rerun(widget_states=states, fragment_id=fragment_id,
                                 what=f"clicking {kind} {getattr(element, kind).label!r}")

    async def settle(self, timeout: float | None = None) -> float:
        """Wait (letting fragment auto-reruns go on) until the page polls no
        more: no ``run_every`` fragment is registered after the last full run.
        Returns the seconds waited."""
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(self._settled.wait(), timeout or self.timeout)
        except TimeoutError:
            raise TimeoutError(f"the page still had auto-rerunning fragments after {timeout or self.timeout} s: "
                               f"{sorted(self._auto_reruns)}") from None
        self._raise_if_closed()
        return time.perf_counter() - t0

    async def fetch_media(self) -> int:
        """GET every /media/ file the page shows that this tab has not loaded
        yet (as its <img> tags would, six at a time). Returns the bytes read."""
        urls = [u for u in self.media_urls if u not in self._fetched_media]
        limit = asyncio.Semaphore(MEDIA_CONNECTIONS)

        async def one(url: str) -> int:
            async with limit:
                response = await self._get(url)
            if response.status != 200:
                raise StreamlitClientError(f"GET {url} answered {response.status}")
            self._fetched_media.add(url)
            return len(response.body)

        return sum(await asyncio.gather(*(one(u) for u in urls)))

    # ------------------------------------------------------- what is shown
    @property
    def elements(self) -> list[tuple[tuple[int, ...], str, Element]]:
        """(delta path, element type, Element) for everything on screen, in page order."""
        return [(path, n.element.WhichOneof("type"), n.element) for path, n in self._nodes()
                if n.element is not None]

    def find(self, kind: str) -> list:
        """The payloads (e.g. Markdown, PlotlyChart protos) of every ``kind`` element on screen."""
        return [getattr(e, kind) for _, k, e in self.elements if k == kind]

    def charts(self) -> list[dict]:
        """The figure of every plotly chart on screen, however the page drew it (bigmodels.app.charts)."""
        return [figure for _, kind, e in self.elements if (figure := figure_of(kind, getattr(e, kind))) is not None]

    def find_widget(self, kind: str, label: str) -> str:
        """The id of the one ``kind`` widget (radio, button, selectbox, ...) labelled ``label``."""
        matches = [w.id for w in self.find(kind) if w.label == label]
        if len(matches) != 1:
            labels = [w.label for w in self.find(kind)]
            raise LookupError(f"{len(matches)} {kind} widgets labelled {label!r}; on screen: {labels}")
        return matches[0]

    @property
    def exceptions(self) -> list[str]:
        """The exception boxes on screen, as 'Type: message'."""
        return [f"{x.type}: {x.message}" if x.type else x.message for x in self.find("exception")]

    @property
    def media_urls(self) -> list[str]:
        """Absolute URLs of the media files (st.image, st.audio, st.video) on screen."""
        urls = [img.url for imgs in self.find("imgs") for img in imgs.imgs]
        urls += [m.url for kind in ("audio", "video") for m in self.find(kind)]

        def absolute(url: str) -> str:
            # the server names them from its root ("/media/..."); the frontend puts them
            # under the app's base path (server.baseUrlPath), where the server serves them
            if not url.startswith("/"):
                return url
            under_base = bool(self.base_path) and url.startswith(self.base_path + "/")
            return (self.origin if under_base else self.base_url) + url

        return [absolute(u) for u in urls if u.startswith("/") or u.startswith(self.origin)]

    @property
    def widget_states(self) -> list[WidgetState]:
        """What the next rerun will send."""
        return list(self._widget_states.values())

    # ------------------------------------------------------------ internals
    def _page_url(self) -> str:
        return f"{self.base_url}/{self.url_path}" + (f"?{self.query_string}" if self.query_string else "")

    def _cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    async def _get(self, url: str) -> HttpResponse:
        response = await http_get(url, {"Cookie": self._cookie_header()} if self.cookies else None, self.timeout)
        for cookie in response.header_values("set-cookie"):
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return response

    def _nodes(self):
        for root in sorted(self._roots):
            yield from self._roots[root].walk((root,))

    def _widget(self, widget_id: str) -> tuple[Element, str]:
        for _, node in self._nodes():
            if node.element is not None and _widget_id(node.element) == widget_id:
                return node.element, node.fragment_id
        raise LookupError(f"no widget {widget_id!r} on screen")

    def _raise_if_closed(self) -> None:
        if self._closed is not None:
            raise ConnectionLost(f"the websocket closed: {self._closed}")

    def _context_info(self):
        return dict(self.context, url=self._page_url())

    async def _send_rerun(self, *, page_script_hash: str | None = None, page_name: str = "",
                          widget_states: list[WidgetState] | None = None, fragment_id: str = "",
                          is_auto_rerun: bool = False) -> None:
        self._raise_if_closed()
        msg = BackMsg()
        client_state = msg.rerun_script
        client_state.query_string = self.query_string
        client_state.widget_states.SetInParent()  # sent even when empty, as the browser does
        client_state.widget_states.widgets.extend(self.widget_states if widget_states is None else widget_states)
        client_state.page_script_hash = self.page_script_hash if page_script_hash is None else page_script_hash
        client_state.page_name = page_name
        client_state.fragment_id = fragment_id
        client_state.is_auto_rerun = is_auto_rerun
        client_state.cached_message_hashes.extend(self._cache)
        client_state.context_info.CopyFrom(type(client_state.context_info)(**self._context_info()))
        self._new_session_since_send = False
        await self._ws.send(msg.SerializeToString())

    async def send_clear_cache(self) -> None:
        """What the developer menu's "Clear cache" sends (any visitor can send it)."""
        self._raise_if_closed()
        msg = BackMsg()
        msg.clear_cache = True
        await self._ws.send(msg.SerializeToString())

    async def _rerun(self, *, what: str, **kwargs) -> float:
        """Send one rerun and wait for the run it causes to finish; the seconds between."""
        if self._waiter is not None:
            raise StreamlitClientError("one interaction at a time: a rerun is still being waited for")
        self._compile_error, self._page_not_found = None, False
        waiter = _Waiter(kwargs.get("fragment_id", ""), asyncio.get_running_loop().create_future())
        self._waiter = waiter
        t0 = time.perf_counter()
        try:
            await self._send_rerun(**kwargs)
            status = await asyncio.wait_for(waiter.future, self.timeout)
        except TimeoutError:
            raise TimeoutError(f"{what}: no script_finished within {self.timeout:.0f} s "
                               f"(runs started: {len(waiter.started_runs)})") from None
        finally:
            self._waiter = None
        seconds = time.perf_counter() - t0
        if status == FINISHED_WITH_COMPILE_ERROR:
            raise ScriptError([f"{what}: the script did not compile: {self._compile_error}"])
        if self._page_not_found:
            raise PageNotFound(f"{what}: the app answered page_not_found")
        if self.check_exceptions and self.exceptions:
            raise ScriptError([f"{what}:"] + self.exceptions)
        return seconds

    def _stop_auto_reruns(self, fragment_ids=None) -> None:
        for fid in list(self._auto_reruns) if fragment_ids is None else fragment_ids:
            entry = self._auto_reruns.pop(fid, None)
            if entry:
                entry[1].cancel()

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        """The frontend's setInterval: rerun the fragment every ``interval`` s, whatever else is going on."""
        from websockets.exceptions import ConnectionClosed

        while True:
            await asyncio.sleep(interval)
            try:
                await self._send_rerun(fragment_id=fragment_id, is_auto_rerun=True)
            except (ConnectionLost, ConnectionClosed):
                return  # the reader reports the closed socket to whoever waits

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for payload in self._ws:
                if isinstance(payload, str):
                    raise StreamlitClientError("the server sent a text frame; Streamlit sends binary protobufs")
                self.messages_received += 1
                self.bytes_received += len(payload)
                msg = ForwardMsg()
                msg.ParseFromString(payload)
                self._handle(self._uncache(msg, payload))
            self._closed = StreamlitClientError(f"closed with code {self._ws.close_code} {self._ws.close_reason!r}")
        except ConnectionClosed as exc:
            self._closed = exc
        except Exception as exc:  # a bug or a protocol surprise must fail the waiting run, not hang it
            self._closed = exc
            await self._ws.close()
        finally:
            self._closed = self._closed or StreamlitClientError("reader stopped")
            self._stop_auto_reruns()
            self._settled.set()
            if self._waiter is not None and not self._waiter.future.done():
                self._waiter.future.set_exception(ConnectionLost(f"the websocket closed: {self._closed}"))

    def _uncache(self, msg: ForwardMsg, payload: bytes) -> ForwardMsg:
        """The frontend's ForwardMessageCache: keep cacheable messages, resolve ref_hash."""
        if msg.WhichOneof("type") == "ref_hash":
            entry = self._cache.get(msg.ref_hash)
            if entry is None:
                raise StreamlitClientError(f"ref_hash {msg.ref_hash} for a message this client never kept")
            entry[1] = self._cache_runs
            self.cache_hits += 1
            cached = ForwardMsg()
            cached.ParseFromString(entry[0])
            cached.metadata.CopyFrom(msg.metadata)
            return cached
        if msg.metadata.cacheable and msg.hash:
            if msg.hash in self._cache:
                self._cache[msg.hash][1] = self._cache_runs
            else:
                fragment = msg.delta.fragment_id if msg.HasField("delta") else ""
                self._cache[msg.hash] = [payload, self._cache_runs, fragment]
        return msg

    def _age_cache(self, fragment_ids: list[str]) -> None:
        self._cache_runs += 1
        for key, (_, used, fragment) in list(self._cache.items()):
            if fragment_ids and (not fragment or fragment not in fragment_ids):
                continue
            if self._cache_runs - used > self._max_cache_age:
                del self._cache[key]

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self._on_new_session(msg)
        elif kind == "delta":
            self._on_delta(msg)
        elif kind == "script_finished":
            self._on_script_finished(msg)
        elif kind == "navigation":
            self.app_pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
            self.page_script_hash = msg.navigation.page_script_hash or self.page_script_hash
            for p in msg.navigation.app_pages:
                if p.page_script_hash == self.page_script_hash:
                    self.url_path = p.url_pathname  # the address bar follows the page
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "page_not_found":
            self._page_not_found = True
        elif kind == "auto_rerun":
            fid, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if fid and self._auto_reruns.get(fid, (None,))[0] != interval:
                self._stop_auto_reruns([fid])
                task = asyncio.create_task(self._auto_rerun(fid, interval), name=f"auto-rerun-{fid}")
                self._auto_reruns[fid] = (interval, task)
                self._settled.clear()
        elif kind == "stop_auto_rerun":
            self._stop_auto_reruns(list(msg.stop_auto_rerun.fragment_ids))
            if not self._auto_reruns:
                self._settled.set()
        elif kind == "session_event":
            if msg.session_event.HasField("script_compilation_exception"):
                error = msg.session_event.script_compilation_exception
                self._compile_error = f"{error.type}: {error.message}"

    def _on_new_session(self, msg: ForwardMsg) -> None:
        session = msg.new_session
        run = msg.metadata.run
        self._new_session_since_send = True
        if session.HasField("initialize"):
            self.session_id = session.initialize.session_id
        if session.config.max_cached_message_age:
            self._max_cache_age = session.config.max_cached_message_age
        self._run_id, self._run_fragments = run.script_run_id, list(run.fragment_ids)
        if not self._run_fragments:
            self._stop_auto_reruns()  # a full run registers its fragments again
            self._settled.clear()
            if session.page_script_hash != self.page_script_hash or session.main_script_hash != self.main_script_hash:
                # another page: only what the main script drew stays (clearPageElements)
                self.main_script_hash = session.main_script_hash
                for root in self._roots.values():
                    _keep_main_script(root, self.main_script_hash)
                self._drop_inactive_widget_states()
        self.page_script_hash = session.page_script_hash
        waiter = self._waiter
        if waiter is not None and (not self._run_fragments or waiter.fragment_id in self._run_fragments):
            # the newest run this rerun could have caused: a run it superseded never finishes
            # (the server drops a stopped ScriptRunner's events), and st.rerun() starts another
            waiter.target_run = self._run_id
            waiter.started_runs.append(self._run_id)

    def _on_delta(self, msg: ForwardMsg) -> None:
        delta, path = msg.delta, list(msg.metadata.delta_path)
        kind = delta.WhichOneof("type")
        if kind == "new_transient" or not path:
            if kind == "new_element" and delta.new_element.WhichOneof("type") == "exception":
                # an error handling a BackMsg: shown on its own, with no place in the tree
                self._roots.setdefault(0, _Node(self._run_id)).children[-1] = _Node(
                    self._run_id, element=delta.new_element)
            return
        parent = self._roots.setdefault(path[0], _Node(self._run_id))
        parent.run_id = self._run_id
        for index in path[1:-1]:
            parent = parent.children.setdefault(index, _Node(self._run_id))
            parent.run_id = self._run_id  # an ancestor of something drawn this run is part of it
        index = path[-1] if len(path) > 1 else None
        node = _Node(self._run_id, delta.fragment_id, msg.metadata.active_script_hash)
        if kind == "new_element":
            node.element = delta.new_element
            wid = _widget_id(node.element)
            if wid:
                state = _initial_state(node.element, self._widget_states.get(wid))
                if state is not None:
                    self._widget_states[wid] = state
        else:  # add_block: a block that is there already keeps its children until they go stale
            node.block = delta.add_block
            old = parent.children.get(index) if index is not None else None
            if old is not None and old.block is not None and \
                    old.block.WhichOneof("type") == delta.add_block.WhichOneof("type"):
                node.children = old.children
        if index is None:
            self._roots[path[0]] = node
        else:
            parent.children[index] = node

    def _on_script_finished(self, msg: ForwardMsg) -> None:
        status, run = msg.script_finished, msg.metadata.run
        ended = status != FINISHED_EARLY_FOR_RERUN
        if status in (FINISHED_SUCCESSFULLY, FINISHED_FRAGMENT_RUN_SUCCESSFULLY) and run.script_run_id and \
                (run.fragment_ids or run.script_run_id == self._run_id):
            for key in list(self._roots):
                root = _clear_stale(self._roots[key], run.script_run_id, list(run.fragment_ids))
                self._roots[key] = root if root is not None else _Node(run.script_run_id)
            self._drop_inactive_widget_states()
        if ended and run.script_run_id and self._new_session_since_send:
            self._age_cache(list(run.fragment_ids))
        if ended and not run.fragment_ids and not self._auto_reruns:
            self._settled.set()
        waiter = self._waiter
        if waiter is None or waiter.future.done() or waiter.target_run is None:
            return
        if run.script_run_id and run.script_run_id != waiter.target_run:
            return
        if ended:
            waiter.future.set_result(status)
        else:
            waiter.target_run = None  # st.rerun(): the next run is the one to wait for

    def _drop_inactive_widget_states(self) -> None:
        active = set()
        for _, node in self._nodes():
            if node.element is not None:
                active.add(_widget_id(node.element))
            elif node.block is not None and node.block.id:
                active.add(node.block.id)
        for wid in [w for w in self._widget_states if w not in active]:
            del self._widget_states[wid]
