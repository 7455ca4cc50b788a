"""Logs never carry feature values, and a short secret does not redact every letter."""

from __future__ import annotations

import io
import random

import orjson
from prometheus_client import CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.observability.logs import configure_logging
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.collector import OutputCollector

CANARY = "CANARYVALUE93"


def test_a_short_secret_is_redacted_only_where_it_stands_alone():
    stream = io.StringIO()
    log = configure_logging("INFO", secrets=["k", "a-long-enough-secret-1234"], stream=stream, name="test.short")
    log.info("kafka keeps k", extra={"fields": {"password": "k", "token": "xa-long-enough-secret-1234x"}})
    line = orjson.loads(stream.getvalue())
    assert line["body"] == "kafka keeps ***"
    assert line["attributes"] == {"password": "***", "token": "x***x"}


def test_processor_logs_carry_no_feature_values():
    """Drift evidence (data drift's categories, fairness's groups) and dead-letter details
    quote values: they go to their topics, never to a log line."""
    stream = io.StringIO()
    configure_logging("INFO", stream=stream, name="driftline")
    cfg = DeploymentConfig(
        name="logs-privacy", model={"features": {"x": "num", "city": "cat"}},
        drift={"data": {"enabled": True, "reference_size": 100, "window_size": 100, "step": 20, "alpha": 0.5, "psi_bins": 2}},
        processor={"dead_letter_warn_after": 2},
        governance={"fairness": {"enabled": True, "attributes": [{"name": "city"}], "metrics": ["selection_rate"],
                                 "check_every": 1, "min_group": 5, "min_denominator": 5, "window": 200, "alpha": 0.5, "tau": 0.99, "alpha_horizon": 1}})
    engine = Engine(cfg)
    sent: list[tuple[str, bytes]] = []
    collector = OutputCollector(cfg, ProcessorMetrics(cfg.name, registry=CollectorRegistry()),
                                lambda topic, key, value, headers: sent.append((topic, value)))
    rng = random.Random(7)
    for i in range(400):
        city = CANARY if i >= 150 else "paris"  # a new category: data drift and a fairness group
        body = {"id": f"e{i}", "features": {"x": rng.random() + (i >= 150), "city": city if rng.random() < 0.7 else "lyon"}}
        for out in engine.process(InputRecord("features", 0, i, 1000 + i, None, orjson.dumps(body)), 0):
            collector.emit(out, 0)
        label = {"id": f"e{i}", "label": (city == CANARY) or rng.random() < 0.5}
        for out in engine.process(InputRecord("labels", 0, i, 1000 + i, None, orjson.dumps(label)), 0):
            collector.emit(out, 0)
    for i in range(4):  # out_of_range quotes the value in its detail
        bad = {"id": f"b{i}", "features": {"x": 9.3e93, "city": "paris"}}
        for out in engine.process(InputRecord("features", 0, 500 + i, 5000, None, orjson.dumps(bad)), 0):
            collector.emit(out, 0)
    drift = [v for t, v in sent if t.endswith(".drift")]
    assert any(CANARY.encode() in v for v in drift), [v[:300] for v in drift][:3]  # the values are in the events...
    logs = stream.getvalue()
    assert "drift detected" in logs and "dead letters in a row" in logs
    assert CANARY not in logs and "9.3e+93" not in logs  # ...and in no log line
