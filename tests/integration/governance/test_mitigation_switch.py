"""Switching a fairness mitigation on and off between runs on the real broker: each switch is a
lifecycle event with its audit entry, the restored engine applies the configured policy, and a
version made with group thresholds is flagged in its metadata, the registry and the card."""

from __future__ import annotations

import itertools

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.fairness_data import lending
from driftline.lifecycle.card import build_card
from driftline.lifecycle.registry import Registry, registry_path
from driftline.runtime.audit import verify_topic
from driftline.runtime.processor import Processor
from driftline.runtime.replay import replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

FEATURES = {"region": "cat", "income": "num", "debt": "num"}
FAIRNESS = {"enabled": True, "attributes": [{"name": "group", "source": "protected", "reference": "a"}],
            "metrics": ["selection_rate"], "check_every": 100}


def _with(config: DeploymentConfig, **fairness) -> DeploymentConfig:
    data = config.model_dump()
    data["governance"]["fairness"] = {**FAIRNESS, **fairness}
    return DeploymentConfig.model_validate(data)


def _rows(n: int, seed: int):
    out = []
    for x, y, _ in itertools.islice(lending(seed=seed, beta=0.3), n):
        x.pop("group")
        out.append((x, y))
    return out


def test_each_switch_is_an_audited_lifecycle_event_and_group_thresholds_are_flagged(make_config, reader,
                                                                                     signing_key):
    config = make_config(model={"preset": "logistic_regression", "features": FEATURES},
                         drift={"policy": "none"}, governance={"fairness": FAIRNESS})
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    replay(config, _rows(1500, seed=1), label_delay=20, n_rows=1500)
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    assert not [m for m in reader(config, config.topics.lifecycle)]  # mitigation none: nothing to switch

    on = _with(config, mitigation="group_threshold", acknowledge_disparate_treatment=True)
    replay(on, _rows(1500, seed=2), label_delay=20, n_rows=1500, id_prefix="f")
    engine = Processor(on, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    assert engine.fairness.thresholds is not None and engine.fairness.config.mitigation == "group_threshold"
    meta = store.meta(store.latest())
    assert meta["mitigation"] == {"policy": "group_threshold", "attribute": "group", "disparate_treatment": True}
    registry = Registry(registry_path(on))
    row = registry.get(on.name, store.latest())
    assert row["tags"]["fairness_mitigation"] == "group_threshold on group"
    assert "per-group decision thresholds on group" in row["tags"]["disparate_treatment"]
    card = build_card(on, meta, [meta], registry.events(on.name))
    assert card["considerations"]["ethical_considerations"][0]["name"].startswith("DISPARATE TREATMENT")

    off = _with(config)
    Processor(off, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    events = [orjson.loads(m.value()) for m in reader(config, config.topics.lifecycle)]
    switches = [(e["details"]["before"], e["details"]["mitigation"]) for e in events if e["action"] == "mitigation"]
    assert switches == [("none", "group_threshold"), ("group_threshold", "none")]
    assert all(e["actor"] == "config" for e in events)
    assert events[0]["details"]["disparate_treatment"] is True
    assert "mitigation" not in store.meta(store.latest())  # the version cut after the switch off
    audited = [orjson.loads(m.value()) for m in reader(config, config.topics.audit)]
    assert sorted(a["subject"] for a in audited if a["kind"] == "lifecycle") == sorted(e["id"] for e in events)
    result = verify_topic(config, signing_key, from_any=False)
    assert result.ok and result.entries == len(audited)
    assert [e["action"] for e in registry.events(config.name)].count("mitigation") == 2
