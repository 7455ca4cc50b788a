"""Explanations on the real broker: every committed prediction carries one that matches the
schema and sums to its value, and ``POST /predict`` answers with one."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import jsonschema
import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.datasets import stream
from driftline.lifecycle.admin import AdminServer
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "prediction.schema.json").read_text())


@pytest.mark.parametrize("preset", ["logistic_regression", "hoeffding_tree"])
def test_predictions_carry_exact_explanations(make_config, reader, signing_key, preset):
    config = make_config(model={"preset": preset}, governance={"explain": {"enabled": True, "top_k": 9}})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=1500, seed=2)]
    replay(config, rows, label_delay=50, n_rows=len(rows))
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    bodies = [orjson.loads(m.value()) for m in reader(config, config.topics.predictions)]
    assert len(bodies) == len(rows)
    method = "linear" if preset == "logistic_regression" else "saabas"
    for body in bodies:
        validator.validate(body)
        e = body["explanation"]
        assert e["method"] == method
        assert abs(e["base"] + sum(e["contributions"].values()) + e["residual"] - e["value"]) < 1e-9
        if method == "saabas":
            assert abs(e["value"] - body["proba"].get(e["target"], 0.0)) < 1e-9


def test_post_predict_answers_with_the_explanation(make_config, signing_key):
    config = make_config(governance={"explain": {"enabled": True, "top_k": 3}})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=1200, seed=4)]
    replay(config, rows, label_delay=50, n_rows=len(rows))
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    lc = processor.lifecycle
    admin = AdminServer(config.name, lc.registry, lc.queue.submit, processor.store, token=None)
    port = admin.start()
    runner = threading.Thread(target=processor.run, kwargs={"max_seconds": 60})
    runner.start()
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    deadline = time.monotonic() + 60
    while store.latest() is None and time.monotonic() < deadline:  # readiness, not a timing assertion
        time.sleep(0.05)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"features": rows[0][0]}).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        processor.stop()
        runner.join()
        admin.stop()
    e = answer["explanation"]
    assert e["method"] == "linear" and len(e["contributions"]) == 3 and e["target"] == "true"
    assert set(e["reasons"]) <= set(rows[0][0]) and set(e["contributions"]) <= set(rows[0][0])
