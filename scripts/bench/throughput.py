"""End-to-end throughput of the processor against River's bare loop on the same events.

Pre-loads a data set into fresh topics (features, then labels ``--delay`` events later),
then times, side by side in one run:

- ``river``: River's own predict + learn loop in memory, in the same event-time order
  (the limit: everything Driftline adds is overhead on top of it);
- ``driftline``: the processor from its first read until the last label is learned and the
  last prediction committed (the end of the run minus the idle wait).

Usage: python scripts/bench/throughput.py --bootstrap 127.0.0.1:9092 [--models a,b] [--data spec]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid

from prometheus_client import CollectorRegistry
from river import metrics

from driftline.config import load_config
from driftline.core.models import build_model
from driftline.datasets import stream
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay
from driftline.runtime.topics import create_topics


def river_loop(model, rows, delay: int) -> float:
    """Events per second of River's loop: predict at feature time, learn at label time."""
    metric = metrics.Accuracy()
    pending = []
    started = time.perf_counter()
    for i, (x, y) in enumerate(rows):
        if i >= delay:
            xo, yo, po = pending[i - delay]
            if po is not None:
                metric.update(yo, po)
            model.learn_one(xo, yo)
        pending.append((x, y, model.predict_one(x)))
    for xo, yo, po in pending[max(0, len(rows) - delay):]:
        model.learn_one(xo, yo)
    return len(rows) / (time.perf_counter() - started)


def driftline_run(bootstrap: str, preset: str, rows, delay: int, store: str) -> tuple[float, dict]:
    config = load_config(
        name=f"bench-{preset}-{uuid.uuid4().hex[:6]}",
        kafka={"bootstrap_servers": bootstrap},
        model={"preset": preset},
        checkpoint={"store_url": store, "every_examples": 10_000_000, "every_seconds": 3600},
    )
    create_topics(config)
    replay(config, rows, label_delay=delay, n_rows=len(rows))
    processor = Processor(config, b"bench", registry=CollectorRegistry())
    engine = processor.run(exit_when_idle_s=2.0)
    elapsed = processor.timings["last_commit"] - processor.timings["first_record"]
    return len(rows) / elapsed, {"accuracy": engine.scores.values().get("accuracy"), "learned": engine.n_learned}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default=os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--models", default="logistic_regression,hoeffding_tree")
    parser.add_argument("--data", default="../shared/data/elec.csv")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--delay", type=int, default=100)
    parser.add_argument("--out", default="bench-results/throughput.json")
    args = parser.parse_args()

    rows = [(encode_features(x), y) for x, y in stream(args.data, limit=args.limit)]
    results = []
    print(f"{'model':<24} {'river ev/s':>11} {'driftline ev/s':>15} {'ratio':>6}  accuracy")
    for preset in args.models.split(","):
        limit = river_loop(build_model(load_config(name="b", model={"preset": preset}).model), rows, args.delay)
        ours, info = driftline_run(args.bootstrap, preset, rows, args.delay, f"/tmp/driftline-bench-{uuid.uuid4().hex[:6]}")
        results.append({"model": preset, "river_eps": round(limit), "driftline_eps": round(ours),
                        "ratio": round(ours / limit, 3), **info})
        print(f"{preset:<24} {limit:>11,.0f} {ours:>15,.0f} {ours / limit:>6.2f}  {info['accuracy']:.4f}")
    report = {"data": args.data, "events": len(rows), "delay": args.delay, "machine": platform.platform(),
              "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"), "results": results}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
