"""Hoeffding trees: Saabas path contributions, and ensembles of them (the members' average).

Along the path an input takes from the root to its leaf, each step from a branch to its
child changes the explained class's probability from the branch's value to the child's; the
change is credited to the feature the branch splits on. A node's value is its class
distribution, normalised. The sum telescopes: ``root value + sum of steps = leaf value``,
and the leaf value is what ``predict_proba_one`` returns. Where the leaf predicts with its
own naive Bayes model, the difference from its class distribution is the ``residual``
(no single feature carries it).

A Hoeffding tree's branches keep the class distribution they had when they split, so their
values are cached (by node object, weakly: a split makes a new branch, which is computed
afresh, and the replaced leaf drops out). Leaves are computed on every call. An adaptive
tree's branches keep counting, so its values are never cached; it averages the leaves it
reaches (the main one and those of alternate subtrees), as its ``predict_proba_one`` does.

>>> from river import tree
>>> ht = tree.HoeffdingTreeClassifier(grace_period=20)
>>> for i in range(400):
...     ht.learn_one({"a": i % 10, "b": (i * 7) % 5}, (i % 10) > 4)
>>> e = TreeExplainer().explain(ht, {"a": 7, "b": 2}, True)
>>> abs(e.total() - ht.predict_proba_one({"a": 7, "b": 2})[True]) < 1e-12
True
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from river import forest, tree
from river.tree.nodes.branch import DTBranch
from river.tree.nodes.hatc_nodes import AdaBranchClassifier

from driftline.core.explain.explanation import Explanation

__all__ = ["TreeExplainer", "supports_tree"]

_HT = (tree.HoeffdingTreeClassifier, tree.HoeffdingAdaptiveTreeClassifier, tree.ExtremelyFastDecisionTreeClassifier)


def supports_tree(model: Any) -> bool:
    """Single trees and the adaptive random forest of them (classification)."""
    return isinstance(model, _HT) or isinstance(model, forest.ARFClassifier)


def _normalised(stats: dict[Any, float], target: Any) -> float:
    total = sum(stats.values()) if stats else 0.0
    return stats.get(target, 0.0) / total if total > 0 else 0.0


class TreeExplainer:
    """Path contributions; holds a weak cache of branch values (not pickled: rebuilt on demand)."""

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary[Any, dict[Any, float]] = weakref.WeakKeyDictionary()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def _branch_value(self, node: DTBranch, target: Any, frozen: bool) -> float:
        if not frozen:
            return _normalised(node.stats, target)
        dist = self._cache.get(node)
        if dist is None:
            total = sum(node.stats.values()) if node.stats else 0.0
            dist = {c: w / total for c, w in node.stats.items()} if total > 0 else {}
            self._cache[node] = dist
        return dist.get(target, 0.0)

    def _path(self, ht: Any, x: dict[str, Any], target: Any, name_of: Callable[[str], str],
              contributions: dict[str, float], weight: float, normalise: bool) -> tuple[float, float, float]:
        """Add one tree's path steps (times ``weight``) to ``contributions``; (base, residual,
        the sum of the leaf's distribution).

        ``normalise``: explain the leaf's distribution divided by its sum (an ARF member's
        vote) rather than as ``predict_proba_one`` returns it.
        """
        if isinstance(ht, tree.HoeffdingAdaptiveTreeClassifier):
            return (*self._adaptive(ht, x, target, name_of, contributions, weight), 1.0)
        root = ht._root
        frozen = not isinstance(ht, tree.ExtremelyFastDecisionTreeClassifier)  # EFDT branches keep counting
        node, value = root, None
        if isinstance(root, DTBranch):
            value = base = self._branch_value(root, target, frozen)
            while isinstance(node, DTBranch):
                try:
                    child = node.next(x)
                except KeyError:
                    _, child = node.most_common_path()
                child_value = (self._branch_value(child, target, frozen) if isinstance(child, DTBranch)
                               else _normalised(child.stats, target))
                name = name_of(node.feature)
                contributions[name] = contributions.get(name, 0.0) + weight * (child_value - value)
                node, value = child, child_value
        else:
            value = base = _normalised(root.stats, target)
        dist = node.prediction(x, tree=ht)
        predicted = dist.get(target, 0.0)
        total = sum(dist.values()) if dist else 0.0
        if normalise:
            predicted = predicted / total if total > 0 else 0.0
        return base, predicted - value, total

    def _adaptive(self, ht: Any, x: dict[str, Any], target: Any, name_of: Callable[[str], str],
                  contributions: dict[str, float], weight: float) -> tuple[float, float]:
        """The adaptive tree: the mean over the leaves it reaches (its ``predict_proba_one``)."""
        root = ht._root
        if not isinstance(root, DTBranch):
            dist = root.prediction(x, tree=ht)
            total = sum(dist.values()) if dist else 0.0
            base = _normalised(root.stats, target)
            return base, (dist.get(target, 0.0) / total if total > 0 else 0.0) - base
        path = list(root.walk(x, until_leaf=True))  # as its traverse() walks, repeats included
        found: list[tuple[int, Any]] = []  # (index of the branch on the path it hangs from, leaf)
        for i, node in enumerate(path):
            if isinstance(node, AdaBranchClassifier) and node._alternate_tree:
                if isinstance(node._alternate_tree, DTBranch):
                    raise _Unsupported("an alternate subtree with branches")
                found.append((i, node._alternate_tree))
        found.append((len(path) - 1, path[-1]))
        dists = [leaf.prediction(x, tree=ht) for _, leaf in found]
        sums = [sum(d.values()) if d else 0.0 for d in dists]
        grand = sum(sums)
        values = [_normalised(n.stats, target) for n in path]
        base = values[0]
        if grand <= 0:
            return base, -base
        residual = 0.0
        for (end, leaf), dist, s in zip(found, dists, sums):
            if s <= 0:
                continue
            share = weight * s / grand
            for i in range(end):
                if path[i + 1] is path[i]:
                    continue
                name = name_of(path[i].feature)
                contributions[name] = contributions.get(name, 0.0) + share * (values[i + 1] - values[i])
            residual += s / grand * (dist.get(target, 0.0) / s - values[end])
        return base, residual

    def explain(self, model: Any, x: dict[str, Any], target: Any,
                name_of: Callable[[str], str] = str) -> Explanation | None:
        """The path contributions to ``predict_proba_one(x)[target]``; None if it cannot be exact."""
        try:
            if isinstance(model, forest.ARFClassifier):
                return self._forest(model, x, target, name_of)
            if model._root is None:  # untrained: predict_proba_one gives every class 0
                return Explanation("saabas", target, "probability", 0.0, 0.0, {})
            contributions: dict[str, float] = {}
            base, residual, _ = self._path(model, x, target, name_of, contributions, 1.0, False)
        except _Unsupported:
            return None
        value = base + sum(contributions.values()) + residual
        return Explanation("saabas", target, "probability", value, base, contributions, residual)

    def _forest(self, arf: Any, x: dict[str, Any], target: Any, name_of: Callable[[str], str]) -> Explanation:
        """ARF: each member's path, weighted as its vote is (its metric, times its proba's sum)."""
        empty = Explanation("saabas_mean", target, "probability", 0.0, 0.0, {})
        if len(arf) == 0:
            return empty  # predict_proba_one builds the ensemble and answers {}: nothing learned yet
        members = []
        for i, member in enumerate(arf):
            if member._root is None:
                continue
            metric = arf._metrics[i].get()
            w = metric if (not arf.disable_weighted_vote and metric > 0.0) else 1.0
            own: dict[str, float] = {}
            base, residual, total = self._path(member, x, target, name_of, own, 1.0, True)
            members.append((w * total, base, residual, own))
        grand = sum(m[0] for m in members)
        if grand <= 0:
            return empty
        contributions: dict[str, float] = {}
        base = residual = 0.0
        for vote, b, r, own in members:
            share = vote / grand
            base += share * b
            residual += share * r
            for name, c in own.items():
                contributions[name] = contributions.get(name, 0.0) + share * c
        value = base + sum(contributions.values()) + residual
        return Explanation("saabas_mean", target, "probability", value, base, contributions, residual)


class _Unsupported(Exception):
    """A tree shape the exact decomposition does not cover (internal: becomes None)."""
