"""Global mode measured on a real broker: the trainer's learning rate next to River's bare
predict+learn loop, and predictions per second with 1 and 2 predictor processes.

Run alone against a running broker::

    .venv/bin/python scripts/bench/global_mode.py --bootstrap 127.0.0.1:49092 --events 20000

- River bare loop: the same rows, ``predict_proba_one`` then ``learn_one`` per event, in memory.
- trainer engine alone: ``TrainerEngine`` (core, no Kafka) over the same records in memory:
  decoding, join, predict, score, learn, detectors; examples per second.
- trainer: ``Trainer`` in this process over the pre-loaded input (events and their labels,
  labels 100 events late); rate = examples learned / (last commit − first record), the
  last commit being the shutdown cut after 0.5 s idle (which it includes). The input is
  all in Kafka before it starts, so the merge runs with ``max_idle_ms = 0``: a partition
  at its end has nothing more to give, and the last labels need not wait the default 2 s
  per idle partition (which would dominate a 20,000-event run). A partition with data
  still to fetch is waited for either way (KIP-695).
- predictors: started once the trainer has released every version, so they never wait;
  rate = predictions / (last − first prediction's broker timestamp) on ``.predictions``.
  With 2 predictors the second may join while the first already serves (a rebalance can
  fall inside the measurement).

- trainer with ``[model] learn_share = 0.25``: labels handled (all scored, a seeded quarter
  learned) per second, measured like the trainer.
- single-mode processor: the same input through today's ``Processor`` (predictions
  published), measured like the trainer.

- version propagation (``--propagation``): a trainer and 2 predictors run as processes under
  a paced live load (features stamped now, on partition ``i % 4``; labels ``DELAY`` events
  later), predictors with ``staleness = "latest"`` so the version rule adds no event-time
  wait. Per release n and input partition: the first prediction carrying ``model_version``
  n on that partition (its ``predicted_at``, the predictor's clock when it began the batch
  that served it) minus the release record's CreateTime on ``.versions`` (stamped by the
  trainer's producer inside the release transaction, just before its commit). The max over
  the 4 partitions is the time until every predictor serves n. It includes the wait for the
  partition's next event (4 / rate on average) and the trainer's commit. Same clock
  (one machine) for both stamps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import orjson
from prometheus_client import CollectorRegistry

KEY = b"bench-global-mode-key"
DELAY = 100


def _config(boot: str, store: str, preset: str, partitions: int, learn_share: float = 1.0):
    from driftline.config import load_config

    return load_config(name=f"bench-global-{uuid.uuid4().hex[:8]}", partitions=partitions,
                       kafka={"bootstrap_servers": boot}, model={"preset": preset, "learn_share": learn_share},
                       drift={"policy": "none"},
                       scale={"mode": "global", "role": "trainer", "publish_every_examples": 1000,
                              "max_staleness_ms": 0, "session_timeout_ms": 6000},
                       checkpoint={"store_url": store, "every_examples": 10**9, "every_seconds": 3600},
                       processor={"max_idle_ms": 0})


def _model_line(config) -> str:
    model = config.model
    return f'factory = "{model.factory}"' if model.factory else f'preset = "{model.preset}"'


def _toml(config, path: str) -> None:
    with open(path, "w") as f:
        f.write(f"""
name = "{config.name}"
partitions = {config.partitions}
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
{_model_line(config)}
[drift]
policy = "none"
[scale]
mode = "global"
publish_every_examples = {config.scale.publish_every_examples}
max_staleness_ms = 0
session_timeout_ms = 6000
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = {config.checkpoint.every_examples}
every_seconds = 3600
""")


def _rows(n: int):
    from driftline.datasets import stream
    from driftline.runtime.publisher import encode_features

    return [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n, seed=5)]


def _produce(config, rows) -> None:
    from driftline.runtime.clients import make_producer

    producer = make_producer(config)
    base = int(time.time() * 1000) - 3_600_000
    for i in range(len(rows) + DELAY):
        if i < len(rows):
            producer.produce(config.topics.features, orjson.dumps({"id": f"e{i}", "features": rows[i][0]}),
                             f"e{i}".encode(), timestamp=base + 2 * i)
        if i >= DELAY:
            j = i - DELAY
            producer.produce(config.topics.labels, orjson.dumps({"id": f"e{j}", "label": rows[j][1]}),
                             f"e{j}".encode(), timestamp=base + 2 * i + 1)
        producer.poll(0)
    producer.flush(60)


def _river(preset: str, rows) -> float:
    from driftline.config import ModelConfig
    from driftline.core.models import build_model

    model = build_model(ModelConfig(preset=preset))  # the estimator the engine builds, nothing around it
    start = time.perf_counter()
    for x, y in rows:
        model.predict_proba_one(x)
        model.learn_one(x, y)
    return len(rows) / (time.perf_counter() - start)


def _engine(config, rows) -> float:
    """The trainer's I/O-free engine alone over the same records, in memory, in event-time order."""
    from driftline.core.trainer import TrainerEngine
    from label_sampling import records

    recs, engine = records(rows, DELAY), TrainerEngine(config)
    start = time.perf_counter()
    for record in recs:
        engine.process(record, 0)
    return len(rows) / (time.perf_counter() - start)


