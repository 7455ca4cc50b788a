"""Peer 1: the plain confluent-kafka loop a user would write first.

Subscribe to the features and labels topics, and for each message in arrival order:
features -> predict, publish the prediction, keep (x, prediction) in a dict; label -> pop
the features from the dict (or keep the label until they come), score, learn.

Delivery: at-least-once. Offsets are committed synchronously every ``--commit-every``
messages and at the end; predictions are produced without transactions (idempotent
producer, acks=all), so a crash between two commits re-publishes and re-learns.
There is no event-time ordering: the join sees whatever interleaving the fetches give.

``--mode poll`` calls ``poll()`` per message (the canonical example); ``--mode batch``
calls ``consume(500)``. Stops by itself after ``--features`` predictions and ``--labels``
labels, or after ``--max-seconds``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import orjson
from confluent_kafka import Consumer, KafkaError, Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import make_model  # noqa: E402
from river import metrics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--features-topic", required=True)
    ap.add_argument("--labels-topic", required=True)
    ap.add_argument("--predictions-topic", required=True)
    ap.add_argument("--preset", required=True)
    ap.add_argument("--features", type=int, required=True)
    ap.add_argument("--labels", type=int, required=True)
    ap.add_argument("--mode", choices=["poll", "batch"], default="poll")
    ap.add_argument("--commit-every", type=int, default=1000)
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()

    model = make_model(args.preset)
    accuracy = metrics.Accuracy()
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"peer-confluent-{os.getpid()}-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    consumer.subscribe([args.features_topic, args.labels_topic])
    waiting_labels: dict[str, object] = {}   # labels that came before their features
    pending: dict[str, tuple[dict, object]] = {}  # id -> (features, prediction)
    n_features = n_labels = n_learned = since_commit = 0
    first = None
    deadline = time.monotonic() + args.max_seconds

    def learn(x, pred, y) -> None:
        nonlocal n_learned
        if pred is not None:
            accuracy.update(y, pred)
        model.learn_one(x, y)
        n_learned += 1

    def handle(msg) -> None:
        nonlocal n_features, n_labels, since_commit
        body = orjson.loads(msg.value())
        event_id = body["id"]
        if msg.topic() == args.features_topic:
            x = body["features"]
            pred = model.predict_one(x)
            producer.produce(args.predictions_topic, key=msg.key(),
                             value=orjson.dumps({"id": event_id, "prediction": pred}))
            producer.poll(0)
            n_features += 1
            if event_id in waiting_labels:
                learn(x, pred, waiting_labels.pop(event_id))
            else:
                pending[event_id] = (x, pred)
        else:
            n_labels += 1
            if event_id in pending:
                x, pred = pending.pop(event_id)
                learn(x, pred, body["label"])
            else:
                waiting_labels[event_id] = body["label"]
        since_commit += 1
        if since_commit >= args.commit_every:
            producer.flush()  # at-least-once: outputs out before the inputs are marked done
            consumer.commit(asynchronous=False)
            since_commit = 0

    try:
        while (n_features < args.features or n_learned < args.labels) and time.monotonic() < deadline:
            if args.mode == "poll":
                msg = consumer.poll(0.5)
                msgs = [] if msg is None else [msg]
            else:
                msgs = consumer.consume(500, 0.5)
            for msg in msgs:
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        print(f"consumer error: {msg.error()}", file=sys.stderr)
                    continue
                if first is None:
                    first = time.perf_counter()
                handle(msg)
        producer.flush()
        if since_commit:
            consumer.commit(asynchronous=False)
        end = time.perf_counter()
    finally:
        consumer.close()
    elapsed = end - first if first else float("nan")
    print(json.dumps({
        "eps": n_features / elapsed if first else 0.0, "seconds": elapsed, "predictions": n_features,
        "learned": n_learned, "accuracy": accuracy.get(), "complete": n_learned >= args.labels,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
