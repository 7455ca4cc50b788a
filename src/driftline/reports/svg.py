"""Inline SVG charts for the report: small, static, no JavaScript.

Coordinates are rounded to one decimal and series are thinned to at most ``MAX_POINTS``
points, so that a report with 50 features stays well under 300 KB. Styling comes from CSS
classes in the report's stylesheet (``ref``, ``cur``, ``line``, ``thr``, ``mark``).

>>> svg = histogram([0.5, 0.5], [0.25, 0.75], ["<= 0", "> 0"])
>>> svg.count("<rect"), svg.startswith("<svg")
(4, True)
>>> "<polyline" in series([(0, 1.0), (1, 2.0)], threshold=1.5)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["histogram", "series", "multi_series", "timeline", "MAX_POINTS"]

MAX_POINTS = 120
_W, _H, _PAD = 320, 120, 24


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _num(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    return f"{v:.3g}"


def _thin(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    step = len(points) / MAX_POINTS
    picked = [points[int(i * step)] for i in range(MAX_POINTS - 1)]
    return picked + [points[-1]]


def _frame(body: str, title: str, w: int = _W, h: int = _H) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">'
            f"<title>{escape(title)}</title>{body}</svg>")


def histogram(reference: Sequence[float], current: Sequence[float], labels: Sequence[str],
              title: str = "reference vs current") -> str:
    """Side-by-side bars of two proportion vectors (reference, current), one pair per bin."""
    n = max(len(reference), 1)
    top = max([*reference, *current, 1e-9])
    slot = (_W - 2 * _PAD) / n
    bar = slot * 0.4
    base = _H - _PAD
    scale = (_H - 2 * _PAD) / top
    parts = [f'<line class="axis" x1="{_PAD}" y1="{base}" x2="{_W - _PAD}" y2="{base}"/>']
    for i, (r, c) in enumerate(zip(reference, current)):
        x = _PAD + i * slot + slot * 0.1
        label = escape(labels[i] if i < len(labels) else str(i))
        for cls, v, dx in (("ref", r, 0.0), ("cur", c, bar)):
            h = v * scale
            parts.append(f'<rect class="{cls}" x="{_f(x + dx)}" y="{_f(base - h)}" width="{_f(bar)}" '
                         f'height="{_f(h)}"><title>{label}: {cls} {v:.3f}</title></rect>')
    parts.append(f'<text x="{_PAD}" y="12">max {top:.2f}</text>')
    return _frame("".join(parts), title)


def _scale(points: list[tuple[float, float]], extra: Sequence[float] = ()) -> tuple:
    xs = [p[0] for p in points] or [0.0]
    ys = [p[1] for p in points] + list(extra) or [0.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys + [0.0]), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    sx = (_W - 2 * _PAD) / (x1 - x0)
    sy = (_H - 2 * _PAD) / (y1 - y0)
    return (lambda x: _PAD + (x - x0) * sx), (lambda y: _H - _PAD - (y - y0) * sy), (x0, x1, y0, y1)


def series(points: Sequence[tuple[float, float]], threshold: float | None = None,
           title: str = "over windows", marks: Sequence[float] = ()) -> str:
    """One line over x, with a dashed threshold line and vertical marks (e.g. drift positions)."""
    return multi_series({"": points}, threshold, title, marks)


def multi_series(lines: dict[str, Sequence[tuple[float, float]]], threshold: float | None = None,
                 title: str = "", marks: Sequence[float] = ()) -> str:
    """Several lines sharing the axes (classes ``line0``, ``line1``, ...)."""
    thinned = {name: _thin(pts) for name, pts in lines.items()}
    allpts = [p for pts in thinned.values() for p in pts]
    X, Y, (x0, x1, y0, y1) = _scale(allpts, [threshold] if threshold is not None else [])
    parts = [f'<line class="axis" x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}"/>']
    for m in marks:
        if x0 <= m <= x1:
            parts.append(f'<line class="mark" x1="{_f(X(m))}" y1="{_PAD}" x2="{_f(X(m))}" y2="{_H - _PAD}"/>')
    if threshold is not None:
        parts.append(f'<line class="thr" x1="{_PAD}" y1="{_f(Y(threshold))}" x2="{_W - _PAD}" '
                     f'y2="{_f(Y(threshold))}"><title>threshold {_num(threshold)}</title></line>')
    for i, (name, pts) in enumerate(thinned.items()):
        if pts:
            coords = " ".join(f"{_f(X(x))},{_f(Y(y))}" for x, y in pts)
            parts.append(f'<polyline class="line line{i % 8}" points="{coords}">'
                         f"<title>{escape(name)}</title></polyline>")
    parts.append(f'<text x="{_PAD}" y="12">{_num(y1)}</text><text x="{_PAD}" y="{_H - 6}">{_num(x0)}</text>'
                 f'<text x="{_W - _PAD}" y="{_H - 6}" text-anchor="end">{_num(x1)}</text>')
    return _frame("".join(parts), title)


def timeline(events: Sequence[tuple[float, str, str]], start: float, end: float, width: int = 640) -> str:
    """Drift events as ticks on one axis: ``(position, css kind, id)``."""
    end = end if end > start else start + 1
    s = (width - 2 * _PAD) / (end - start)
    parts = [f'<line class="axis" x1="{_PAD}" y1="30" x2="{width - _PAD}" y2="30"/>']
    for pos, kind, ident in events:
        x = _f(_PAD + (pos - start) * s)
        parts.append(f'<line class="ev {escape(kind)}" x1="{x}" y1="10" x2="{x}" y2="50">'
                     f"<title>{escape(ident)}</title></line>")
    parts.append(f'<text x="{_PAD}" y="58">{_num(start)}</text>'
                 f'<text x="{width - _PAD}" y="58" text-anchor="end">{_num(end)}</text>')
    return _frame("".join(parts), "drift events by position", width, 60)
