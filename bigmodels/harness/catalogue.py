"""A catalogue text as Streamlit shows it, for checking what a page put on screen.

Tests and benchmarks look for the app's texts in what Streamlit sends or
draws. The texts come from ``bigmodels.base.i18n`` with ``{fields}``, and Streamlit
does not always show them as written: ``st.success``/``st.warning``/``st.info``/
``st.error`` take a leading emoji off the body and show it as the alert's icon
(``"⚠️ The models disagree: …"`` arrives as ``"The models disagree: …"``),
while ``st.markdown`` keeps it. ``shown`` builds the one pattern for both, so
no caller has to remember which element strips what:

    shown("sandbox.disagree").match(alert.body)["answers"]      # any answers
    shown("sandbox.agree", digit=7).match(alert.body)           # exactly this verdict
"""
from __future__ import annotations

import re
import string
import unicodedata

from bigmodels.base.i18n import DEFAULT_LANGUAGE, catalogue

# What may follow an emoji's base character inside the one emoji: variation
# selectors, the keycap mark, skin tones, tag characters (flags of regions).
_EMOJI_MODIFIERS = re.compile("[\ufe0e\ufe0f\u20e3\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]*")
_ZWJ = "\u200d"
# Streamlit's separator between an extracted icon and the text (streamlit.emojis)
_ICON_SEPARATOR = re.compile("[_ -]*")


def _is_emoji_base(char: str) -> bool:
    return unicodedata.category(char) == "So"  # other symbols: emoji, dingbats, regional indicators


def leading_icon(text: str) -> tuple[str, str]:
    """Split ``text`` into the leading emoji an alert would show as its icon
    (with the separator after it) and the rest. ``("", text)`` without one.

    Streamlit matches against its own list of emoji; this uses the Unicode
    category instead (no Streamlit import), which agrees on the catalogue's
    emoji: one base symbol with its modifiers, or a zero-width-joined sequence."""
    if not text or not _is_emoji_base(text[0]):
        return "", text
    end = _EMOJI_MODIFIERS.match(text, 1).end()
    while text.startswith(_ZWJ, end) and end + 1 < len(text) and _is_emoji_base(text[end + 1]):
        end = _EMOJI_MODIFIERS.match(text, end + 2).end()
    end = _ICON_SEPARATOR.match(text, end).end()
    return text[:end], text[end:]


def shown(key: str, lang: str = DEFAULT_LANGUAGE, /, **values: object) -> re.Pattern:
    """A pattern that fully matches ``key``'s ``lang`` text as Streamlit shows it.

    * A leading emoji is optional: present in markdown, gone from an alert's body.
    * Each ``{field}`` given in ``values`` must read exactly as the page formats
      it (its format spec applied: ``{index:,}`` with 12345 is ``12,345``); each
      one not given matches any text and is captured as a named group
      (``match["label"]``), a second use of the same field as the same text.
    * The match is anchored at both ends (use ``.match``; nothing else may follow)."""
    icon, text = leading_icon(catalogue(lang)[key])
    formatter = string.Formatter()
    parts = [f"(?:{re.escape(icon)})?" if icon else ""]
    seen: set[str] = set()
    for literal, name, spec, conversion in formatter.parse(text):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name in values:
            value = formatter.convert_field(values[name], conversion)
            parts.append(re.escape(formatter.format_field(value, spec or "")))
        elif not name.isidentifier():
            parts.append("(.+?)")
        elif name in seen:
            parts.append(f"(?P={name})")
        else:
            parts.append(f"(?P<{name}>.+?)")
            seen.add(name)
    return re.compile("".join(parts) + r"\Z", re.S)
