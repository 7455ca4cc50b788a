"""One measurement per process: ``python cases.py CASE '<json args>'`` prints ``RESULT {json}``.

Each case runs in a fresh process so peak RSS is its own and nothing warms up another
case's caches. Cases: ``limit`` (River's bare loop), ``limit_minibatch`` (River's
learn_many/predict_many loop), ``driftline`` (the processor on
pre-loaded topics), ``latency`` (rate-limited producer + read_committed consumer against a
running processor), ``join_memory`` (bytes per pending event in the engine), ``profile``
(cProfile of the processor).
"""

from __future__ import annotations

import cProfile
import collections
import gc
import io
import json
import os
import pstats
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import current_rss_bytes, peak_rss_mb, percentiles, river_loop, river_minibatch_loop, rows_of  # noqa: E402


def _config(a: dict):
    from driftline.config import load_config

    return load_config(
        name=a["name"],
        kafka={"bootstrap_servers": a["bootstrap"], **a.get("kafka", {})},
        model={"preset": a["preset"], **a.get("model", {})},
        checkpoint={"store_url": a["store"], "every_examples": a.get("every_examples", 10_000_000),
                    "every_seconds": a.get("every_seconds", 3600), "on_drift": a.get("on_drift", True),
                    "background": a.get("background", True)},
        processor=a.get("processor", {}),
        drift=a.get("drift", {}),
    )


def case_limit(a: dict) -> dict:
    from driftline.config import load_config
    from driftline.core.models import build_model

    rows = rows_of(a["data"], a["n"])
    model = build_model(load_config(name="limit", model={"preset": a["preset"]}).model)
    out = river_loop(model, rows, a["delay"])
    return {**out, "rss_mb": peak_rss_mb()}


def case_limit_minibatch(a: dict) -> dict:
    """River's learn_many/predict_many loop in memory (``common.river_minibatch_loop``), on the
    model a mini-batch deployment builds: River's StandardScaler.learn_many makes a variance
    negative on Elec2 in the first batch (TypeError), see driftline.core.minibatch.StandardScaler."""
    from driftline.config import load_config
    from driftline.core.models import build_model

    rows = rows_of(a["data"], a["n"])
    features = {name: "num" for name in rows[0][0]}
    model = build_model(load_config(name="limit", model={"preset": a["preset"], "mini_batch": a["batch"],
                                                         "features": features}).model)
    out = river_minibatch_loop(model, rows, a["batch"])
    return {**out, "rss_mb": peak_rss_mb()}


def _label_rule_off() -> None:
    """The baseline of the label rule's cost: labels no longer wait for the features'
    watermark (the merge before the rule; future labels can leak into predictions)."""
    from driftline.core import ordering

    def label_run(self, queue, best_key, next_key, now_ms, limit):
        run, partition = [], best_key[2]
        while queue and len(run) < limit:
            head = queue[0]
            if run and next_key is not None and (head.timestamp, 0, partition, head.offset) > next_key:
                break
            run.append(queue.popleft())
        return run

    ordering.EventTimeMerger._label_run = label_run


def _histogram_quantiles(registry, name: str, qs: tuple[float, ...]) -> dict:
    """Quantiles (ms) of a Prometheus histogram, interpolated linearly within buckets, as
    PromQL's histogram_quantile does."""
    buckets: list[tuple[float, float]] = []
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name + "_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    out: dict = {"n": total}
    for q in qs:
        if not total:
            out[f"p{round(q * 100)}"] = float("nan")
            continue
        rank, lower, below = q * total, 0.0, 0.0
        for upper, count in buckets:
            if count >= rank:
                if upper == float("inf"):
                    value = lower
                else:
                    value = lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 0)
                out[f"p{round(q * 100)}"] = value * 1000
                break
            lower, below = upper, count
    return out


