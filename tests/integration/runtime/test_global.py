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
import sys
import time

import orjson
import pytest
from river import tree

from driftline.datasets import stream
from driftline.runtime.clients import make_producer
from driftline.runtime.publisher import encode_features
from driftline.versions.signing import seal, sign_heartbeat

pytestmark = pytest.mark.integration

PARTITIONS, N_EVENTS, DELAY, EVERY, DELTA = 3, 3_000, 40, 250, 40
# Event times an hour ago: the input topics keep records a week by their timestamp, and the
# broker's retention check (every 5 min) deleted the records of an earlier fixed base (2023)
# in the middle of some runs, which then stalled waiting for them.
BASE = (int(time.time() * 1000) - 3_600_000) // 1000 * 1000


def _deployment(make_config, processor=None, drift=None, **scale):
    return make_config(partitions=PARTITIONS, model={"preset": "river.tree:HoeffdingTreeClassifier"},
                       drift={"policy": "none", **(drift or {})},
                       scale={"mode": "global", "publish_every_examples": EVERY, "max_staleness_ms": DELTA,
                              "max_wait_ms": 120_000, "heartbeat_ms": 100, "session_timeout_ms": 6000, **scale},
                       checkpoint={"every_examples": 100_000, "every_seconds": 3600},
                       # A partition counts as idle for the event-time merge only after 20 s: on this
                       # shared 2-core box a fetch can stall for seconds, and an idle partition lets the
                       # trainer learn out of event-time order (the live-input rule), unlike River's run.
                       processor={"commit_interval_ms": 50, "batch_size": 200, "max_idle_ms": 20_000,
                                  **(processor or {})})


def _write_toml(config, path) -> None:
    scale = config.scale
    detectors = "".join(f"[[drift.detectors]]\nname = \"{d.name}\"\nparams = {{ "
                        + ", ".join(f"{k} = {v!r}" for k, v in d.params.items()) + " }\n"
                        for d in config.drift.detectors or [])
    path.write_text(f"""
name = "{config.name}"
partitions = {PARTITIONS}
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
factory = "{config.model.factory}"
[drift]
policy = "none"
grace_examples = {config.drift.grace_examples}
{detectors}[scale]
mode = "global"
publish_every_examples = {scale.publish_every_examples}
max_staleness_ms = {scale.max_staleness_ms}
max_wait_ms = {scale.max_wait_ms}
heartbeat_ms = {scale.heartbeat_ms}
session_timeout_ms = {scale.session_timeout_ms}
inline_version_bytes = {scale.inline_version_bytes}
served_labels = {str(scale.served_labels).lower()}
served_buffer = {scale.served_buffer}
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = {config.checkpoint.every_examples}
every_seconds = {config.checkpoint.every_seconds}
[processor]
commit_interval_ms = {config.processor.commit_interval_ms}
batch_size = {config.processor.batch_size}
max_idle_ms = {config.processor.max_idle_ms}
""")


def _input(tail: int = 0) -> list[tuple[str, int, str, object]]:
    """The run's records, (kind, time, id, value), in event-time order. Features of event i
    at base + 2i, its label DELAY events later at an odd time: every record has its own event
    time, so event-time order is one order. ``tail`` more feature events (ids t0, t1, ...)
    without labels come after the last label: they show every features partition's event
    time past it, so a trainer that never calls a partition idle still learns every label."""
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=N_EVENTS + tail, seed=5)]
    base = BASE
    records = []
    for i, (x, y) in enumerate(rows[:N_EVENTS]):
        records.append(("features", base + 2 * i, f"e{i}", x))
        records.append(("labels", base + 2 * (i + DELAY) + 1, f"e{i}", y))
    for j, (x, _) in enumerate(rows[N_EVENTS:]):
        records.append(("features", base + 2 * (N_EVENTS + DELAY + j) + 2, f"t{j}", x))
    return sorted(records, key=lambda r: r[1])


