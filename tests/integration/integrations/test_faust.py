"""DriftlineAgent in a real Faust worker on the real broker: it publishes the predictions
and learns the model that the in-memory engine makes from the same records in the same order."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from driftline.client import Publisher, Reader
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import DriftEvent, Prediction
from driftline.datasets import stream

pytestmark = pytest.mark.integration

N_EVENTS, DELAY = 2000, 30


def test_a_faust_agent_predicts_and_learns_like_the_engine(make_config, reader, tmp_path):
    config = make_config(partitions=2, drift={"detectors": [{"name": "ADWIN"}], "policy": "reset"})
    rows = list(stream("synth:sine", limit=N_EVENTS + 100, seed=3, drift_every=500))
    rows, held_out = rows[:N_EVENTS], rows[N_EVENTS:]
    base = int(time.time() * 1000) - 3_600_000  # recent: the topics keep a week by record time
    with Publisher(config) as publisher:
        for i, (x, y) in enumerate(rows):
            publisher.features(f"e{i}", x, time=base + i)
            publisher.label(f"e{i}", y, time=base + i + DELAY)
    toml = tmp_path / "deployment.toml"
    toml.write_text(f'name = "{config.name}"\n[kafka]\nbootstrap_servers = "{config.kafka.bootstrap_servers}"\n'
                    '[drift]\npolicy = "reset"\n[[drift.detectors]]\nname = "ADWIN"\n')
    out = tmp_path / "faust.pickle"
    worker = subprocess.run([sys.executable, str(Path(__file__).with_name("faust_worker.py")), str(toml),
                             str(N_EVENTS), str(out), str(tmp_path / "faust-data")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert worker.returncode == 0 and out.exists(), worker.stderr[-3000:]
    result = pickle.loads(out.read_bytes())

    # The same records, in the order the agent processed them, through the in-memory engine.
    records = {}
    for kind in ("features", "labels"):
        topic = getattr(config.topics, kind)
        for m in reader(config, topic):
            records[(topic, m.partition(), m.offset())] = InputRecord(
                kind, m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value())
    reference = Engine(config)
    expected, reference_drift = {}, []
    for coordinates in result["order"]:
        for output in reference.process(records[coordinates], now_ms=0):
            if isinstance(output, DriftEvent):
                reference_drift.append(output)
            if isinstance(output, Prediction):
                expected[output.id] = (output.prediction, output.body()["proba"], output.model_examples)

    published = {}
    for m in reader(config, config.topics.predictions):
        body = orjson.loads(m.value())
        assert body["id"] not in published and m.key().decode() == body["id"]
        assert dict(m.headers())["ce_id"].decode() == f"{config.name}/{body['id']}"
        published[body["id"]] = (body["prediction"], body["proba"], body["model_examples"])
    assert len(expected) == N_EVENTS
    assert published == expected

    engine = result["engine"]
    assert engine.n_learned == reference.n_learned == N_EVENTS
    assert engine.scores.values() == reference.scores.values()
    assert engine.counters.drift_events == reference.counters.drift_events >= 1  # the reset policy ran too
    for x, _ in held_out:
        assert engine.model.predict_proba_one(x) == reference.model.predict_proba_one(x)
    with Reader(config, "drift") as drift_reader:
        drift = [r.value for r in drift_reader.records(idle_timeout=3)]
    assert [d.id for d in drift] == [o.id for o in reference_drift]
    assert all(d.kind == "concept" and d.detector == "ADWIN" and d.action == "reset" for d in drift)
