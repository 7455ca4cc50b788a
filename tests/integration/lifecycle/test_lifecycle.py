"""Model lifecycle against the real broker: promotion by the policy, canary traffic,
rollback with a skipped window of labels, and the admin API's authentication."""

from __future__ import annotations

import collections
import hashlib
import json
import math
import threading
import time
import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.datasets import stream
from driftline.lifecycle.admin import AdminServer
from driftline.lifecycle.commands import Command
from driftline.lifecycle.registry import Registry, registry_path
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

DELAY = 50


def _rows(n: int, seed: int, drift_every: int = 2000):
    return [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n, seed=seed, drift_every=drift_every)]


def _records(rows):
    """The input records as ``replay(..., label_delay=DELAY)`` lays them out (one partition), in replay order."""
    records = []
    for i, (x, y) in enumerate(rows):
        key = f"e{i}".encode()
        records.append(InputRecord("features", 0, i, i, key, orjson.dumps({"id": f"e{i}", "features": x})))
        records.append(InputRecord("labels", 0, i, i + DELAY, key, orjson.dumps({"id": f"e{i}", "label": y})))
    return sorted(records, key=lambda r: (r.timestamp, r.kind != "labels", r.offset))


def _exact_binomial_upper_tail(c: int, n: int) -> float:
    """P(X >= c) for X ~ Binomial(n, 1/2), written independently of scipy."""
    return sum(math.comb(n, k) for k in range(c, n + 1)) / 2**n


def test_a_better_challenger_on_a_drifting_stream_is_promoted_with_its_test(make_config, reader, signing_key):
    policy = {"enabled": True, "window": 500, "margin": 0.02, "alpha": 0.01, "patience": 2}
    config = make_config(lifecycle={"challengers": [{"name": "hat", "model": {"preset": "hoeffding_adaptive_tree"}}],
                                    "promotion": policy})
    rows = _rows(6000, seed=7)
    replay(config, rows, label_delay=DELAY, n_rows=len(rows))

    engine = Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    events = [orjson.loads(m.value()) for m in reader(config, config.topics.lifecycle)]
    promotions = [e for e in events if e["action"] == "promote"]
    assert len(promotions) == 1, events
    details = promotions[0]["details"]
    assert promotions[0]["actor"] == "policy:promotion" and details["challenger"] == "hat"
    assert details["test"] == "mcnemar_exact" and details["consecutive_wins"] == 2
    b, c, n = details["b"], details["c"], details["n"]
    assert n == 500 and c - b >= 0.02 * n
    assert details["p_value"] == pytest.approx(_exact_binomial_upper_tail(c, b + c), rel=1e-9)
    assert details["p_value"] < 0.01
    assert details["statistic"] == pytest.approx((b - c) ** 2 / (b + c))

    # The champion is now the challenger's model, and the registry says so.
    assert type(engine.model).__name__ == "HoeffdingAdaptiveTreeClassifier"
    registry = Registry(registry_path(config))
    champion = registry.get(config.name, "champion")
    # champion names the newest version (what serves); the version the promotion cut is tagged.
    assert champion["version"] == registry.versions(config.name)[-1]["version"]
    assert champion["champion"]["event"] == promotions[0]["id"]
    assert [v["version"] for v in registry.versions(config.name) if "promoted" in v["tags"]] == [
        next(v["version"] for v in registry.versions(config.name) if v["trigger"] == "promote")]
    assert champion["model_class"] == "HoeffdingAdaptiveTreeClassifier"
    assert [e["id"] for e in registry.events(config.name) if e["action"] == "promote"] == [promotions[0]["id"]]

    # Before the promotion, the challenger predicted every event in the shadow; only the
    # champion published to .predictions, once per event.
    predictions = [orjson.loads(m.value()) for m in reader(config, config.topics.predictions)]
    assert len(predictions) == len(rows) and {p["variant"] for p in predictions} == {"champion"}
    shadow = [orjson.loads(m.value()) for m in reader(config, config.topics.shadow)]
    assert shadow and {s["variant"] for s in shadow} == {"hat"}
    assert len({s["id"] for s in shadow}) == len(shadow)


def _bucket(key: str) -> float:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