def _send(config, records) -> None:
    producer = make_producer(config)
    for kind, t, ident, value in records:
        body = {"id": ident, "features": value} if kind == "features" else {"id": ident, "label": value}
        topic = config.topics.features if kind == "features" else config.topics.labels
        producer.produce(topic, orjson.dumps(body), ident.encode(), timestamp=t)
        producer.poll(0)
    assert producer.flush(30) == 0


def _produce(config) -> list[tuple[str, int, object, int | None]]:
    """Every record of the run, produced at once; the records in event-time order."""
    records = _input()
    _send(config, records)
    return records


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


def _start(spawn, config, toml, signing_key, role, instance=None, idle_s=6, metrics_port=0):
    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    command = [sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--role", role,
               "--exit-when-idle", str(idle_s), "--metrics-port", str(metrics_port)]
    if instance is not None:
        command += ["--instance", instance]
    return spawn(command, instance or role, env=env)


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


def _run(spawn, config, tmp_path, signing_key, n_predictors):
    toml = tmp_path / f"{config.name}.toml"
    _write_toml(config, toml)
    procs = {"trainer": _start(spawn, config, toml, signing_key, "trainer")}
    for i in range(n_predictors):
        procs[f"p{i}"] = _start(spawn, config, toml, signing_key, "predictor", f"p{i}")
    return _finish(procs)


