"""Bias attribution (core/explain/bias.py) on the seeded lending stream with a proxy, and in
the fairness events of an engine."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jsonschema
import orjson

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.explain import Explainer
from driftline.core.outputs import DriftEvent
from driftline.core.explain.bias import BiasAttribution, attribution_evidence
from driftline.core.models import PRESETS
from driftline.fairness_data import lending


def test_the_proxy_carries_the_disparity_and_the_other_features_none():
    """The model never sees `group`; labels are biased against group b and `region` equals
    the group 80% of the time: the gap in the model's logit between b and a is carried by
    `region`, while `income` and `debt`, drawn alike in both groups, carry about nothing."""
    model = PRESETS["logistic_regression"](("region",))
    explainer = Explainer(categorical=("region",))
    attribution = BiasAttribution()
    rows = itertools.islice(lending(seed=7, beta=0.4), 30_000)
    for i, (x, label, _) in enumerate(rows):
        group, seen = x["group"], {k: v for k, v in x.items() if k != "group"}
        if i >= 20_000:  # attribute the predictions of the trained model
            attribution.add((group,), explainer.explanation(model, seen, True).contributions)
        model.learn_one(seen, label)
    member = attribution_evidence(attribution, "group", 0, "b", "a", top_k=3)
    d = member["differences"]
    assert member["largest"] == "region" and d["region"] < 0, d
    # mean contributions of features drawn alike: about 0 (4 standard errors of a difference of
    # means of |w|·z with sd |w| over ~3,000 and ~7,000 events is below 0.12 for |w| < 1.5)
    assert abs(d["income"]) < 0.12 and abs(d["debt"]) < 0.12, d
    assert abs(d["region"]) > 5 * max(abs(d["income"]), abs(d["debt"])), d
    assert member["gap"] == sum(d.values())


def test_fairness_events_name_the_feature_with_the_largest_difference():
    cfg = DeploymentConfig(
        name="bias", model={"preset": "logistic_regression",
                            "features": {"group": "cat", "region": "cat", "income": "num", "debt": "num"}},
        drift={"policy": "none"}, governance={"explain": {"enabled": True},
                    "fairness": {"enabled": True, "attributes": [{"name": "group", "reference": "a"}],
                                 "metrics": ["selection_rate"], "check_every": 100}})
    engine = Engine(cfg)
    events = []
    for i, (x, label, _) in enumerate(itertools.islice(lending(seed=5, beta=0.5, t0=2000), 6000)):
        key = f"e{i}".encode()
        for kind, body, t in (("features", {"id": f"e{i}", "features": x}, 2 * i),
                              ("labels", {"id": f"e{i}", "label": label}, 2 * i + 1)):
            events += [o.body() for o in engine.process(InputRecord(kind, 0, i, t, key, orjson.dumps(body)), 0)
                       if type(o) is DriftEvent]
    violations = [e for e in events if e["kind"] == "fairness" and e["evidence"].get("state") == "violation"]
    assert violations
    schema = json.loads((Path(__file__).resolve().parents[4] / "docs" / "schemas" / "fairness.schema.json").read_text())
    for body in violations:
        jsonschema.Draft202012Validator(schema).validate(orjson.loads(orjson.dumps(body)))  # as on the topic
    member = violations[-1]["evidence"]["attribution"]
    assert member["group"] == "b" and member["reference"] == "a" and member["method"] == "linear"
    assert member["largest"] in ("group", "region") and member["differences"][member["largest"]] < 0
