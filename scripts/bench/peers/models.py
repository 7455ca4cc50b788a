"""The same River models as Driftline's presets, built with River alone (as a user would).

Kept identical to ``driftline.core.models.PRESETS`` for the three benchmarked presets.
"""

from river import compose, forest, linear_model, preprocessing, tree


def make_model(preset: str):
    if preset == "logistic_regression":
        return compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    if preset == "hoeffding_tree":
        return tree.HoeffdingTreeClassifier()
    if preset == "adaptive_random_forest":
        return forest.ARFClassifier(seed=42)
    raise ValueError(f"no peer model for preset {preset!r}")