def _trainer(config, per: str = "learned") -> float:
    """Examples learned (or, ``per="label"``, labels handled: scored, learned or sampled out) per second."""
    from driftline.runtime.trainer import Trainer

    trainer = Trainer(config, KEY, registry=CollectorRegistry())
    trainer.run(exit_when_idle_s=0.5)  # the shutdown cut commits after the idle wait
    t = trainer.timings
    engine = trainer.engine
    return (engine.n_learned if per == "learned" else engine.counters.joined) / (t["last_commit"] - t["first_record"])


def _single(boot: str, store: str, preset: str, rows) -> float:
    """Today's single-mode processor over the same input (it also publishes predictions)."""
    from driftline.config import load_config
    from driftline.runtime.processor import Processor
    from driftline.runtime.topics import create_topics

    config = load_config(name=f"bench-single-{uuid.uuid4().hex[:8]}", partitions=4,
                         kafka={"bootstrap_servers": boot}, model={"preset": preset}, drift={"policy": "none"},
                         checkpoint={"store_url": store, "every_examples": 10**9, "every_seconds": 3600},
                         processor={"max_idle_ms": 0})
    create_topics(config)
    _produce(config, rows)
    processor = Processor(config, KEY, registry=CollectorRegistry())
    processor.run(exit_when_idle_s=0.5)
    t = processor.timings
    return processor.engine.n_learned / (t["last_commit"] - t["first_record"])