def test_a_ten_percent_canary_serves_about_ten_percent_of_keys_stably(make_config, reader, signing_key):
    config = make_config(lifecycle={"challengers": [{"name": "nb", "share": 0.1,
                                                     "model": {"preset": "gaussian_naive_bayes"}}]},
                         checkpoint={"every_examples": 1500})
    rows = _rows(4000, seed=3)
    replay(config, rows, label_delay=DELAY, n_rows=len(rows))
    # Two runs (stop, restore, go on) must keep every key on its variant.
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3, max_seconds=1.5)
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    predictions = [orjson.loads(m.value()) for m in reader(config, config.topics.predictions)]
    assert collections.Counter(p["id"] for p in predictions) == {f"e{i}": 1 for i in range(len(rows))}
    served = {p["id"]: p["variant"] for p in predictions}
    share = sum(v == "nb" for v in served.values()) / len(served)
    assert abs(share - 0.1) < 4 * math.sqrt(0.1 * 0.9 / len(served))  # binomial, 4 sigma
    # Each key's variant is a function of the key alone (an independent blake2b bucket).
    assert all(variant == ("nb" if _bucket(key) < 0.1 else "champion") for key, variant in served.items())
    # The variant that did not serve went to the shadow topic: the champion's prediction of
    # every canary key, the challenger's of every other key.
    shadow = collections.Counter((s["id"], s["variant"]) for s in
                                 (orjson.loads(m.value()) for m in reader(config, config.topics.shadow)))
    assert max(shadow.values()) == 1
    assert {k for k, v in shadow} == set(served)
    assert all(v != served[k] for k, v in shadow)
    # history answers "which version and variant served key K at time T" like the predictions say.
    registry = Registry(registry_path(config))
    registry.sync(VersionStore(config.checkpoint.store_url, config.name, signing_key))
    for p in predictions[::97]:
        answer = registry.served_by(config.name, p["id"], p["event_time"])
        assert (answer["version"], answer["variant"]) == (p["model_version"], p["variant"])


def test_rollback_with_a_skipped_window_never_learns_those_labels(make_config, reader, signing_key):
    config = make_config(checkpoint={"every_examples": 1000}, drift={"policy": "none"})  # scaler counts below
    rows, held_out = _rows(4000, seed=5), _rows(200, seed=99)
    replay(config, rows, label_delay=DELAY, n_rows=len(rows))
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    before = store.versions()
    target = next(v for v in before if store.meta(v)["examples_seen"] >= 1000)
    start = store.meta(target)["positions"]["labels:0"]
    skip = (start + 300, start + 699)  # label offsets: 400 bad labels after the target version

    processor = Processor(config, signing_key, registry=CollectorRegistry())
    command = processor.lifecycle.queue.submit(Command(
        "rollback", {"to": target, "replay": True, "skip": {"by": "offset", "start": skip[0], "end": skip[1]}},
        actor="test", reason="bad labels"))
    processor.run(exit_when_idle_s=2)
    result = command.wait(0)

    meta, state = store.load(result["version"])
    assert meta["parent"] == target and meta["trigger"] == "rollback"
    assert set(before) <= set(store.versions())  # nothing it replaced is lost
    rolled = state["engine"]
    assert rolled.n_learned == len(rows) - 400
    assert result["event"]["details"]["skipped_labels"] == 400

    # An in-memory engine fed the same records minus the skipped labels is the same model.
    reference = Engine(config)
    for record in _records(rows):
        if record.kind == "labels" and skip[0] <= record.offset <= skip[1]:
            continue
        reference.process(record, now_ms=0)
    assert rolled.scores.values() == reference.scores.values()
    for x, _ in held_out:
        assert rolled.model.predict_proba_one(x) == reference.model.predict_proba_one(x)
    scaler = rolled.model["StandardScaler"]
    assert set(scaler.counts.values()) == {len(rows) - 400}
    events = [orjson.loads(m.value()) for m in reader(config, config.topics.lifecycle)]
    assert [e["details"]["version"] for e in events if e["action"] == "rollback"] == [result["version"]]


