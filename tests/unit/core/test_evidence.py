"""Every concept detector's drift event carries non-empty evidence, named as docs/events.md says."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import jsonschema
import orjson
import pytest
from river import drift
from river.drift import binary

from driftline.config import DeploymentConfig, DetectorSpec, ModelConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.evidence import EvidentADWIN, EvidentFHDDM, EvidentKSWIN
from driftline.core.outputs import DriftEvent

DOCS = Path(__file__).resolve().parents[3] / "docs"
SCHEMA = json.loads((DOCS / "schemas" / "drift.schema.json").read_text())
CHANGE = 1500
EVIDENCE_MEMBERS = {"test", "value", "bound", "warning_bound", "examples", "windows", "configured"}

# One case per detector Driftline supports (every class in river.drift that can fire), plus the
# variants that change which test fires.
CASES = [
    ("ADWIN", {}), ("PageHinkley", {}), ("KSWIN", {}), ("DummyDriftDetector", {"t_0": 1000}),
    ("binary.DDM", {}), ("binary.EDDM", {}), ("binary.HDDMA", {}), ("binary.HDDMA", {"two_sided_test": True}),
    ("binary.HDDMW", {}), ("binary.HDDMW", {"two_sided_test": True}),
    ("binary.FHDDM", {}), ("binary.FHDDM", {"short_window_size": 20}),
]


def documented() -> dict[str, dict[str, set[str]]]:
    """The per-detector table of docs/events.md: detector -> {statistic, test, windows} names."""
    text = (DOCS / "events.md").read_text()
    section = text.split("### Concept drift evidence, per detector", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        if len(cells) != 4:
            continue  # the table of evidence members
        names = [re.findall(r"`([^`]+)`", c) for c in cells]
        table[names[0][0]] = {
            "statistic": set(names[1]),
            "test": {t.replace("\\|", "|") for t in names[2]},
            "windows": set(names[3]),
        }
    return table


def abrupt_change(n: int = 3000, seed: int = 3) -> list[InputRecord]:
    """y = x > 0.5 with 5% label noise, the concept inverted at CHANGE; each label right after its features."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        x = rng.random()
        y = (x > 0.5) != (i >= CHANGE)
        if rng.random() < 0.05:
            y = not y
        key = f"e{i}".encode()
        records.append(InputRecord("features", 0, i, 2 * i, key, orjson.dumps({"id": f"e{i}", "features": {"x": x}})))
        records.append(InputRecord("labels", 0, i, 2 * i + 1, key, orjson.dumps({"id": f"e{i}", "label": y})))
    return records


def concept_events(name: str, params: dict, **drift_config) -> list[DriftEvent]:
    engine = Engine(DeploymentConfig(
        name="t", model=ModelConfig(preset="logistic_regression"),
        drift={"policy": "reset", "grace_examples": 0, "detectors": [DetectorSpec(name=name, params=params)], **drift_config},
    ))
    return [o for r in abrupt_change() for o in engine.process(r, 0) if isinstance(o, DriftEvent)]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}{p or ''}" for n, p in CASES])
def test_every_detector_fires_with_documented_evidence(name, params):
    events = concept_events(name, params)
    at_change = [e for e in events if CHANGE <= e.position < CHANGE + 600]
    assert at_change, f"{name} missed the abrupt change at {CHANGE}: fired at {[e.position for e in events]}"
    doc = documented()[name]
    for event in events:
        body = json.loads(orjson.dumps(event.body()))
        jsonschema.validate(body, SCHEMA)
        assert body["kind"] == "concept" and body["level"] == "drift"
        assert body["params"] and params.items() <= body["params"].items() and body["params"] == body["settings"]
        assert body["statistic"] and set(body["statistic"]) <= doc["statistic"], set(body["statistic"]) - doc["statistic"]
        evidence = body["evidence"]
        assert set(evidence) <= EVIDENCE_MEMBERS and evidence["configured"] == params
        assert evidence["test"] in doc["test"], evidence["test"]
        assert set(evidence["windows"]) <= doc["windows"]
        assert body["metrics_before"] and body["metrics_after"] and body["metrics_before"] != body["metrics_after"]
    evidence = at_change[0].evidence
    if evidence["value"] is not None and evidence["bound"] is not None:
        if name == "KSWIN":
            assert evidence["value"] <= evidence["bound"]
        elif name == "binary.EDDM":
            assert evidence["value"] < evidence["bound"]
        else:
            assert evidence["value"] >= evidence["bound"]


def test_the_doc_covers_every_detector_that_can_fire():
    assert {name for name, _ in CASES} == set(documented())


def test_metrics_before_are_the_metrics_just_before_the_triggering_example():
    """Before: the last complete metrics window, {} when drift fired inside the first one."""
    (event, *_) = concept_events("binary.HDDMA", {}, metrics_window=5000)
    before, after = event.metrics_before, event.metrics_after
    assert set(before) == set(after) and "rolling_accuracy" in before
    n = event.position + 1  # scored examples including the triggering one
    # One more example scored: the cumulative accuracy moves by at most 1/n.
    assert abs(after["accuracy"] - before["accuracy"]) <= 1 / n + 1e-12
    assert before["accuracy"] != after["accuracy"]  # the triggering example was an error


def _signals(detector, stream):
    out = []
    for x in stream:
        detector.update(x)
        out.append(detector.drift_detected)
    return out


@pytest.mark.parametrize(("ours", "theirs"), [
    (lambda: EvidentADWIN(), lambda: drift.ADWIN()),
    (lambda: EvidentKSWIN(seed=42), lambda: drift.KSWIN(seed=42)),
    (lambda: EvidentFHDDM(), lambda: binary.FHDDM()),
    (lambda: EvidentFHDDM(short_window_size=20), lambda: binary.FHDDM(short_window_size=20)),
    (lambda: EvidentFHDDM(sliding_window_size=1, confidence_level=0.5),
     lambda: binary.FHDDM(sliding_window_size=1, confidence_level=0.5)),
], ids=["ADWIN", "KSWIN", "FHDDM", "FHDDM-short", "FHDDM-1"])
@pytest.mark.parametrize("seed", [5, 6])
def test_evidence_keeping_detectors_decide_exactly_like_rivers(ours, theirs, seed):
    rng = random.Random(seed)
    stream = [float(rng.random() < (0.9 if (i // 1000) % 2 == 0 else 0.4)) for i in range(8000)]
    signals = _signals(theirs(), stream)
    assert sum(signals) >= 2
    assert _signals(ours(), stream) == signals
