"""Bias attribution: which feature carries a disparity between two groups.

For models with exact additive explanations (linear, Hoeffding trees, the forest), each
prediction's output is ``base + sum_i c_i``. Averaged over a group, the difference of the
mean outputs of groups ``g`` and ``r`` is then exactly ``sum_i (mean_g c_i - mean_r c_i)``
(the bases are equal: one model): the per-feature differences of mean contributions split
the gap in the model's output between the groups, feature by feature. A proxy of the
sensitive attribute (a region that mostly equals the group) shows up as the feature with
the largest ``|difference|``; a feature drawn alike in both groups gets a difference near 0.

The fairness events name it (``evidence.attribution``, built by :func:`attribution_evidence`)
when ``[governance.explain]`` is on and the model has an exact method: the contributions
are those the prediction records carry, of the favourable class (a logistic regression's
logit of the last class, a tree's probability), summed over every prediction since the
fairness watch started (a deployment that was reset or rolled back restarts with the
version it restores).

>>> attr = BiasAttribution()
>>> attr.add(("a",), {"region": 0.5, "income": 0.1})
>>> attr.add(("b",), {"region": -0.5, "income": 0.1})
>>> attr.difference("g", 0, "b", "a")
{'region': -1.0, 'income': 0.0}
>>> attribution_evidence(attr, "g", 0, "b", "a", top_k=1)["largest"]
'region'
"""

from __future__ import annotations

from typing import Any

__all__ = ["BiasAttribution", "attribution_evidence", "fairness_attribution", "observe_prediction"]


class BiasAttribution:
    """Sums of contributions per dimension, group and feature (plain dicts: pickled with the engine)."""

    def __init__(self) -> None:
        self._sums: list[dict[str, dict[str, float]]] = []  # per dimension index: group -> feature -> sum
        self._counts: list[dict[str, int]] = []
        self.method: str | None = None
        self.output: str | None = None

    def add(self, groups: tuple[str, ...], contributions: dict[str, float]) -> None:
        """One prediction: its group in every dimension, its contributions by feature."""
        while len(self._sums) < len(groups):
            self._sums.append({})
            self._counts.append({})
        for i, group in enumerate(groups):
            sums = self._sums[i].setdefault(group, {})
            for name, c in contributions.items():
                sums[name] = sums.get(name, 0.0) + c
            self._counts[i][group] = self._counts[i].get(group, 0) + 1

    def count(self, index: int, group: str) -> int:
        return self._counts[index].get(group, 0) if index < len(self._counts) else 0

    def means(self, index: int, group: str) -> dict[str, float] | None:
        n = self.count(index, group)
        if not n:
            return None
        return {name: s / n for name, s in self._sums[index][group].items()}

    def difference(self, dimension: str, index: int, group: str, reference: str) -> dict[str, float] | None:
        """``mean contribution in group - in reference``, per feature; None without data on both."""
        g, r = self.means(index, group), self.means(index, reference)
        if g is None or r is None:
            return None
        return {name: g.get(name, 0.0) - r.get(name, 0.0) for name in [*g, *(n for n in r if n not in g)]}


def attribution_evidence(attribution: BiasAttribution | None, dimension: str, index: int, group: str | None,
                         reference: str | None, top_k: int = 5) -> dict[str, Any] | None:
    """The optional ``attribution`` member of a fairness event's evidence: for the worst
    group against the reference, the ``top_k`` features by ``|difference|`` of their mean
    contributions, and the largest one. None when there is nothing to attribute."""
    if attribution is None or group is None or reference is None or group == reference:
        return None
    diff = attribution.difference(dimension, index, group, reference)
    if not diff:
        return None
    ranked = sorted(diff.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    return {"method": attribution.method, "output": attribution.output, "group": group, "reference": reference,
            "n": {group: attribution.count(index, group), reference: attribution.count(index, reference)},
            "differences": dict(ranked[:top_k]), "largest": ranked[0][0], "gap": sum(diff.values())}


def observe_prediction(watch: Any, engine: Any, features: dict[str, Any]) -> None:
    """Add one prediction's contributions (of the favourable class) to ``watch.attribution``;
    nothing when explanations are off or the model has no exact method."""
    attribution = watch.attribution
    if attribution is None or engine.explainer is None:
        return
    favourable = watch.favourable
    target = (favourable == engine.schema.classes[-1]) if engine._binary_codec else favourable
    try:
        explanation = engine.explainer.explanation(engine.model, features, target)
    except Exception:  # noqa: BLE001 - an explanation never costs the prediction
        return
    if explanation is None:
        return
    contributions = explanation.contributions
    if explanation.target is True and target is False:  # a logistic regression explains True's logit
        contributions = {name: -c for name, c in contributions.items()}
    attribution.method, attribution.output = explanation.method, explanation.output
    attribution.add(watch.monitor.grouping.keys(features), contributions)


def fairness_attribution(watch: Any, change: Any) -> dict[str, Any]:
    """``{"attribution": ...}`` for a fairness event's evidence (the worst group of ``change``
    against its reference), or ``{}``: the member is optional."""
    names = watch.monitor.grouping.names
    if change.dimension not in names:
        return {}
    member = attribution_evidence(getattr(watch, "attribution", None), change.dimension,
                                  names.index(change.dimension), change.worst.get("group"), change.reference)
    return {} if member is None else {"attribution": member}
