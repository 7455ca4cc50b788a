"""Concept-drift benchmark: River's drifting generators, a Hoeffding tree, every detector.

Each stream has abrupt concept switches at 20k, 40k, 60k and 80k of 100k events and 10%
label noise (``driftline.datasets.drifting``). Two parts, sharing the materialised rows:

- ``detectors``: a lean test-then-train loop (delay 0) with :class:`ErrorWatch` and a reset
  of model and detectors on each detection, for each detector configuration;
- ``policies``: the real :class:`~driftline.core.engine.Engine` fed InputRecords (features at
  time i, label at i + ``delay``) with each adaptation policy and the default detectors.

Scoring of detections: for each true drift at t, the first detection in [t, t + W) is a hit
(W = 250 and 1000; delay = detection - t); every other detection is a false alarm.
"""

from __future__ import annotations

import itertools
import statistics
import time
from typing import Any

import orjson
from river import tree

from driftline.config import DetectorSpec, load_config
from driftline.core.detectors import ErrorWatch
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import DriftEvent
from driftline.datasets import drifting

STREAMS = ["sea", "sine", "mixed", "stagger", "agrawal"]
N, EVERY, NOISE = 100_000, 20_000, 0.1
DRIFTS = [EVERY * k for k in range(1, N // EVERY)]

DETECTORS: dict[str, list[dict[str, Any]]] = {
    "HDDM_A": [{"name": "binary.HDDMA"}],
    "FHDDM(1-err)": [{"name": "binary.FHDDM"}],
    "DDM": [{"name": "binary.DDM"}],
    "EDDM": [{"name": "binary.EDDM"}],
    "HDDM_W": [{"name": "binary.HDDMW"}],
    "PageHinkley(up)": [{"name": "PageHinkley", "params": {"mode": "up"}}],
    "ADWIN": [{"name": "ADWIN"}],
    "ADWIN+PH(up) [old default]": [{"name": "ADWIN"}, {"name": "PageHinkley", "params": {"mode": "up"}}],
    "HDDM_A+FHDDM": [{"name": "binary.HDDMA"}, {"name": "binary.FHDDM"}],
    "FHDDM(w=100,short=25)": [{"name": "binary.FHDDM", "params": {"short_window_size": 25}}],
}


def rows_of(name: str, seed: int, n: int = N) -> list[tuple[dict, Any]]:
    return list(itertools.islice(drifting(name, drift_every=EVERY, noise=NOISE, seed=seed), n))


def score_detections(fired: list[int], drifts: list[int] = DRIFTS, n: int = N) -> dict[str, Any]:
    """Hits, delays and false alarms of detection positions against the true drift positions."""
    hits = {250: 0, 1000: 0}
    delays, used = [], set()
    for t in drifts:
        first = next((i for i in fired if t <= i < t + 1000), None)
        if first is None:
            continue
        used.add(first)
        delays.append(first - t)
        for w in hits:
            hits[w] += (first - t) < w
    false = len([i for i in fired if i not in used])
    return {"drifts": len(drifts), "hit250": hits[250], "hit1000": hits[1000], "delays": delays,
            "false_alarms": false, "events": n, "detections": len(fired)}


def detector_run(rows, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Lean test-then-train loop; reset model and detectors on each detection."""
    model = tree.HoeffdingTreeClassifier()
    watch = ErrorWatch([DetectorSpec(**s) for s in specs], "classification")
    fired, correct, scored = [], 0, 0
    started = time.perf_counter()
    for i, (x, y) in enumerate(rows):
        p = model.predict_one(x)
        if p is not None:
            scored += 1
            correct += p == y
            if watch.update(0.0 if p == y else 1.0):
                fired.append(i)
                model = model.clone()
                watch.reset()
        model.learn_one(x, y)
    return {**score_detections(fired), "accuracy": correct / max(scored, 1),
            "seconds": time.perf_counter() - started}


def records_of(rows, delay: int) -> list[InputRecord]:
    out = []
    for i, (x, y) in enumerate(rows):
        eid = f"e{i}".encode()
        features = {str(k): (int(v) if isinstance(v, bool) else v) for k, v in x.items()}  # as replay encodes them
        out.append(InputRecord("features", 0, i, i, eid, orjson.dumps({"id": f"e{i}", "features": features})))
        out.append(InputRecord("labels", 0, i, i + delay, eid, orjson.dumps({"id": f"e{i}", "label": y})))
    out.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
    return out


def engine_run(records, drift: dict[str, Any], preset: str = "hoeffding_tree") -> dict[str, Any]:
    """The real engine over records; accuracy, drift events and their actions."""
    engine = Engine(load_config(name="bench", model={"preset": preset}, drift=drift,
                                checkpoint={"on_drift": False}))
    events = []
    started = time.perf_counter()
    for r in records:
        for o in engine.process(r, 0):
            if isinstance(o, DriftEvent):
                events.append((o.position, o.action, o.drift_kind))
    seconds = time.perf_counter() - started
    return {"accuracy": engine.scores.values().get("accuracy"), "n_learned": engine.n_learned,
            "events": len(events), "actions": sorted({a for _, a, _ in events}), "seconds": seconds,
            "events_per_s": (len(records) // 2) / seconds}


def stream_task(args) -> dict[str, Any]:
    """All runs of one (stream, seed): every detector, then every policy."""
    name, seed, detectors, policies, delay = args
    rows = rows_of(name, seed)
    out: dict[str, Any] = {"stream": name, "seed": seed, "detectors": {}, "policies": {}}
    for label in detectors:
        out["detectors"][label] = detector_run(rows, DETECTORS[label])
    if policies:
        records = records_of(rows, delay)
        for label, drift in policies.items():
            out["policies"][label] = engine_run(records, drift)
    return out


def summarise_detectors(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    labels = list(results[0]["detectors"]) if results else []
    for label in labels:
        runs = [r["detectors"][label] for r in results]
        drifts = sum(r["drifts"] for r in runs)
        delays = [d for r in runs for d in r["delays"]]
        events = sum(r["events"] for r in runs)
        table.append({
            "detector": label,
            "accuracy": statistics.fmean(r["accuracy"] for r in runs),
            "recall250": sum(r["hit250"] for r in runs) / drifts,
            "recall1000": sum(r["hit1000"] for r in runs) / drifts,
            "false_per_100k": 100_000 * sum(r["false_alarms"] for r in runs) / events,
            "mean_delay": statistics.fmean(delays) if delays else None,
            "median_delay": statistics.median(delays) if delays else None,
            "per_stream_recall1000": {s: sum(r["detectors"][label]["hit1000"] for r in results if r["stream"] == s)
                                      / sum(r["detectors"][label]["drifts"] for r in results if r["stream"] == s)
                                      for s in dict.fromkeys(r["stream"] for r in results)},
        })
    return table