@pytest.mark.parametrize("n_predictors", [1, 2, 3])
def test_bounded_predictions_equal_an_offline_river_run(spawn, make_config, reader, tmp_path, signing_key, n_predictors):
    config = _deployment(make_config)
    expected, river_final, xs = _simulate(_produce(config))
    summaries = _run(spawn, config, tmp_path, signing_key, n_predictors)
    assert summaries["trainer"]["released"] == N_EVENTS // EVERY, summaries["trainer"]
    served = _served(config, reader)
    assert set(served) == set(expected), "an event without a prediction, or an unknown one"
    wrong = [k for k in expected if served[k] != expected[k]]
    assert not wrong, f"{len(wrong)} predictions differ from River's, e.g. {wrong[0]}: " \
                      f"{served[wrong[0]]} != {expected[wrong[0]]}"
    versions = {v for _, _, v in served.values()}
    # the last release comes after the last feature event: every other one serves
    assert versions == set(range(N_EVENTS // EVERY)), "not every version served"


def test_a_tampered_version_is_refused_by_every_predictor(spawn, make_config, reader, tmp_path, signing_key):
    config = _deployment(make_config, inline_version_bytes=0)  # genuine releases go through the store
    expected, river_final, xs = _simulate(_produce(config))
    forged_key = seal({"version": 9_999, "watermark": 0, "examples": 0}, tree.HoeffdingTreeClassifier(),
                      b"not-the-deployment-key-at-all")
    genuine = bytearray(seal({"version": 5_000, "watermark": 0, "examples": 0}, tree.HoeffdingTreeClassifier(),
                             signing_key))
    genuine[-5] ^= 0xFF  # one payload byte flipped after signing
    honest = seal({"version": 6_000, "watermark": 0, "examples": 0}, tree.HoeffdingTreeClassifier(), signing_key)
    producer = make_producer(config)
    for version, blob, digest_of in ((9_999, forged_key, forged_key), (5_000, bytes(genuine), bytes(genuine)),
                                     (6_000, honest, b"other bytes")):
        body = {"model": config.name, "version": version, "watermark": 0, "examples": 0,
                "sha256": hashlib.sha256(digest_of).hexdigest(), "inline": base64.b64encode(blob).decode()}
        producer.produce(config.topics.versions, orjson.dumps(body), str(version).encode())
    # and a heartbeat without its watermark: refused, not a crash
    producer.produce(config.topics.versions, orjson.dumps({"model": config.name, "heartbeat": True}), b"heartbeat")
    # and a forged heartbeat far past every event: believed, it would serve them all with version 0 at once
    far = 2**53
    forged = {"model": config.name, "heartbeat": True, "watermark": far, "version": 0, "created_at": 0,
              "signature": sign_heartbeat(config.name, far, 0, b"not-the-deployment-key-at-all")}
    producer.produce(config.topics.versions, orjson.dumps(forged), b"heartbeat")
    assert producer.flush(30) == 0
    summaries = _run(spawn, config, tmp_path, signing_key, 2)
    # p0 restarted: it reads .versions from the start and refuses the same records again,
    # but they are on .dlq already
    again = _finish({"p0": _start(spawn, config, tmp_path / f"{config.name}.toml", signing_key, "predictor", "p0")})
    for name, summary in (("p0", summaries["p0"]), ("p1", summaries["p1"]), ("p0 restarted", again["p0"])):
        assert summary["versions_refused"] == 5, (name, summary)
        # the last release (after the last feature event) may come after a predictor went idle
        assert summary["versions_loaded"] >= N_EVENTS // EVERY - 1, (name, summary)
    # each predictor dead-letters each record it refused, with the reason, once
    dead = sorted((dict(m.headers())["dl_instance"].decode(), m.key().decode(),
                   dict(m.headers())["dl_reason"].decode()) for m in reader(config, config.topics.dlq))
    assert dead == sorted((name, version, reason) for name in ("p0", "p1") for version, reason in (
        ("9999", "version_bad_signature"), ("5000", "version_bad_signature"), ("6000", "version_bad_digest"),
        ("heartbeat", "version_malformed"), ("heartbeat", "version_bad_signature")))
    originals = {m.offset(): m.value() for m in reader(config, config.topics.versions)}
    for m in reader(config, config.topics.dlq):
        headers = {k: v.decode() for k, v in m.headers()}
        assert headers["dl_topic"] == config.topics.versions
        assert originals[int(headers["dl_offset"])] == m.value()  # the refused record, unchanged
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


def _served_ids(config, reader) -> set[str]:
    return {orjson.loads(m.value())["id"] for m in reader(config, config.topics.predictions)}


def _wait_until_served(config, reader, n: int, procs) -> None:
    """Until ``n`` distinct events have a committed prediction; fails at once if one of
    ``procs`` (name -> process) has exited."""
    import time

    for _ in range(300):  # a bounded wait: the test stops by itself
        if len(_served_ids(config, reader)) >= n:
            return
        dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        assert not dead, f"exited before {n} events were served: {dead}"
        time.sleep(1)
    logs = "\n".join(f"--- {name}:\n{p.stderr_tail(1500)}" for name, p in procs.items())
    raise AssertionError(f"{len(_served_ids(config, reader))} of {n} events served; the processes' logs:\n{logs}")


def _members(config) -> dict[str, set[int]] | None:
    """The predictor group's members (instance id -> .features partitions assigned), as the
    group coordinator describes the group; None while it is rebalancing (not stable)."""
    from confluent_kafka import ConsumerGroupState

    from driftline.runtime.clients import make_admin

    group = config.predictor_group_id
    admin = make_admin(config)  # held until the answer: a collected client never resolves its futures
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=30)
    if description.state != ConsumerGroupState.STABLE:
        return None
    return {(m.group_instance_id or m.member_id).rpartition(".")[2]:
            {tp.partition for tp in m.assignment.topic_partitions} for m in description.members}


def _wait_for_members(config, instances: set[str], procs) -> None:
    """Until the group is stable with exactly ``instances`` as members, each with a share of
    the partitions, all of them covered."""
    import time

    members = None
    for _ in range(180):
        members = _members(config)
        if (members is not None and set(members) == instances and all(members.values())
                and set().union(*members.values()) == set(range(PARTITIONS))):
            return
        dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        assert not dead, f"exited while the group was rebalancing: {dead}"
        time.sleep(1)
    raise AssertionError(f"the predictor group is {members}, not {sorted(instances)} sharing every partition")


def _assert_versions_unbroken(config, reader) -> None:
    releases = [int(m.key()) for m in reader(config, config.topics.versions) if m.key() != b"heartbeat"]
    assert sorted(releases) == list(range(1, N_EVENTS // EVERY + 1)), "a version missing or released twice"


def test_kill_9_of_the_trainer_and_of_a_predictor_changes_no_prediction(spawn, make_config, reader, tmp_path,
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
    trainer = _start(spawn, config, toml, signing_key, "trainer", idle_s=never)
    procs = {"p0": _start(spawn, config, toml, signing_key, "predictor", "p0", idle_s=never),
             "p1": _start(spawn, config, toml, signing_key, "predictor", "p1", idle_s=never)}
    _wait_for_release(config, rng.randrange(2, N_EVENTS // EVERY - 3), trainer=trainer)  # mid-run: versions are still to come
    trainer.send_signal(signal.SIGKILL)
    trainer.wait()
    time.sleep(rng.uniform(0.5, 1.5))
    procs["p1"].send_signal(signal.SIGKILL)
    procs["p1"].wait()
    procs.pop("p1").communicate()
    procs["trainer"] = _start(spawn, config, toml, signing_key, "trainer", idle_s=never)
    # p2 takes over the dead p1's partitions once its session has timed out (6 s)
    procs["p2"] = _start(spawn, config, toml, signing_key, "predictor", "p2", idle_s=never)
    _wait_for_release(config, N_EVENTS // EVERY, trainer=procs["trainer"])
    _wait_until_served(config, reader, len(expected), procs)
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    _finish(procs)
    served = _served(config, reader)
    assert set(served) == set(expected)
    assert served == expected
    _assert_versions_unbroken(config, reader)
    # The restarted trainer's last release is River's model after every label.
    from driftline.versions.signing import unseal

    last = [orjson.loads(m.value()) for m in reader(config, config.topics.versions)
            if m.key() == str(N_EVENTS // EVERY).encode()][0]
    _, released = unseal(base64.b64decode(last["inline"]), signing_key)
    assert [released.predict_proba_one(x) for x in xs] == [river_final.predict_proba_one(x) for x in xs]


def test_predictors_scaled_1_3_1_during_a_run_change_no_prediction(spawn, make_config, reader, tmp_path, signing_key):
    """One predictor serves, two more join while events are being served, then two of the
    three get SIGTERM: one committed prediction per event, each the offline simulation's,
    and every version released once.

    The input comes in four parts, each produced once the group is where the test wants it,
    so that every change of the group happens while there is input to serve. The trainer
    never calls a partition idle (a part may come long after the last on a loaded box: an
    idle call would let it learn out of event-time order, unlike River's run); the tail of
    feature events after the last label lets it learn every label.
    """
    import signal

    config = _deployment(make_config, processor={"max_idle_ms": 3_600_000})
    records = _input(tail=30)
    expected, _, _ = _simulate(records)
    toml = tmp_path / f"{config.name}.toml"
    _write_toml(config, toml)
    features = [i for i, r in enumerate(records) if r[0] == "features"]
    cuts = [0, features[N_EVENTS // 4], features[N_EVENTS // 2], features[3 * N_EVENTS // 4], len(records)]
    parts = [records[a:b] for a, b in zip(cuts, cuts[1:])]

    def served_by_now(k: int) -> int:
        """Events of the first k parts, less the last DELTA ms of them (they wait for the
        trainer's watermark to pass, i.e. for the next part)."""
        last = records[cuts[k] - 1][1]
        return sum(1 for kind, t, _, _ in records[:cuts[k]] if kind == "features" and t <= last - 2 * DELTA)

    never = 3600  # no process stops on an idle timer: the run's conditions decide (see the kill test)
    procs = {"trainer": _start(spawn, config, toml, signing_key, "trainer", idle_s=never),
             "p0": _start(spawn, config, toml, signing_key, "predictor", "p0", idle_s=never)}
    _send(config, parts[0])
    _wait_for_members(config, {"p0"}, procs)
    _wait_until_served(config, reader, served_by_now(1) // 2, procs)  # serving under way
    # 1 -> 3: two predictors join while p0 serves the rest of the first part and the second
    _send(config, parts[1])
    procs["p1"] = _start(spawn, config, toml, signing_key, "predictor", "p1", idle_s=never)
    procs["p2"] = _start(spawn, config, toml, signing_key, "predictor", "p2", idle_s=never)
    _wait_for_members(config, {"p0", "p1", "p2"}, procs)
    _send(config, parts[2])  # served by three predictors, one partition each
    _wait_until_served(config, reader, served_by_now(3), procs)
    # 3 -> 1: p0 and p1 stop; p2 takes their partitions once their sessions time out (static
    # members do not leave the group on close), while the last part is being served
    for name in ("p0", "p1"):
        procs[name].send_signal(signal.SIGTERM)
    stopped = _finish({name: procs.pop(name) for name in ("p0", "p1")})
    _send(config, parts[3])
    _wait_for_members(config, {"p2"}, procs)
    _wait_until_served(config, reader, len(expected), procs)
    _wait_for_release(config, N_EVENTS // EVERY, trainer=procs["trainer"])
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    summaries = {**stopped, **_finish(procs)}
    for name in ("p0", "p1", "p2"):
        assert summaries[name].get("predictions", 0) > 0, f"{name} served nothing: {summaries[name]}"
    served = _served(config, reader)
    assert set(served) == set(expected), "an event without a prediction, or an unknown one"
    wrong = [k for k in expected if served[k] != expected[k]]
    assert not wrong, f"{len(wrong)} predictions differ from River's, e.g. {wrong[0]}: " \
                      f"{served[wrong[0]]} != {expected[wrong[0]]}"
    _assert_versions_unbroken(config, reader)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, str], float]:
    """(metric sample name, partition) -> value of the served-quality samples on /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, s.labels["partition"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name.startswith("driftline_served_") and "partition" in s.labels}


def test_served_accuracy_per_partition_equals_the_predictions_and_labels_topics(spawn, make_config, reader, tmp_path,
                                                                                signing_key):
    """With served_labels on, two predictors join each label of their partitions with the
    prediction they served: the served accuracy per partition on /metrics equals River's
    Accuracy over .labels joined with .predictions by event id, and the served drift events
    on .drift are those of River's PageHinkley fed the served errors of that partition."""
    import signal

    from river import drift, metrics

    detector = {"name": "PageHinkley", "params": {"threshold": 3.0}}  # fires on this stream
    config = _deployment(make_config, served_labels=True, drift={"detectors": [detector], "grace_examples": 0})
    toml = tmp_path / f"{config.name}.toml"
    _write_toml(config, toml)
    ports = {"p0": _free_port(), "p1": _free_port()}
    never = 3600
    procs = {"trainer": _start(spawn, config, toml, signing_key, "trainer", idle_s=never)}
    for name, port in ports.items():
        procs[name] = _start(spawn, config, toml, signing_key, "predictor", name, idle_s=never, metrics_port=port)
    # the group settles before the input comes: no partition moves, each owner joins every label
    _wait_for_members(config, set(ports), procs)
    _produce(config)
    _wait_until_served(config, reader, N_EVENTS, procs)

    predictions = {orjson.loads(m.value())["id"]: orjson.loads(m.value())["prediction"]
                   for m in reader(config, config.topics.predictions)}
    labels: dict[int, list] = {}
    for m in reader(config, config.topics.labels):
        labels.setdefault(m.partition(), []).append((m.offset(), orjson.loads(m.value())))
    expected, errors = {}, {}
    for partition, rows in labels.items():
        accuracy = metrics.Accuracy()
        errors[partition] = []
        for _, body in sorted(rows, key=lambda r: r[0]):
            accuracy.update(body["label"], predictions[body["id"]])
            errors[partition].append(0.0 if body["label"] == predictions[body["id"]] else 1.0)
        expected[str(partition)] = accuracy.get()
    import time

    for _ in range(120):  # until every label is joined (labels wait for their features' serving)
        samples: dict[tuple[str, str], float] = {}
        for port in ports.values():
            samples.update(_scrape(port))
        joined = {p: samples.get(("driftline_served_labels_joined_total", str(p)), 0) for p in labels}
        if all(joined[p] == len(rows) for p, rows in labels.items()):
            break
        time.sleep(1)
    else:
        raise AssertionError(f"labels joined {joined}, labels on the topic {({p: len(r) for p, r in labels.items()})}")
    served = {p: samples[("driftline_served_accuracy", p)] for p in expected}
    assert served == expected
    for p in expected:
        assert samples.get(("driftline_served_labels_unmatched_total", p), 0) == 0
        assert samples.get(("driftline_served_evictions_total", p), 0) == 0
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    summaries = _finish(procs)
    assert {p for name in ports for p in summaries[name]["served"]} == set(expected)

    # served drift: River's own detector over each partition's served errors
    fired: dict[int, list[int]] = {}
    for partition, stream_of_errors in errors.items():
        watch = drift.PageHinkley(mode="up", threshold=3.0)
        fired[partition] = []
        for position, error in enumerate(stream_of_errors):
            watch.update(error)
            if watch.drift_detected:
                fired[partition].append(position)
    assert any(fired.values()), "the served detector never fired: the test checks nothing"
    events = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    served_events = [e for e in events if "served" in e]
    got: dict[int, list[int]] = {p: [] for p in errors}
    for event in served_events:
        got[event["served"]["partition"]].append(event["position"])
        assert event["kind"] == "concept" and event["source"]["kind"] == "labels"
    assert {p: sorted(v) for p, v in got.items()} == fired


def test_a_fenced_predictor_says_another_instance_took_over_and_exits_3(spawn, make_config, reader, tmp_path,
                                                                        signing_key):
    """A second predictor with the same instance id fences the first: the first exits 3 with
    one line naming the takeover, not a 'Fatal error' traceback from its next produce()."""
    from confluent_kafka import Producer

    from driftline.runtime.processor import EXIT_FENCED

    config = _deployment(make_config)
    records = _produce(config)
    toml = tmp_path / f"{config.name}.toml"
    _write_toml(config, toml)
    _finish({"trainer": _start(spawn, config, toml, signing_key, "trainer")})
    p0 = _start(spawn, config, toml, signing_key, "predictor", "p0", idle_s=120)
    _wait_until_served(config, reader, N_EVENTS, {"p0": p0})
    predictor = config.model_copy(update={"scale": config.scale.model_copy(update={"role": "predictor",
                                                                                   "instance": "p0"})})
    usurper = Producer({"bootstrap.servers": config.kafka.bootstrap_servers,
                        "transactional.id": predictor.transactional_id})
    usurper.init_transactions(30)  # what a second p0 does first
    # events inside the released watermark: p0 serves them at once, in a transaction that fails
    _send(config, [("features", t, f"late-{i}", x) for i, (kind, t, _, x) in enumerate(records[:20])
                   if kind == "features"])
    p0.wait(120)
    stderr = p0.err_path.read_text(errors="replace")
    assert p0.returncode == EXIT_FENCED == 3, stderr
    assert "Traceback" not in stderr, stderr
    plain = [line for line in stderr.splitlines() if line and not line.startswith("{")]
    assert plain == [f"Error: another predictor took over instance p0 (transactional.id "
                     f"{predictor.transactional_id}): this one stops"], stderr
