"""Global mode on the real broker: one trainer releases versions, N predictors serve them.

The served predictions are checked against an offline River run that knows nothing of
Driftline's runtime: the input in event-time order, a Hoeffding tree learning each label,
a copy of it kept every E labels with the event time of that label as its watermark, and
each event predicted by the newest copy whose watermark is at most t - delta.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import subprocess
import sys

import orjson
import pytest
from river import tree

from driftline.datasets import stream
from driftline.runtime.clients import make_producer
from driftline.runtime.publisher import encode_features
from driftline.versions.signing import seal

pytestmark = pytest.mark.integration

PARTITIONS, N_EVENTS, DELAY, EVERY, DELTA = 3, 3_000, 40, 250, 40


def _deployment(make_config, **scale):
    return make_config(partitions=PARTITIONS, model={"preset": "river.tree:HoeffdingTreeClassifier"},
                       drift={"policy": "none"},
                       scale={"mode": "global", "publish_every_examples": EVERY, "max_staleness_ms": DELTA,
                              "max_wait_ms": 120_000, "heartbeat_ms": 100, "session_timeout_ms": 6000, **scale},
                       checkpoint={"every_examples": 100_000, "every_seconds": 3600},
                       # A partition counts as idle for the event-time merge only after 20 s: on this
                       # shared 2-core box a fetch can stall for seconds, and an idle partition lets the
                       # trainer learn out of event-time order (the live-input rule), unlike River's run.
                       processor={"commit_interval_ms": 50, "batch_size": 200, "max_idle_ms": 20_000})


def _write_toml(config, path) -> None:
    scale = config.scale
    path.write_text(f"""
name = "{config.name}"
partitions = {PARTITIONS}
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
factory = "{config.model.factory}"
[drift]
policy = "none"
[scale]
mode = "global"
publish_every_examples = {scale.publish_every_examples}
max_staleness_ms = {scale.max_staleness_ms}
max_wait_ms = {scale.max_wait_ms}
heartbeat_ms = {scale.heartbeat_ms}
session_timeout_ms = {scale.session_timeout_ms}
inline_version_bytes = {scale.inline_version_bytes}
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = {config.checkpoint.every_examples}
every_seconds = {config.checkpoint.every_seconds}
[processor]
commit_interval_ms = {config.processor.commit_interval_ms}
batch_size = {config.processor.batch_size}
max_idle_ms = {config.processor.max_idle_ms}
""")


def _produce(config) -> list[tuple[str, int, object, int | None]]:
    """Features of event i at base + 2i, its label DELAY events later at an odd time: every
    record has its own event time, so event-time order is one order."""
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=N_EVENTS, seed=5)]
    producer = make_producer(config)
    base = 1_700_000_000_000
    records = []
    for i, (x, y) in enumerate(rows):
        t = base + 2 * i
        producer.produce(config.topics.features, orjson.dumps({"id": f"e{i}", "features": x}), f"e{i}".encode(),
                         timestamp=t)
        records.append(("features", t, f"e{i}", x))
        t_label = base + 2 * (i + DELAY) + 1
        producer.produce(config.topics.labels, orjson.dumps({"id": f"e{i}", "label": y}), f"e{i}".encode(),
                         timestamp=t_label)
        records.append(("labels", t_label, f"e{i}", y))
        producer.poll(0)
    assert producer.flush(30) == 0
    return sorted(records, key=lambda r: r[1])


def _simulate(records) -> tuple[dict[str, tuple], object, list]:
    """River alone: (prediction, proba, version) per event id under the bounded rule; the
    model after every label, and the events' features."""
    model = tree.HoeffdingTreeClassifier()
    snapshots, features, learned = [(float("-inf"), copy.deepcopy(model))], {}, 0
    for kind, t, ident, value in records:
        if kind == "features":
            features[ident] = (t, value)
        else:
            model.learn_one(features[ident][1], value)
            learned += 1
            if learned % EVERY == 0:
                snapshots.append((t, copy.deepcopy(model)))
    out = {}
    for ident, (t, x) in features.items():
        version = max(n for n, (w, _) in enumerate(snapshots) if w <= t - DELTA)
        proba = snapshots[version][1].predict_proba_one(x)
        prediction = max(proba, key=proba.get) if proba else None
        out[ident] = (prediction, {str(k): v for k, v in proba.items()}, version)
    return out, snapshots[-1][1], [x for _, x in features.values()]


