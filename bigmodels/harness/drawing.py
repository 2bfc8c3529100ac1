"""Drawing on the sandbox's canvas with the mouse, as a hand would (Playwright).

    stroke(page, canvas.bounding_box(), [(70, 60), (210, 60), (140, 240)])  # a 7

Shared by the browser tests and benchmarks/sandbox_browser.py: points are in
canvas pixels, from the canvas's top-left corner.
"""
from __future__ import annotations


def stroke(page, box, points, steps: int = 8) -> None:
    """Press at the first point, move through the others in ``steps`` small moves
    per segment, release at the last."""
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for k in range(1, steps + 1):  # intermediate moves, as a hand would make
            page.mouse.move(box["x"] + x0 + (x1 - x0) * k / steps, box["y"] + y0 + (y1 - y0) * k / steps)
    page.mouse.up()
