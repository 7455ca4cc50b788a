"""Split-based feature importance of Hoeffding trees and of forests of them.

A Hoeffding tree stores no split gain once a leaf has split, but every node keeps the
weight of the examples that reached it. The importance of a feature is the share of the
examples that passed through a split on it: the sum, over the branches that split on the
feature, of the weight below the branch, divided by the sum over all branches. It is a
cheap, structural measure (one walk of the tree, no prediction), computed once per metrics
window, never per event. An ensemble (``ARFClassifier``, bagging of trees) averages its
members' shares. A tree that has not split yet gives an empty mapping.

>>> from river import tree
>>> model = tree.HoeffdingTreeClassifier(grace_period=50)
>>> for i in range(2000):
...     model.learn_one({"a": i % 10, "b": (i * 7) % 3}, i % 10 >= 5)
>>> imp = tree_importances(model)
>>> max(imp, key=imp.get), round(sum(imp.values()), 6)
('a', 1.0)
"""

from __future__ import annotations

from typing import Any

__all__ = ["tree_importances"]


def _root(model: Any) -> Any:
    return model.__dict__.get("_root") if hasattr(model, "_root") else None


def _walk(node: Any, out: dict[str, float]) -> float:
    """Add each branch's weight to its feature; return the weight below ``node``."""
    children = getattr(node, "children", None)
    if children is None:  # a leaf
        return float(node.total_weight)
    weight = sum(_walk(child, out) for child in children if child is not None)
    feature = str(node.feature)
    out[feature] = out.get(feature, 0.0) + weight
    return weight


def _single(model: Any) -> dict[str, float] | None:
    root = _root(model)
    if root is None:
        return None if not hasattr(model, "_root") else {}
    raw: dict[str, float] = {}
    _walk(root, raw)
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()} if total else {}


def tree_importances(model: Any) -> dict[str, float] | None:
    """Shares of examples routed by splits on each feature; ``None`` for a model with no trees."""
    single = _single(model)
    if single is not None:
        return single
    try:
        members = list(model) if hasattr(model, "__iter__") and hasattr(model, "models") else None
    except TypeError:
        members = None
    if not members:  # a River forest builds its trees on the first example
        return {} if type(model).__module__.startswith("river.forest") else None
    found = [imp for imp in (_single(m) for m in members) if imp is not None]
    if not found:
        return None
    out: dict[str, float] = {}
    for imp in found:
        for name, value in imp.items():
            out[name] = out.get(name, 0.0) + value / len(found)
    return out
