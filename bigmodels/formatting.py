"""Numbers for people: byte sizes, counts, durations and FLOP counts as short strings.

Pure functions, shared by the CLI, the analysis and the pages. An unknown
value (None) is shown as "–".
"""
from __future__ import annotations

import math
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
