"""Per-group results as a version records them, for its model card (lifecycle/card.py).

For each attribute (and intersection), each group of the sliding window: its counts, label
coverage, mean label delay and every configured rate with its Wilson 95% interval; and the
state of each metric (``ok``, ``violation``, ``insufficient_data``) with the reference group.
Only counts and rates: no feature value, no event id.

>>> from driftline.config import DeploymentConfig
>>> from driftline.core.engine import Engine
>>> from driftline.core.events import InputRecord
>>> cfg = DeploymentConfig(name="demo", governance={"fairness": {
...     "enabled": True, "attributes": [{"name": "g"}], "metrics": ["selection_rate"]}})
>>> engine = Engine(cfg)
>>> _ = engine.process(InputRecord("features", 0, 0, 1000, b"e1", b'{"id": "e1", "features": {"g": "a"}}'), now_ms=0)
>>> result = group_results(engine.fairness)
>>> result["window"], result["attributes"]["g"]["groups"]["a"]["n"]
('sliding', 1)
>>> result["attributes"]["g"]["states"]
{'selection_rate': 'insufficient_data'}
"""

from __future__ import annotations

from typing import Any

from driftline.core.fairness.counts import fraction
from driftline.core.fairness.statistics import wilson

__all__ = ["group_results"]


def group_results(watch: Any) -> dict[str, Any]:
    """The sliding window's per-group results of a :class:`~driftline.core.fairness.watch.FairnessWatch`."""
    monitor, config = watch.monitor, watch.config
    attributes: dict[str, Any] = {}
    for dimension, groups in monitor.views.sliding.items():
        table = {}
        for group, counts in sorted(groups.items()):
            rates = {}
            for metric in config.metrics:
                k, n = fraction(counts, metric)
                if n:
                    low, high = wilson(k, n)
                    rates[metric] = {"value": k / n, "lower": low, "upper": high, "n": n}
            labelled = counts.labelled
            table[group] = {"n": counts.n, "labelled": labelled,
                            "coverage": labelled / counts.n if counts.n else None,
                            "mean_label_delay_ms": counts.delay_ms / labelled if labelled else None,
                            "rates": rates}
        attributes[dimension] = {
            "reference": monitor.reference_of(dimension, groups),
            "groups": table,
            "states": {m: monitor.states[(dimension, m)] for m in config.metrics},
        }
    return {"window": "sliding", "window_size": config.window, "attributes": attributes}
