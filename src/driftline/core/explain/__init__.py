"""Exact per-prediction explanations: additive contributions that sum to the model's output.

No I/O: the engine calls :class:`Explainer` on the features it has just predicted on.
"""

from driftline.core.explain.explainer import Explainer, method_of
from driftline.core.explain.explanation import Explanation, unexplained
from driftline.core.explain.linear import explain_linear
from driftline.core.explain.trees import TreeExplainer

__all__ = ["Explainer", "Explanation", "TreeExplainer", "explain_linear", "method_of", "unexplained"]
