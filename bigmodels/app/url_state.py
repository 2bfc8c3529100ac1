"""A page's view in its address: the widgets that shape what is shown (filters, sort,
the runs picked, axes, smoothing) are mirrored in the query string, so a copied
link opens the same view in a new tab or on another machine.

A widget is ``seed``-ed before it is drawn: on the session's first draw its value
comes from the link when the link's value is valid for it now (an unknown run or
status is dropped, a number out of bounds is refused), else from its default;
after that the session's own value wins. Once drawn, ``publish`` writes the
value back, and leaves the parameter out while it is the default, so a plain
view keeps a plain address.

A seeded widget is drawn with its seeded value as its ``value=``/``default=`` too
(``seeded(key)``): the browser starts a widget from that default, and a fragment
rerun that reached the server before the browser had drawn the value would
otherwise bring back the widget's own default (a link's ``desc=0`` was seen
overridden that way under load). Streamlit logs that a widget got both; the
app's config turns that log line off.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import streamlit as st

LIST_SEPARATOR = "~"  # joins a list's items in one parameter; run ids, statuses and setting names never hold it


def seed(key: str, param: str, parse: Callable[[str], Any], default: Any) -> None:
    """Give widget ``key`` its first value: the link's ``param`` if ``parse`` accepts
    it (returns non-None), else ``default``. Does nothing once the session has a value."""
    if key in st.session_state:
        return
    raw = st.query_params.get(param)
    value = None
    if raw is not None:
        try:
            value = parse(raw)
        except (TypeError, ValueError):
            value = None
    st.session_state[key] = default if value is None else value


def seeded(key: str) -> Any:
    """The value ``seed`` gave (or the session since chose) for widget ``key``."""
    return st.session_state[key]


def publish(param: str, value: Any, default: Any, encode: Callable[[Any], str] = str) -> None:
    """Write ``value`` into the address as ``param``, or take it out while it is ``default``."""
    if value == default or value is None:
        if param in st.query_params:
            del st.query_params[param]
        return
    text = encode(value)
    if st.query_params.get(param) != text:
        st.query_params[param] = text


# ----------------------------------------------------------- parse and encode
def one_of(options: Iterable[Any]) -> Callable[[str], Any]:
    choices = {str(o): o for o in options}
    return lambda raw: choices.get(raw)


def some_of(options: Iterable[Any]) -> Callable[[str], list | None]:
    """A list of options, in the link's order, unknown ones dropped."""
    choices = {str(o): o for o in options}
    return lambda raw: [choices[item] for item in dict.fromkeys(raw.split(LIST_SEPARATOR)) if item in choices]


def join(values: Sequence[Any]) -> str:
    return LIST_SEPARATOR.join(str(v) for v in values)


def flag(raw: str) -> bool | None:
    return {"1": True, "0": False}.get(raw)


def encode_flag(value: bool) -> str:
    return "1" if value else "0"


def number_in(low: float, high: float, whole: bool = False) -> Callable[[str], float | int | None]:
    def parse(raw: str):
        value = float(raw)
        if not math.isfinite(value) or not low <= value <= high or (whole and not value.is_integer()):
            return None
        return int(value) if whole else value
    return parse


def text_of(limit: int) -> Callable[[str], str | None]:
    return lambda raw: raw[:limit]