def _run_processor(a: dict, profile: cProfile.Profile | None = None) -> dict:
    from prometheus_client import CollectorRegistry

    from driftline.runtime.processor import Processor

    if a.get("no_label_rule"):
        _label_rule_off()
    registry = CollectorRegistry()
    processor = Processor(_config(a), b"bench-key", registry=registry)
    if a.get("stop_on_term"):  # latency runs end with SIGTERM: stop cleanly and report
        processor.install_signal_handlers()
    if profile is not None:
        # Profile only the processing window: from the first batch that processed records
        # until the commit after the last label is learned (no start-up, no idle exit wait).
        drain, commit, state = processor.drainer.drain, processor._commit, {"on": False, "done": False}

        def drain_wrapped(*args, **kw):
            n = drain(*args, **kw)
            if n and not state["on"] and not state["done"]:
                profile.enable()
                state["on"] = True
            return n

        def commit_wrapped(*args, **kw):
            out = commit(*args, **kw)
            if state["on"] and processor.engine.n_learned >= a["n"]:
                profile.disable()
                state["on"], state["done"] = False, True
            return out

        processor.drainer.drain, processor._commit = drain_wrapped, commit_wrapped
    engine = processor.run(exit_when_idle_s=a.get("idle_s", 2.0), max_seconds=a.get("max_seconds", 600))
    if profile is not None:
        profile.disable()
    t = processor.timings
    elapsed = t["last_commit"] - t["first_record"] if "last_commit" in t and "first_record" in t else float("nan")
    merge = vars(processor.merger.stats) if processor.merger is not None else {}
    return {
        "label_wait_ms": _histogram_quantiles(registry, "driftline_label_wait_seconds", (0.5, 0.95, 0.99)),
        "merge": merge,
        "eps": a["n"] / elapsed, "seconds": elapsed, "learned": engine.n_learned,
        "predictions": engine.counters.predictions, "accuracy": engine.scores.values().get("accuracy"),
        "complete": engine.n_learned + (engine.minibatch.pending if getattr(engine, "minibatch", None) else 0) >= a["n"],
        "rss_mb": peak_rss_mb(),
        # False when the config asked for mini-batches but the engine has no mini-batch mode
        "mini_batch": getattr(engine, "minibatch", None) is not None,
    }


def case_driftline(a: dict) -> dict:
    return _run_processor(a)


