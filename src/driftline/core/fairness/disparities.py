"""Fairness metrics from group counts, named and computed as the reference libraries do.

fairlearn: a metric's ``difference`` and ``ratio`` over groups, ``between_groups``
(max - min, min / max) or ``to_overall`` (largest |group - overall|, smallest
group/overall ratio folded below 1); demographic parity (selection rate), equalized odds
(worst of TPR and FPR), equal opportunity (TPR). Aequitas: each group's disparity
``metric_g / metric_ref`` against the reference group, fair when inside
``[tau, 1/tau]``. AIF360 names the same quantities differently (``aif360_aliases``).

>>> from driftline.core.fairness.counts import GroupCounts
>>> groups = {"a": GroupCounts(n=100, pp=40, tp=30, fp=10, tn=50, fn=10),
...           "b": GroupCounts(n=100, pp=60, tp=45, fp=15, tn=30, fn=10)}
>>> summary(groups)["demographic_parity_ratio"]
0.6666666666666667
>>> disparity(groups, "selection_rate", "b")["a"]
0.6666666666666667
"""

from __future__ import annotations

from typing import Any

from driftline.core.fairness.counts import GroupCounts, fraction

__all__ = ["overall", "difference", "ratio", "summary", "disparity", "aequitas_parity", "aif360_aliases"]


def overall(groups: dict[str, GroupCounts]) -> GroupCounts:
    """The counts of every group added up."""
    total = GroupCounts()
    for counts in groups.values():
        total.add(counts)
    return total


def _rates(groups: dict[str, GroupCounts], metric: str) -> dict[str, float]:
    out = {}
    for name, counts in groups.items():
        k, n = fraction(counts, metric)
        if n:
            out[name] = k / n
    return out


def difference(groups: dict[str, GroupCounts], metric: str, method: str = "between_groups") -> float | None:
    """fairlearn's ``MetricFrame.difference`` for one metric (None: no group has a value)."""
    rates = _rates(groups, metric)
    if not rates:
        return None
    if method == "between_groups":
        return max(rates.values()) - min(rates.values())
    whole = overall(groups).rate(metric)
    return max(abs(r - whole) for r in rates.values())


def ratio(groups: dict[str, GroupCounts], metric: str, method: str = "between_groups") -> float | None:
    """fairlearn's ``MetricFrame.ratio`` for one metric; None where a ratio is undefined."""
    rates = _rates(groups, metric)
    if not rates:
        return None
    if method == "between_groups":
        top = max(rates.values())
        return min(rates.values()) / top if top else None
    whole = overall(groups).rate(metric)
    if not whole:
        return None
    folded = [(r / whole if r / whole <= 1 else 1 / (r / whole)) for r in rates.values()]
    return min(folded)


def summary(groups: dict[str, GroupCounts]) -> dict[str, float | None]:
    """fairlearn's scalar fairness metrics, both methods (``_to_overall`` suffix for the second)."""
    out: dict[str, float | None] = {}
    for method, suffix in (("between_groups", ""), ("to_overall", "_to_overall")):
        tpr_d, fpr_d = difference(groups, "tpr", method), difference(groups, "fpr", method)
        tpr_r, fpr_r = ratio(groups, "tpr", method), ratio(groups, "fpr", method)
        out["demographic_parity_difference" + suffix] = difference(groups, "selection_rate", method)
        out["demographic_parity_ratio" + suffix] = ratio(groups, "selection_rate", method)
        out["equalized_odds_difference" + suffix] = None if None in (tpr_d, fpr_d) else max(tpr_d, fpr_d)
        out["equalized_odds_ratio" + suffix] = None if None in (tpr_r, fpr_r) else min(tpr_r, fpr_r)
        out["equal_opportunity_difference" + suffix] = tpr_d
        out["equal_opportunity_ratio" + suffix] = tpr_r
    return out


def disparity(groups: dict[str, GroupCounts], metric: str, reference: str) -> dict[str, float | None]:
    """Aequitas's disparity of every group against ``reference`` (``ppr``: share of all favourable predictions)."""
    if metric == "ppr":
        total = sum(c.pp for c in groups.values())
        rates = {g: c.pp / total for g, c in groups.items()} if total else {}
    else:
        rates = {g: c.rate(metric) for g, c in groups.items()}
    ref = rates.get(reference)
    return {g: (None if r is None or not ref else r / ref) for g, r in rates.items()}


def aequitas_parity(groups: dict[str, GroupCounts], reference: str, tau: float = 0.8) -> dict[str, dict[str, bool | None]]:
    """Aequitas's band booleans per group: ``tau <= disparity <= 1/tau`` (None: undefined).

    Keys are Aequitas's column names: Statistical Parity (ppr), Impact Parity (pprev, the
    selection rate), FPR, FNR, TPR and Precision Parity.
    """
    columns = {"Statistical Parity": "ppr", "Impact Parity": "selection_rate", "FPR Parity": "fpr",
               "FNR Parity": "fnr", "TPR Parity": "tpr", "Precision Parity": "ppv"}
    out: dict[str, dict[str, bool | None]] = {g: {} for g in groups}
    for column, metric in columns.items():
        for g, d in disparity(groups, metric, reference).items():
            out[g][column] = None if d is None else tau <= d <= 1 / tau
    return out


def aif360_aliases(groups: dict[str, GroupCounts], reference: str) -> dict[str, dict[str, Any]]:
    """AIF360's names, per unprivileged group against the privileged ``reference``."""
    ref = groups[reference]
    out = {}
    for g, c in groups.items():
        if g == reference:
            continue
        sr, sr0 = c.rate("selection_rate"), ref.rate("selection_rate")
        tpr, tpr0, fpr, fpr0 = c.rate("tpr"), ref.rate("tpr"), c.rate("fpr"), ref.rate("fpr")
        out[g] = {
            "statistical_parity_difference": None if None in (sr, sr0) else sr - sr0,
            "disparate_impact": None if sr is None or not sr0 else sr / sr0,
            "equal_opportunity_difference": None if None in (tpr, tpr0) else tpr - tpr0,
            "average_odds_difference": None if None in (tpr, tpr0, fpr, fpr0) else ((fpr - fpr0) + (tpr - tpr0)) / 2,
        }
    return out
