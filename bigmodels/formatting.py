"""Numbers as people write them: sizes, counts and durations.

One module, so every page and message spells a quantity the same way.
"""
from __future__ import annotations


def format_bytes(n: float | None) -> str:
    """Binary units, as the memory figures of operating systems and GPUs read: ``1.5 GiB``."""
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_count(n: float | None) -> str:
    """A large count in short scale: ``912.3M``, ``671B``, ``61,706`` below a million."""
    if n is None:
        return "–"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(n) >= size:
            value = n / size
            return f"{value:.0f}{suffix}" if value == int(value) else f"{value:.1f}{suffix}"
    return f"{n:,.0f}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
