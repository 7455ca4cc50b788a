"""One prediction's explanation: a base value plus additive contributions that sum to it.

``base + sum(contributions) + residual == value`` holds to rounding for every method here.
``residual`` is the part no input feature carries (a naive Bayes leaf's own adjustment in a
Hoeffding tree, an adaptive tree's alternate subtree); it is 0 for linear models.

>>> e = Explanation("linear", True, "logit", 0.5, -0.25, {"age": -1.0, "income": 1.75})
>>> e.total() == e.value
True
>>> e.body(top_k=1)["contributions"], e.reasons(2)
({'income': 1.75}, ['age'])
"""

from __future__ import annotations

from typing import Any, NamedTuple

from driftline.core.outputs import json_key

__all__ = ["Explanation", "unexplained"]


class Explanation(NamedTuple):
    """Immutable; a named tuple because one is made per prediction (a frozen dataclass costs
    about three times as much to build)."""

    method: str  # "linear" (w_i * z_i), "saabas" (tree path), "saabas_mean" (ensemble average)
    target: Any  # the class whose logit or probability is explained (None: a regression output)
    output: str  # "logit", "probability" or "value"
    value: float  # the model's output being explained
    base: float  # the intercept, or the root's value of a tree
    contributions: dict[str, float]  # feature name -> share of value - base
    residual: float = 0.0

    def total(self) -> float:
        return self.base + sum(self.contributions.values()) + self.residual

    def top(self, k: int) -> dict[str, float]:
        """The ``k`` largest contributions by magnitude, largest first (ties by name)."""
        return dict(sorted(self.contributions.items(), key=_by_magnitude)[:k])

    def reasons(self, k: int) -> list[str]:
        """Reason codes: the features that pushed the output down most, most negative first."""
        negative = sorted((c, name) for name, c in self.contributions.items() if c < 0)
        return [name for _, name in negative[:k]]

    def body(self, top_k: int) -> dict[str, Any]:
        """The ``explanation`` member of a prediction record (docs/schemas/prediction.schema.json)."""
        return {
            "method": self.method,
            "target": None if self.target is None else json_key(self.target),
            "output": self.output,
            "value": self.value,
            "base": self.base,
            "residual": self.residual,
            "contributions": self.top(top_k),
            "reasons": self.reasons(top_k),
        }


def _by_magnitude(item: tuple[str, float]) -> tuple[float, str]:
    return -abs(item[1]), item[0]


def unexplained(model: Any) -> dict[str, Any]:
    """The ``explanation`` member for a model with no per-prediction method: said, not guessed."""
    return {"method": "none", "model": type(model).__name__, "contributions": {}, "reasons": []}