def _start(config, toml, signing_key, role, instance=None, idle_s=6):
    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    command = [sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--role", role,
               "--exit-when-idle", str(idle_s)]
    if instance is not None:
        command += ["--instance", instance]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(procs) -> dict[str, dict]:
    summaries = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name} failed: {err.decode()[-2000:]}"
        summaries[name] = orjson.loads(out)
    return summaries


def _served(config, reader) -> dict[str, tuple]:
    served: dict[str, list] = {}
    for m in reader(config, config.topics.predictions):
        body = orjson.loads(m.value())
        served.setdefault(body["id"], []).append((body["prediction"], body["proba"], body["model_version"]))
        assert "stale" not in body, "a prediction that waited past max_wait_ms"
    assert max(len(v) for v in served.values()) == 1, "an event predicted twice"
    return {k: v[0] for k, v in served.items()}


def _run(config, tmp_path, signing_key, n_predictors):
    toml = tmp_path / f"{config.name}.toml"
    _write_toml(config, toml)
    procs = {"trainer": _start(config, toml, signing_key, "trainer")}
    for i in range(n_predictors):
        procs[f"p{i}"] = _start(config, toml, signing_key, "predictor", f"p{i}")
    return _finish(procs)


@pytest.mark.parametrize("n_predictors", [1, 2, 3])
def test_bounded_predictions_equal_an_offline_river_run(make_config, reader, tmp_path, signing_key, n_predictors):
    config = _deployment(make_config)
    expected, river_final, xs = _simulate(_produce(config))
    summaries = _run(config, tmp_path, signing_key, n_predictors)
    assert summaries["trainer"]["released"] == N_EVENTS // EVERY, summaries["trainer"]
    served = _served(config, reader)
    assert set(served) == set(expected), "an event without a prediction, or an unknown one"
    wrong = [k for k in expected if served[k] != expected[k]]
    assert not wrong, f"{len(wrong)} predictions differ from River's, e.g. {wrong[0]}: " \
                      f"{served[wrong[0]]} != {expected[wrong[0]]}"
    versions = {v for _, _, v in served.values()}
    # the last release comes after the last feature event: every other one serves
    assert versions == set(range(N_EVENTS // EVERY)), "not every version served"


def test_a_tampered_version_is_refused_by_every_predictor(make_config, reader, tmp_path, signing_key):
    config = _deployment(make_config, inline_version_bytes=0)  # genuine releases go through the store
    expected, river_final, xs = _simulate(_produce(config))
    forged_key = seal({"version": 9_999, "watermark": 0, "examples": 0}, tree.HoeffdingTreeClassifier(),
                      b"not-the-deployment-key-at-all")
    genuine = bytearray(seal({"version": 5_000, "watermark": 0, "examples": 0}, tree.HoeffdingTreeClassifier(),
                             signing_key))
    genuine[-5] ^= 0xFF  # one payload byte flipped after signing
    producer = make_producer(config)
    for version, blob in ((9_999, forged_key), (5_000, bytes(genuine))):
        body = {"model": config.name, "version": version, "watermark": 0, "examples": 0,
                "sha256": hashlib.sha256(blob).hexdigest(), "inline": base64.b64encode(blob).decode()}
        producer.produce(config.topics.versions, orjson.dumps(body), str(version).encode())
    assert producer.flush(30) == 0
    summaries = _run(config, tmp_path, signing_key, 2)
    for name in ("p0", "p1"):
        assert summaries[name]["versions_refused"] == 2, summaries[name]
        # the last release (after the last feature event) may come after a predictor went idle
        assert summaries[name]["versions_loaded"] >= N_EVENTS // EVERY - 1, summaries[name]
    served = _served(config, reader)
    assert served == expected


def _wait_for_release(config, version: int, timeout_s: float = 300, trainer=None) -> None:
    """Until version ``version`` is committed on .versions (failing at once if ``trainer``,
    the trainer's process, has exited)."""
    import time
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from driftline.runtime.clients import make_consumer

    consumer = make_consumer(config, group_id=f"wait-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(config.topics.versions, 0, OFFSET_BEGINNING)])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for m in consumer.consume(100, 0.2):
                if m.error() is None and m.key() == str(version).encode():
                    return
            if trainer is not None and trainer.poll() is not None:
                raise AssertionError(f"the trainer exited ({trainer.returncode}) before version {version}: "
                                     f"{trainer.communicate()[1].decode()[-2000:]}")
        raise AssertionError(f"version {version} was not released within {timeout_s} s")
    finally:
        consumer.close()


def test_kill_9_of_the_trainer_and_of_a_predictor_changes_no_prediction(make_config, reader, tmp_path,
                                                                       signing_key):
    """The trainer and a predictor are killed with SIGKILL at seeded moments and restarted
    (the trainer) or replaced by a third predictor: one prediction per event, the same as
    River's, and every version on .versions exactly once."""
    import random
    import signal
    import time

    rng = random.Random(29)
    config = _deployment(make_config)
    expected, river_final, xs = _simulate(_produce(config))
    toml = tmp_path / f"{config.name}.toml"
    _write_toml(config, toml)
    # No process stops on an idle timer here: on a loaded box a restart can take longer than
    # any such timer, and a predictor or trainer that left early would leave events unserved.
    # The run ends when every event is served and every version released; then SIGTERM.
    never = 3600
    trainer = _start(config, toml, signing_key, "trainer", idle_s=never)
    procs = {"p0": _start(config, toml, signing_key, "predictor", "p0", idle_s=never),
             "p1": _start(config, toml, signing_key, "predictor", "p1", idle_s=never)}
    _wait_for_release(config, rng.randrange(2, N_EVENTS // EVERY - 3), trainer=trainer)  # mid-run: versions are still to come
    trainer.send_signal(signal.SIGKILL)
    trainer.wait()
    time.sleep(rng.uniform(0.5, 1.5))
    procs["p1"].send_signal(signal.SIGKILL)
    procs["p1"].wait()
    procs.pop("p1").communicate()
    procs["trainer"] = _start(config, toml, signing_key, "trainer", idle_s=never)
    # p2 takes over the dead p1's partitions once its session has timed out (6 s)
    procs["p2"] = _start(config, toml, signing_key, "predictor", "p2", idle_s=never)
    _wait_for_release(config, N_EVENTS // EVERY, trainer=procs["trainer"])
    for _ in range(300):  # a bounded wait: the test stops by itself
        if len({orjson.loads(m.value())["id"] for m in reader(config, config.topics.predictions)}) == len(expected):
            break
        dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        assert not dead, f"exited before the run was served: {dead}"
        time.sleep(1)
    else:
        raise AssertionError("not every event was served")
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    _finish(procs)
    served = _served(config, reader)
    assert set(served) == set(expected)
    assert served == expected
    releases = [int(m.key()) for m in reader(config, config.topics.versions) if m.key() != b"heartbeat"]
    assert sorted(releases) == list(range(1, N_EVENTS // EVERY + 1)), "a version missing or released twice"
    # The restarted trainer's last release is River's model after every label.
    from driftline.versions.signing import unseal

    last = [orjson.loads(m.value()) for m in reader(config, config.topics.versions)
            if m.key() == str(N_EVENTS // EVERY).encode()][0]
    _, released = unseal(base64.b64decode(last["inline"]), signing_key)
    assert [released.predict_proba_one(x) for x in xs] == [river_final.predict_proba_one(x) for x in xs]
