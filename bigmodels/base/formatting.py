"""Numbers for people: byte sizes, counts, durations, FLOP counts, money and
log-axis ticks as short strings; and what people typed, as Markdown that shows
it as typed (``plain_markdown``, ``code_span``).

Pure functions, shared by the CLI, the analysis and the pages. An unknown
value (None) is shown as "–". Where languages write a number differently
(671B in English, 6710 亿 in Chinese) the function takes ``lang``.
"""
from __future__ import annotations

import math
import re
import string
from numbers import Real

UNKNOWN = "–"
# (base, units from the smallest, digits after the point above bytes, thousands separators)
_BINARY = (1024, ("B", "KiB", "MiB", "GiB", "TiB"), 1, "")  # memory and files
_SI = (1000, ("B", "kB", "MB", "GB", "TB", "PB"), 2, ",")  # accelerator datasheets: 1 GB = 10⁹ bytes
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def format_bytes(n: float | None, si: bool = False) -> str:
    """``n`` bytes in the largest unit it fills: binary units with one decimal
    (``1.5 MiB``), or with ``si`` decimal units with two, as datasheets use
    (``14.00 GB``); whole bytes below the first unit (``512 B``)."""
    if n is None:
        return UNKNOWN
    base, units, digits, sep = _SI if si else _BINARY
    for power in range(len(units) - 1, 0, -1):
        if n >= base ** power:
            return f"{n / base ** power:{sep}.{digits}f} {units[power]}"
    return f"{n:{sep}.0f} B"


def format_count(n: float | None) -> str:
    """A large count in short scale, as model sizes are written: ``912.3M``,
    ``671B``; plain with separators below a million (``61,706``)."""
    if n is None:
        return UNKNOWN
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(n) >= size:
            value = n / size
            return f"{value:.0f}{suffix}" if value == int(value) else f"{value:.1f}{suffix}"
    return f"{n:,.0f}"


def format_duration(seconds: float | None) -> str:
    """``5s``, ``1m 05s``, ``1h 01m``: to the second, the two largest units."""
    if seconds is None:
        return UNKNOWN
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_flops(flops: float) -> str:
    """Scientific notation with a superscript exponent, e.g. ``3.15 × 10²³``."""
    if isinstance(flops, bool) or not isinstance(flops, Real) or not math.isfinite(flops) or flops <= 0:
        raise ValueError(f"flops must be a positive finite number, got {flops!r}")
    exponent = math.floor(math.log10(flops))
    mantissa = flops / 10**exponent
    return f"{mantissa:.2f} × 10{str(exponent).translate(_SUPERSCRIPT)}"


def _trim(x: float) -> str:
    """Three significant digits at most, without trailing zeros: 2.56, 36.7, 671."""
    text = f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


_SHORT_SCALE = {"en": ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")),
                "zh": ((1e12, " 万亿"), (1e8, " 亿"), (1e4, " 万"))}


def format_count_in(n: float | None, lang: str = "en") -> str:
    """A count the way each language writes it: ``671B`` / ``6710 亿``,
    ``36.7M`` / ``3670 万``; plain with separators below the first unit."""
    if n is None:
        return UNKNOWN
    for size, unit in _SHORT_SCALE.get(lang, _SHORT_SCALE["en"]):
        if abs(n) >= size:
            return f"{_trim(n / size)}{unit}"
    return f"{n:,.0f}"


def format_money(amount: float | None, lang: str = "en") -> str:
    """US dollars with their currency, short: ``US$442K``, ``US$4.6M`` /
    ``44.2 万美元``; whole dollars below a thousand (``US$950`` / ``950 美元``)."""
    if amount is None:
        return UNKNOWN
    if lang == "zh":
        text = format_count_in(amount, "zh")
        return text + ("美元" if text[-1] in "万亿" else " 美元")
    return f"US${format_count_in(amount, 'en')}"


_TICK_STEPS = ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9))


def log_axis(values, label=None, pad: float = 0.15, steps=_TICK_STEPS, min_ticks: int = 3) -> dict:
    """Settings for a plotly log axis over ``values``: its ``range`` (``pad`` decades
    beyond the data) and ``tickvals``/``ticktext`` -- one tick per power of ten
    (1, 10, 100, ...) when the data spans enough decades, else 1-2-5 or every
    digit, so that there are always a few ticks and they never crowd or stack.
    ``label`` writes a tick (default ``format_count_in``: 1, 10, 1K, 1M, 1B); ``steps``
    and ``min_ticks`` say which tick sets to try, and how many ticks are enough."""
    positive = [float(v) for v in values if v is not None and v > 0]
    if not positive:
        return {"type": "log"}
    label = label or format_count_in
    lo, hi = math.log10(min(positive)) - pad, math.log10(max(positive)) + pad
    for multiples in steps:
        ticks = [m * 10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in multiples]
        ticks = [v for v in ticks if lo <= math.log10(v) <= hi]
        if len(ticks) >= min_ticks:
            break
    return {"type": "log", "range": [lo, hi], "tickvals": ticks, "ticktext": [label(v) for v in ticks]}


def format_si_bytes(n: float) -> str:
    """A byte count on a chart axis: ``100 MB``, ``1 GB``, ``10 kB`` (decimal units, trimmed)."""
    base, units, _, _ = _SI
    for power in range(len(units) - 1, 0, -1):
        if n >= base ** power:
            return f"{_trim(n / base ** power)} {units[power]}"
    return f"{n:,.0f} B"


# ------------------------------------------------------------- people's text
_PUNCTUATION = frozenset(string.punctuation)  # every ASCII punctuation character may be backslash-escaped
#: Streamlit's Markdown (remark-gfm) turns ``http://...``, ``www.x`` and ``a@b.c`` into links after
#: escapes are undone, so escaping cannot stop it: an invisible WORD JOINER before every ":" and
#: "@", and after "www", breaks the patterns without changing what is shown.
WORD_JOINER = "\u2060"
_AUTOLINK_BREAKS = re.compile(r"(?=[:@])|(?<=www)(?=\.)", re.IGNORECASE)


def plain_markdown(text: str) -> str:
    """``text`` (a run's name or note: anyone's words) as Markdown that shows it as
    written: each ASCII punctuation character backslash-escaped (CommonMark), so it
    makes no image (which every visitor's browser would fetch), no link, emphasis,
    heading, HTML, emoji shortcode or formula; a word joiner keeps addresses from
    being auto-linked (see WORD_JOINER); line breaks stay line breaks."""
    text = _AUTOLINK_BREAKS.sub(WORD_JOINER, text)
    escaped = "".join("\\" + c if c in _PUNCTUATION else c for c in text)
    return "  \n".join(escaped.splitlines())


def code_span(text: str) -> str:
    """``text`` as one inline code span (shown literally), fenced by more backticks
    than it holds in a row so that none of its own can close it."""
    flat = " ".join(text.split())
    fence = "`" * (max((len(run) for run in re.findall("`+", flat)), default=0) + 1)
    return f"{fence} {flat} {fence}"
