"""Point labels that do not cover each other: a plotly ``textposition`` per point.

Used by every scatter that names its points (the comparison's accuracy
charts, the challenges' compute and token charts). Plotly places text but does
not avoid collisions; this picks, for each label (top point first), the
position around its point that overlaps least with the labels already placed,
the other points and the plot's edge, from label sizes estimated from the
font size and the text's length.
"""
from __future__ import annotations

from typing import Sequence

LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "top left",
                   "bottom right", "bottom left")


def label_box(x: float, y: float, text: str, position: str, font: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in px of a point label at ``position`` from a point at (x, y)."""
    width, height, gap = 0.62 * font * len(text) + 4, font + 4, 9
    vertical, horizontal = position.split()
    cx = {"center": x, "right": x + gap + width / 2, "left": x - gap - width / 2}[horizontal]
    cy = {"top": y + gap + height / 2, "bottom": y - gap - height / 2, "middle": y}[vertical]
    if vertical != "middle" and horizontal != "center":  # diagonal: beside the point, not above it
        cx += (-1 if horizontal == "left" else 1) * (gap - width / 2)
    return cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2


def overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def place_labels(points_px: Sequence[tuple[float, float]], texts: Sequence[str], size: tuple[float, float],
                 font: float = 12, drop_crowded: bool = False) -> list[str | None]:
    """A plotly ``textposition`` per point so that no label covers another label,
    another point or leaves the plot: each label, top point first, takes the
    first position with the least overlap. ``points_px`` are in px from the
    bottom-left corner of a plot ``size`` px large. ``drop_crowded``: a label that
    would still cover another label or point gets None (its point is named on
    hover): in a crowded corner, fewer readable names beat a heap of unreadable ones."""
    markers = [(x - 8, y - 8, x + 8, y + 8) for x, y in points_px]
    chosen: list[str | None] = [""] * len(points_px)
    placed: list[tuple] = []
    for i in sorted(range(len(points_px)), key=lambda i: -points_px[i][1]):
        def cost(position):
            box = label_box(*points_px[i], texts[i], position, font)
            outside = (box[2] - box[0]) * (box[3] - box[1]) - overlap(box, (0, 0, *size))
            return (sum(overlap(box, other) for other in placed) + 3 * outside
                    + sum(overlap(box, m) for j, m in enumerate(markers) if j != i))
        def crowding(position):
            box = label_box(*points_px[i], texts[i], position, font)
            return (sum(overlap(box, other) for other in placed)
                    + sum(overlap(box, m) for j, m in enumerate(markers) if j != i))

        if drop_crowded:  # a place that covers nothing, even if it leans past the plot's edge, before any other
            best = min(LABEL_POSITIONS, key=lambda p: (crowding(p) > 0, cost(p)))
        else:
            best = min(LABEL_POSITIONS, key=cost)  # ties: the order above, top centre first
        box = label_box(*points_px[i], texts[i], best, font)
        if drop_crowded and crowding(best) > 0:
            chosen[i] = None
            continue
        chosen[i] = best
        placed.append(box)
    return chosen
