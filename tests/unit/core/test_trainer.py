"""The trainer's engine against River: releases at every E labels, no predictions."""

from __future__ import annotations

import copy

import orjson
from river import tree

from driftline.config import DeploymentConfig
from driftline.core.events import InputRecord
from driftline.core.outputs import Prediction
from driftline.core.trainer import ModelRelease, TrainerEngine
from driftline.datasets import stream
from driftline.runtime.publisher import encode_features

EVERY = 50


def _config(**scale) -> DeploymentConfig:
    return DeploymentConfig(name="g", model={"preset": "river.tree:HoeffdingTreeClassifier"},
                            drift={"policy": "none"},
                            scale={"mode": "global", "publish_every_examples": EVERY, **scale})


def _records(n=400, delay=7):
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n, seed=3)]
    out = []
    for i, (x, y) in enumerate(rows):
        out.append(InputRecord("features", 0, i, 2 * i, None, orjson.dumps({"id": f"e{i}", "features": x})))
        out.append(InputRecord("labels", 0, i, 2 * (i + delay) + 1, None, orjson.dumps({"id": f"e{i}", "label": y})))
    return sorted(out, key=lambda r: r.timestamp), rows


def test_releases_fall_every_e_labels_and_hold_rivers_model():
    records, rows = _records()
    engine = TrainerEngine(_config())
    river_model, learned, expected, releases = tree.HoeffdingTreeClassifier(), 0, [], []
    for record in records:
        outputs = engine.process(record, now_ms=0)
        assert not any(type(o) is Prediction for o in outputs), "the trainer publishes no predictions"
        for out in outputs:
            if type(out) is ModelRelease:
                releases.append((out.version, out.watermark, out.examples, copy.deepcopy(out.model)))
        if record.kind == "labels":
            i = int(orjson.loads(record.value)["id"][1:])
            river_model.learn_one(rows[i][0], rows[i][1])
            learned += 1
            if learned % EVERY == 0:
                expected.append((len(expected) + 1, record.timestamp, learned, copy.deepcopy(river_model)))
    assert [r[:3] for r in releases] == [e[:3] for e in expected]
    probe = rows[0][0]
    for (_, _, _, got), (_, _, _, want) in zip(releases, expected):
        assert got.predict_proba_one(probe) == want.predict_proba_one(probe)


def test_publish_every_ms_releases_on_event_time_too():
    records, _ = _records(n=100)
    engine = TrainerEngine(_config(publish_every_examples=10_000, publish_every_ms=40))
    marks = [o.watermark for r in records for o in engine.process(r, 0) if type(o) is ModelRelease]
    assert marks and all(b - a >= 40 for a, b in zip(marks, marks[1:]))
    assert marks[0] >= 40
