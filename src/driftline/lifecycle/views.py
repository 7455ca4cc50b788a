"""Plain-text tables and comparisons of registry rows, for the CLI and the API.

>>> print(table(["a", "bb"], [[1, "x"], [22, "yy"]]))
 a  bb
--  --
 1  x
22  yy
>>> diff_versions({"version": 1, "metrics": {"accuracy": 0.5}, "params": {"l2": 0}},
...               {"version": 2, "metrics": {"accuracy": 0.75}, "params": {"l2": 0}})["metrics"]
{'accuracy': [0.5, 0.75, 0.25]}
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["table", "diff_versions", "fmt_ms"]


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def table(header: list[str], rows: list[list[Any]]) -> str:
    """Columns aligned: numbers to the right, text to the left."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(header))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in cells)])


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def diff_versions(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What changed from version ``a`` to ``b``: metrics (with the delta), params, lineage."""
    metrics = {}
    for name in sorted(set(a.get("metrics") or {}) | set(b.get("metrics") or {})):
        x, y = (a.get("metrics") or {}).get(name), (b.get("metrics") or {}).get(name)
        if x != y:
            metrics[name] = [x, y, round(y - x, 6) if isinstance(x, float) and isinstance(y, float) else None]
    pa, pb = _flat(a.get("params") or {}), _flat(b.get("params") or {})
    params = {k: [pa.get(k), pb.get(k)] for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)}
    fields = ("parent", "trigger", "examples_seen", "model_class", "stream_time", "status", "aliases", "variants")
    return {
        "a": a.get("version"), "b": b.get("version"), "metrics": metrics, "params": params,
        "fields": {f: [a.get(f), b.get(f)] for f in fields if a.get(f) != b.get(f)},
    }