def case_profile(a: dict) -> dict:
    prof = cProfile.Profile()
    out = _run_processor(a, prof)
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # total self time
    rows = []
    for (path, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():
        short = path.split("site-packages/")[-1].split("/src/")[-1]
        rows.append({"function": f"{short}:{line}({func})", "calls": nc, "self_s": tt, "cum_s": ct,
                     "self_pct": 100 * tt / total if total else 0.0})
    rows.sort(key=lambda r: r["self_s"], reverse=True)
    areas: dict[str, float] = {}
    for r in rows:
        f = r["function"]
        area = ("Kafka client (librdkafka calls)" if "cimpl" in f or "confluent_kafka" in f else
                "River: drift detectors" if f.startswith("river/drift") else
                "River: model" if f.startswith("river/") else
                "Driftline: metrics" if "observability" in f or "prometheus_client" in f or "scoring" in f else
                "Driftline: other" if f.startswith("driftline/") else
                "JSON (orjson)" if "orjson" in f else
                "pickle/copy/inspect (snapshots, params)" if any(k in f for k in ("pickle", "copy.py", "inspect.py", "hmac", "hashlib", "sqlite")) else
                "other")
        areas[area] = areas.get(area, 0.0) + r["self_pct"]
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(40)
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(40)
    with open(a["text_out"], "w") as fh:
        fh.write(text.getvalue())
    return {**out, "profiled_s": total, "top_self": rows[:20],
            "areas": dict(sorted(areas.items(), key=lambda kv: -kv[1]))}


def case_latency(a: dict) -> dict:
    """Produce features at ``rate``/s (labels ``delay`` events later) against a running
    processor; time each feature from just before ``produce()`` until its prediction is
    visible to a read_committed consumer (same machine, ``time.time()``)."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    import orjson

    from driftline.runtime.replay import encode_features

    rows = rows_of(a["data"], a["n_rows"])
    # Encoded once: the generator shares the 2 cores with the broker and the processor, so
    # it must cost little per event (only the id is spliced in per send).
    bodies = [(orjson.dumps(encode_features(x)), orjson.dumps(y)) for x, y in rows]
    rate, duration, delay = a["rate"], a["duration"], a["delay"]
    producer = Producer({"bootstrap.servers": a["bootstrap"], "linger.ms": a.get("linger_ms", 5), "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    consumer = Consumer({"bootstrap.servers": a["bootstrap"], "group.id": f"bench-lat-{time.time_ns()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(a["predictions_topic"], p, a.get("predictions_start", 0))
                     for p in range(a.get("partitions", 1))])
    sent: dict[bytes, float] = {}
    seen: dict[bytes, float] = {}
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            # consume(n, t) returns only when n messages arrived or t passed: keep t small, or
            # the harness itself adds up to t to every latency it measures.
            for msg in consumer.consume(1000, 0.002):
                if msg.error() is None and msg.key() in sent and msg.key() not in seen:
                    seen[msg.key()] = time.time()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    labels: collections.deque[tuple[int, bytes, bytes]] = collections.deque()
    acks: list[tuple[float, float]] = []
    i = 0

    def send(features: bytes, label: bytes, measured: bool) -> None:
        nonlocal i
        key = f"{a['id_prefix']}{i}".encode()
        now = time.time()
        while labels and labels[0][0] <= i:
            _, lkey, lval = labels.popleft()
            producer.produce(a["labels_topic"], key=lkey, value=lval, timestamp=int(now * 1000))
        value = b'{"id":"' + key + b'","features":' + features + b"}"
        sent[key] = now if measured else -1.0
        if measured and i % 50 == 0:  # a sample of produce -> broker acknowledgement times
            producer.produce(a["features_topic"], key=key, value=value, timestamp=int(now * 1000),
                             on_delivery=lambda err, msg, t=now: acks.append((t, time.time() - t)))
        else:
            producer.produce(a["features_topic"], key=key, value=value, timestamp=int(now * 1000))
        producer.poll(0)
        labels.append((i + delay, key, b'{"id":"' + key + b'","label":' + label + b"}"))
        i += 1

    # Warm up: trickle events until the processor answers (it may still be starting or
    # catching up on pre-loaded events), then one more second at the target rate.
    deadline = time.monotonic() + a.get("startup_s", 90)
    while not seen and time.monotonic() < deadline:
        send(*bodies[i % len(bodies)], measured=False)
        time.sleep(0.02)
    if not seen:
        stop.set()
        return {"error": "no prediction seen during warm-up"}
    warm_until = time.monotonic() + 1.0
    started = time.monotonic()
    n0 = i
    while time.monotonic() - started < duration + 1.0:
        measured = time.monotonic() >= warm_until
        send(*bodies[i % len(bodies)], measured=measured)
        ahead = (i - n0) / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    actual_rate = (i - n0) / (time.monotonic() - started)
    for _, lkey, lval in labels:
        producer.produce(a["labels_topic"], key=lkey, value=lval, timestamp=int(time.time() * 1000))
    producer.flush(30)
    measured_keys = [k for k, t in sent.items() if t >= 0]
    end = time.monotonic() + 15
    while time.monotonic() < end and sum(1 for k in measured_keys if k in seen) < len(measured_keys):
        time.sleep(0.05)
    stop.set()
    thread.join(2)
    consumer.close()
    lat = [(seen[k] - sent[k]) * 1000 for k in measured_keys if k in seen]
    if a.get("timeline"):  # for diagnosis: when each measured event was sent, its latency, the acks
        with open(a["timeline"], "wb") as f:
            f.write(orjson.dumps([(sent[k], (seen[k] - sent[k]) * 1000) for k in measured_keys if k in seen]))
        with open(a["timeline"] + ".acks", "wb") as f:
            f.write(orjson.dumps(acks))
    ack_ms = [d * 1000 for _, d in acks]
    return {"rate": rate, "actual_rate": actual_rate, "measured": len(measured_keys), "seen": len(lat),
            **percentiles(lat), "max": max(lat) if lat else float("nan"), "events_sent": i,
            "produce_ack": {**percentiles(ack_ms), "max": max(ack_ms) if ack_ms else float("nan")}}


def case_join_memory(a: dict) -> dict:
    """Bytes per pending event: feed ``pending`` feature records (labels never come) to a
    fresh engine and compare RSS before and after."""
    import orjson

    from driftline.config import load_config
    from driftline.core.engine import Engine
    from driftline.core.events import InputRecord

    n, n_features = a["pending"], a["n_features"]
    engine = Engine(load_config(name="joinmem", model={"preset": a["preset"]},
                                join={"max_pending": max(n, 1), "max_age_ms": 10**12}))
    from common import synthetic

    gen = synthetic(n_features)
    # Warm the model and allocator with a few joined events first.
    for i in range(200):
        x, y = next(gen)
        engine.process(InputRecord("features", 0, i, i, f"w{i}".encode(),
                                   orjson.dumps({"id": f"w{i}", "features": x})), 0)
        engine.process(InputRecord("labels", 0, i, i, f"w{i}".encode(), orjson.dumps({"id": f"w{i}", "label": y})), 0)
    gc.collect()
    before = current_rss_bytes()
    started = time.perf_counter()
    for i in range(n):
        x, _ = next(gen)
        eid = f"e{i:09d}"
        engine.process(InputRecord("features", 0, 1000 + i, 1000 + i, eid.encode(),
                                   orjson.dumps({"id": eid, "features": x})), 0)
    elapsed = time.perf_counter() - started
    gc.collect()
    after = current_rss_bytes()
    return {"pending": engine.join.pending_features, "bytes_per_pending": (after - before) / max(n, 1),
            "rss_mb": after / 2**20, "eps": n / elapsed}


def case_snapshot_stall(a: dict) -> dict:
    """How long a version cut holds up the processing loop: a forest grown on ``data`` for
    ``n`` events, saved inline and by the forked writer (runtime/snapshots.py), while the
    engine keeps predicting; no Kafka (the loop's other per-cut work is small and the same)."""
    import tempfile

    import orjson

    from driftline.config import load_config
    from driftline.core.engine import Engine
    from driftline.core.events import InputRecord
    from driftline.runtime.snapshots import BackgroundSaver
    from driftline.versions.store import VersionStore

    engine = Engine(load_config(name="stall", model={"preset": a["preset"]}))
    rows = rows_of(a["data"], a["n"])
    for i, (x, y) in enumerate(rows):
        engine.process(InputRecord("features", 0, i, i, None, orjson.dumps({"id": f"e{i}", "features": x})), 0)
        engine.process(InputRecord("labels", 0, i, i, None, orjson.dumps({"id": f"e{i}", "label": y})), 0)
    store = VersionStore(tempfile.mkdtemp(), "stall", b"bench-key")
    out = {}
    for mode, forking in (("inline", False), ("forked", True)):
        saver = BackgroundSaver(store, enabled=forking)
        version = store.next_version()
        t0 = time.perf_counter()
        saver.start(version, {}, {"engine": engine})
        blocked = time.perf_counter() - t0
        served = 0
        while (done := saver.poll()) is None:  # the parent goes on predicting meanwhile
            x = rows[served % len(rows)][0]
            engine.process(InputRecord("features", 0, 10**7 + served, 10**7 + served, None,
                                       orjson.dumps({"id": f"s{served}", "features": x})), 0)
            served += 1
        out[mode] = {"blocked_ms": blocked * 1000, "save_ms": done.seconds * 1000, "predicted_meanwhile": served,
                     "mb": store.meta(version)["payload_bytes"] / 1e6, "error": done.error}
    return out


CASES = {"limit": case_limit, "limit_minibatch": case_limit_minibatch, "driftline": case_driftline, "profile": case_profile,
         "latency": case_latency, "join_memory": case_join_memory, "snapshot_stall": case_snapshot_stall}

if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    result = CASES[sys.argv[1]](json.loads(sys.argv[2]))
    print("RESULT " + json.dumps(result), flush=True)