def _call(port: int, method: str, path: str, body=None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_an_unauthenticated_state_change_is_refused(make_config, reader, signing_key):
    config = make_config()
    rows = _rows(1500, seed=1)
    replay(config, rows, label_delay=DELAY, n_rows=len(rows))
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    lc = processor.lifecycle
    admin = AdminServer(config.name, lc.registry, lc.queue.submit, processor.store, token="s3cret-token")
    read_only = AdminServer(config.name, lc.registry, lc.queue.submit, processor.store, token=None)
    port, ro_port = admin.start(), read_only.start()
    runner = threading.Thread(target=processor.run, kwargs={"max_seconds": 60})
    runner.start()
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    deadline = time.monotonic() + 60
    while store.latest() is None and time.monotonic() < deadline:  # readiness, not a timing assertion
        time.sleep(0.05)
    try:
        path = f"/models/{config.name}/challengers"
        body = {"name": "nb", "model": {"preset": "gaussian_naive_bayes"}, "reason": "try it"}
        assert _call(port, "POST", path, body)[0] == 401
        assert _call(port, "POST", path, body, token="wrong")[0] == 401
        assert _call(ro_port, "POST", path, body, token="s3cret-token")[0] == 403
        assert _call(port, "POST", f"/models/{config.name}/rollback", {"to": 1})[0] == 401
        status, versions = _call(port, "GET", f"/models/{config.name}/versions")
        assert status == 200 and versions

        status, answer = _call(port, "POST", path, body, token="s3cret-token")
        assert status == 200, answer
        assert answer["event"]["action"] == "add_challenger" and answer["event"]["actor"].startswith("api:admin@")
        status, predicted = _call(port, "POST", "/predict", {"features": rows[0][0]})
        assert status == 200 and predicted["variant"] == "champion" and set(predicted["proba"]) == {"false", "true"}  # a binary model (docs/events.md)
        assert _call(port, "GET", "/openapi.json")[1]["openapi"].startswith("3.")
    finally:
        processor.stop()
        runner.join()
        admin.stop()
        read_only.stop()
    # Refused calls changed nothing: only the authorised one cut a version and left an event.
    events = [orjson.loads(m.value()) for m in reader(config, config.topics.lifecycle)]
    assert [e["action"] for e in events] == ["add_challenger"]
    meta = store.meta(answer["version"])
    assert meta["trigger"] == "manual" and [c["name"] for c in meta["challengers"]] == ["nb"]


def test_a_firing_alertmanager_alert_rolls_back_with_the_alert_as_reason(make_config, signing_key):
    config = make_config(checkpoint={"every_examples": 500},
                         lifecycle={"alert_rules": [{"alertname": "DriftlineAccuracyDrop", "action": "rollback",
                                                     "to": "1"}]})
    rows = _rows(1500, seed=2)
    replay(config, rows, label_delay=DELAY, n_rows=len(rows))
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    lc = processor.lifecycle
    admin = AdminServer(config.name, lc.registry, lc.queue.submit, processor.store, token="alert-token",
                        alert_rules=config.lifecycle.alert_rules)
    port = admin.start()
    runner = threading.Thread(target=processor.run, kwargs={"max_seconds": 60})
    runner.start()
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    deadline = time.monotonic() + 60
    while (store.latest() or 0) < 3 and time.monotonic() < deadline:  # readiness: versions past the first
        time.sleep(0.05)
    payload = {"version": "4", "status": "firing", "receiver": "driftline", "groupKey": "{}:{}",
               "alerts": [{"status": "firing", "fingerprint": "f00d", "startsAt": "2026-12-02T02:30:00Z",
                           "labels": {"alertname": "DriftlineAccuracyDrop", "model": config.name},
                           "annotations": {"summary": "rolling accuracy below 0.6"}},
                          {"status": "firing", "labels": {"alertname": "SomethingElse"}}]}
    try:
        assert _call(port, "POST", "/alerts/alertmanager", payload)[0] == 401
        assert _call(port, "POST", "/alerts/alertmanager", payload, token="wrong")[0] == 401
        assert _call(port, "POST", "/alerts/alertmanager", {"version": "3"}, token="alert-token")[0] == 400
        status, answer = _call(port, "POST", "/alerts/alertmanager", payload, token="alert-token")
        assert status == 200, answer
        repeat = _call(port, "POST", "/alerts/alertmanager", payload, token="alert-token")  # repeat_interval
        assert repeat == (200, {"commands": []})
        status, history = _call(port, "GET", f"/models/{config.name}/history")
    finally:
        processor.stop()
        runner.join()
        admin.stop()
    [done] = answer["commands"]
    assert done["event"]["action"] == "rollback" and done["event"]["actor"] == "alertmanager"
    reason = "alertmanager: DriftlineAccuracyDrop firing (rolling accuracy below 0.6) [f00d]"
    assert done["event"]["reason"] == reason
    assert [(e["action"], e["reason"]) for e in history["events"]] == [("rollback", reason)]
    assert store.meta(done["version"])["parent"] == 1 and store.meta(done["version"])["trigger"] == "rollback"
