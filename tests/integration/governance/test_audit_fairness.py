"""Fairness state changes and drift-policy model changes are audit entries: exactly one per
committed event on .drift, in the same chain as the lifecycle events, and the chain verifies."""

from __future__ import annotations

import itertools

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.fairness_data import lending
from driftline.runtime.audit import verify_topic
from driftline.runtime.processor import Processor
from driftline.runtime.replay import replay

pytestmark = pytest.mark.integration

FEATURES = {"group": "cat", "region": "cat", "income": "num", "debt": "num"}


def test_every_fairness_state_change_and_model_change_has_one_audit_entry(make_config, reader, signing_key):
    config = make_config(model={"preset": "logistic_regression", "features": FEATURES},
                         drift={"policy": "reset", "detectors": [{"name": "ADWIN", "params": {"delta": 0.9}}]},
                         governance={"fairness": {"enabled": True, "attributes": [{"name": "group", "reference": "a"}],
                                                  "metrics": ["selection_rate", "base_rate"], "check_every": 100}})
    data = [(x, y) for x, y, _ in itertools.islice(lending(seed=5, beta=0.5, t0=2000), 6000)]
    replay(config, data, label_delay=50, n_rows=len(data))
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    drift = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    audited = [orjson.loads(m.value()) for m in reader(config, config.topics.audit)]
    fairness = [e["id"] for e in drift if e["kind"] == "fairness"]
    changed = [e["id"] for e in drift if e["kind"] != "fairness" and e["action"] != "none"]
    assert fairness and changed, "the stream must change a fairness state, and a (sensitive) detector reset the model"
    assert sorted(a["subject"] for a in audited if a["kind"] == "fairness") == sorted(fairness)
    assert sorted(a["subject"] for a in audited if a["kind"] == "drift") == sorted(changed)
    entry = next(a for a in audited if a["kind"] == "fairness")
    assert entry["record"]["evidence"]["state"] in ("violation", "ok", "insufficient_data")
    result = verify_topic(config, signing_key, from_any=False)
    assert result.ok and result.entries == len(audited)
