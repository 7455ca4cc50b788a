"""Render a report's data into one self-contained HTML page (jinja2, inline SVG, inline CSS).

The page loads nothing: no script, no font, no stylesheet, no image from anywhere, so it
opens offline and can be mailed or attached to a ticket as it is.
"""

from __future__ import annotations

import time
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["render_html"]


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.4g}"


def _when(ms: Any) -> str:
    if not isinstance(ms, (int, float)) or ms <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("driftline.reports", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters["num"] = _num
    env.filters["when"] = _when
    return env


def render_html(data: dict[str, Any]) -> str:
    """The HTML of one report (SVG fragments in ``data`` are trusted: they come from reports.svg)."""
    data = dict(data)
    for key in ("timeline",):
        data[key] = Markup(data.get(key) or "")
    data["features"] = [{**f, "histogram": Markup(f["histogram"]), "over_windows": Markup(f["over_windows"])}
                        for f in data.get("features", [])]
    data["metric_charts"] = [{**m, "chart": Markup(m["chart"])} for m in data.get("metric_charts", [])]
    data["importance"] = {**data["importance"], "chart": Markup(data["importance"].get("chart") or "")}
    return _environment().get_template("report.html.j2").render(**data)
