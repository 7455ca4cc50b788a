"""Peer 2: a faust-streaming agent doing predict, join and learn (aiokafka transport).

One agent reads the features and labels topics as one stream. Features -> predict, send the
prediction to the predictions topic, keep (x, prediction) in a dict; label -> join, score,
learn. The join state is a plain in-process dict (a faust Table would add a changelog
write per event; that would only make this peer slower). Delivery: faust's default
``at_least_once``: offsets of processed events are committed every ``broker_commit_every``
events / ``broker_commit_interval`` seconds (faust defaults), predictions are sent without
transactions.

Runs in its own venv (see requirements-faust.txt). Stops by itself once all events are
processed and the producer is flushed (or after ``--max-seconds``) and writes one JSON line
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import make_model  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--features-topic", required=True)
ap.add_argument("--labels-topic", required=True)
ap.add_argument("--predictions-topic", required=True)
ap.add_argument("--preset", required=True)
ap.add_argument("--features", type=int, required=True)
ap.add_argument("--labels", type=int, required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--datadir", required=True)
ap.add_argument("--max-seconds", type=float, default=600)
args = ap.parse_args()

import faust  # noqa: E402
from river import metrics  # noqa: E402

app = faust.App(
    f"peer-faust-{os.getpid()}",
    broker=f"kafka://{args.bootstrap}",
    store="memory://",
    web_enabled=False,
    datadir=args.datadir,
    topic_partitions=1,
    topic_replication_factor=1,
)
source = app.topic(args.features_topic, args.labels_topic, key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw")
predictions = app.topic(args.predictions_topic, key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw")

model = make_model(args.preset)
accuracy = metrics.Accuracy()
pending: dict[str, tuple[dict, object]] = {}
waiting_labels: dict[str, object] = {}
state = {"features": 0, "labels": 0, "learned": 0, "first": None}


def finish(complete: bool) -> None:
    end = time.perf_counter()
    first = state["first"]
    elapsed = end - first if first else float("nan")
    with open(args.out, "w") as fh:
        fh.write(json.dumps({
            "eps": state["features"] / elapsed if first else 0.0, "seconds": elapsed,
            "predictions": state["features"], "learned": state["learned"], "accuracy": accuracy.get(),
            "complete": complete, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }))
    os._exit(0)  # faust has no clean "stop after N events"; the result is written


def learn(x, pred, y) -> None:
    if pred is not None:
        accuracy.update(y, pred)
    model.learn_one(x, y)
    state["learned"] += 1


@app.agent(source)
async def process(stream):
    async for event in stream.events():
        if state["first"] is None:
            state["first"] = time.perf_counter()
        body = orjson.loads(event.value)
        event_id = body["id"]
        if event.message.topic == args.features_topic:
            x = body["features"]
            pred = model.predict_one(x)
            await predictions.send(key=event.key, value=orjson.dumps({"id": event_id, "prediction": pred}))
            state["features"] += 1
            if event_id in waiting_labels:
                learn(x, pred, waiting_labels.pop(event_id))
            else:
                pending[event_id] = (x, pred)
        else:
            state["labels"] += 1
            if event_id in pending:
                x, pred = pending.pop(event_id)
                learn(x, pred, body["label"])
            else:
                waiting_labels[event_id] = body["label"]
        if state["features"] >= args.features and state["learned"] >= args.labels:
            await app.producer.flush()
            finish(True)


@app.timer(1.0)
async def watchdog():
    if time.perf_counter() - started > args.max_seconds:
        finish(False)


started = time.perf_counter()

if __name__ == "__main__":
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