def _predictors(config, toml: str, k: int, n: int) -> float:
    from driftline.runtime.tail import read_committed

    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": KEY.decode()}
    cmd = [sys.executable, "-m", "driftline.cli", "-c", toml, "run", "--role", "predictor", "--exit-when-idle", "4"]
    procs = [subprocess.Popen([*cmd, "--instance", f"p{i}"], env=env, stdout=subprocess.DEVNULL) for i in range(k)]
    for p in procs:
        p.wait(timeout=600)
    stamps = sorted(m.timestamp()[1] for m in read_committed(config, config.topics.predictions))
    assert len(stamps) == n, f"{len(stamps)} predictions for {n} events"
    return n / ((stamps[-1] - stamps[0]) / 1000)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def propagation(boot: str, preset: str, seconds: float, rate: float, every: int) -> dict:
    """Release record on .versions to the first prediction with that version, per partition."""
    from driftline.runtime.clients import make_producer
    from driftline.runtime.tail import read_committed
    from driftline.runtime.topics import create_topics

    parts = 4
    rows = _rows(int(seconds * rate) + DELAY)
    with tempfile.TemporaryDirectory() as store:
        config = _config(boot, store, preset, partitions=parts)
        create_topics(config)
        toml = os.path.join(store, f"{config.name}.toml")
        with open(toml, "w") as f:
            f.write(f"""name = "{config.name}"
partitions = {parts}
[kafka]
bootstrap_servers = "{boot}"
[model]
{_model_line(config)}
[drift]
policy = "none"
[scale]
mode = "global"
publish_every_examples = {every}
staleness = "latest"
session_timeout_ms = 6000
[checkpoint]
store_url = "{store}"
every_examples = 1000000000
every_seconds = 3600
""")
        env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": KEY.decode()}
        cmd = [sys.executable, "-m", "driftline.cli", "-c", toml, "run", "--exit-when-idle", "8"]
        procs = [subprocess.Popen([*cmd, "--role", "trainer"], env=env, stdout=subprocess.DEVNULL)]
        procs += [subprocess.Popen([*cmd, "--role", "predictor", "--instance", f"p{i}"], env=env,
                                   stdout=subprocess.DEVNULL) for i in range(2)]
        time.sleep(10)  # both predictors joined and assigned before the load starts
        producer = make_producer(config)
        n = len(rows) - DELAY
        start = time.monotonic()
        for i in range(len(rows)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = int(time.time() * 1000)
            if i < n:
                producer.produce(config.topics.features, orjson.dumps({"id": f"e{i}", "features": rows[i][0]}),
                                 f"e{i}".encode(), partition=i % parts, timestamp=now)
            if i >= DELAY:
                j = i - DELAY
                producer.produce(config.topics.labels, orjson.dumps({"id": f"e{j}", "label": rows[j][1]}),
                                 f"e{j}".encode(), partition=j % parts, timestamp=now)
            producer.poll(0)
        producer.flush(60)
        for p in procs:
            p.wait(timeout=300)
        released = {}
        for m in read_committed(config, config.topics.versions):
            if m.key() != b"heartbeat":
                released[orjson.loads(m.value())["version"]] = m.timestamp()[1]
        first: dict[tuple[int, int], int] = {}
        for m in read_committed(config, config.topics.predictions):
            body = orjson.loads(m.value())
            cell = (body["model_version"], int(body["id"][1:]) % parts)
            first[cell] = min(first.get(cell, body["predicted_at"]), body["predicted_at"])
    lags, every_partition, missed = [], [], 0
    for version, t in released.items():
        mine = [first[(version, p)] - t for p in range(parts) if (version, p) in first]
        missed += parts - len(mine)
        lags += mine
        if len(mine) == parts:
            every_partition.append(max(mine))
    return {"model": preset, "rate_per_s": rate, "seconds": seconds, "publish_every_examples": every,
            "versions_released": len(released), "load_1min": os.getloadavg()[0],
            "per_partition_ms": {"p50": _pct(lags, 0.5), "p99": _pct(lags, 0.99), "max": max(lags, default=None),
                                 "n": len(lags)},
            "all_predictors_ms": {"p50": _pct(every_partition, 0.5), "p99": _pct(every_partition, 0.99),
                                  "max": max(every_partition, default=None), "n": len(every_partition)},
            "cells_never_served": missed}


def run(boot: str, events: int, preset: str = "river.tree:HoeffdingTreeClassifier") -> dict:
    from driftline.runtime.topics import create_topics

    rows = _rows(events)
    out = {"events": events, "model": preset, "load_1min": os.getloadavg()[0],
           "river_bare_loop_per_s": round(_river(preset, rows))}
    with tempfile.TemporaryDirectory() as store:
        out["trainer_engine_alone_per_s"] = round(_engine(_config(boot, store, preset, 4), rows))
        out["single_mode_processor_per_s"] = round(_single(boot, store, preset, rows))
        for k in (1, 2):
            config = _config(boot, store, preset, partitions=4)
            create_topics(config)
            _produce(config, rows)
            out[f"trainer_per_s_run{k}"] = round(_trainer(config))
            toml = os.path.join(store, f"{config.name}.toml")
            _toml(config, toml)
            out[f"predictors_{k}_per_s"] = round(_predictors(config, toml, k, events))
        # A seeded quarter of the labels learned, every label scored (docs/scaling.md).
        config = _config(boot, store, preset, partitions=4, learn_share=0.25)
        create_topics(config)
        _produce(config, rows)
        out["trainer_learn_share_0.25_labels_per_s"] = round(_trainer(config, per="label"))
    out["load_1min_after"] = os.getloadavg()[0]
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--propagation", action="store_true",
                        help="measure version propagation instead (trainer + 2 predictor processes)")
    parser.add_argument("--preset", default=None,
                        help="model (default: the Hoeffding tree; logistic_regression for --propagation)")
    parser.add_argument("--seconds", type=float, default=20.0, help="paced load length for --propagation")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s for --propagation")
    parser.add_argument("--every", type=int, default=200, help="publish_every_examples for --propagation")
    args = parser.parse_args()
    if args.propagation:
        print(json.dumps(propagation(args.bootstrap, args.preset or "logistic_regression", args.seconds, args.rate,
                                     args.every), indent=2))
    else:
        print(json.dumps(run(args.bootstrap, args.events, args.preset or "river.tree:HoeffdingTreeClassifier"),
                         indent=2))
