"""Processor throughput with the webhook forwarder delivering to a live sink, to a sink that
is down, and with no forwarder at all (a sink that is down must not slow the loop).

The forwarder (``driftline webhooks``, runtime/webhooks.py) and the HTTP sink are processes of
their own, as in a deployment; the processor runs in this process on a fresh deployment per
run, over the same pre-loaded drifting stream (so drift events keep the forwarder busy).
Conditions are interleaved run by run, so load that changes during the bench falls on all of
them alike; the ratios to "none" are the figures.

    .venv/bin/python scripts/bench/webhook_sink.py --bootstrap 127.0.0.1:9092 --events 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import http.server
import multiprocessing
import socket
import statistics
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

from prometheus_client import CollectorRegistry

from driftline.config import load_config
from driftline.datasets import stream
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay
from driftline.runtime.topics import create_topics
from driftline.runtime.webhooks import WebhookSink, forward

KEY = b"bench-webhook-sink-signing-key-0123"
SECRET = b"bench-webhook-secret-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Sink(http.server.BaseHTTPRequestHandler):
    received = None  # a multiprocessing.Value: POSTs answered, counted for the report

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with self.received.get_lock():
            self.received.value += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _serve(port: int, received) -> None:
    _Sink.received = received
    http.server.ThreadingHTTPServer(("127.0.0.1", port), _Sink).serve_forever()


def _forward(settings: dict, url: str) -> None:
    config = load_config(**settings)
    forward(config, WebhookSink(url, SECRET, config.name), ("drift", "lifecycle"))


def one_run(bootstrap: str, store: Path, rows: list, condition: str, sink_port: int) -> float:
    settings = {"name": f"bench-wh-{uuid.uuid4().hex[:8]}", "kafka": {"bootstrap_servers": bootstrap},
                "checkpoint": {"store_url": str(store), "every_examples": 5000},
                "drift": {"detectors": [{"name": "binary.HDDMA"}, {"name": "ADWIN"}]},
                "model": {"preset": "logistic_regression"}}
    config = load_config(**settings)
    create_topics(config)
    replay(config, rows, label_delay=50, n_rows=len(rows))
    forwarder = None
    if condition != "none":
        port = sink_port if condition == "up" else _free_port()  # "down": nobody listens there
        forwarder = multiprocessing.Process(target=_forward, args=(settings, f"http://127.0.0.1:{port}/"),
                                            daemon=True)
        forwarder.start()
    try:
        processor = Processor(config, KEY, registry=CollectorRegistry())
        processor.run(exit_when_idle_s=2)
        t = processor.timings
        return len(rows) / (t["last_commit"] - t["first_record"])
    finally:
        if forwarder is not None:
            forwarder.kill()
            forwarder.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=args.events, seed=3,
                                                         drift_every=max(args.events // 4, 1))]
    sink_port = _free_port()
    received = multiprocessing.Value("l", 0)
    sink = multiprocessing.Process(target=_serve, args=(sink_port, received), daemon=True)
    sink.start()
    rates: dict[str, list[float]] = {"none": [], "up": [], "down": []}
    try:
        with TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                for condition in rates:
                    before = received.value
                    rate = one_run(args.bootstrap, Path(tmp) / "versions", rows, condition, sink_port)
                    rates[condition].append(rate)
                    posted = f", sink received {received.value - before} events" if condition == "up" else ""
                    print(f"run {r + 1} {condition:>4}: {rate:,.0f} events/s{posted}", flush=True)
    finally:
        sink.kill()
    base = statistics.median(rates["none"])
    print(f"\nprocessor throughput, median of {args.repeats} ({args.events:,} Agrawal events, logistic regression):")
    for condition, label in (("none", "no forwarder"), ("up", "forwarder, sink up"), ("down", "forwarder, sink down")):
        median = statistics.median(rates[condition])
        print(f"  {label:<22} {median:>9,.0f} events/s  ({median / base:.2f}x no forwarder)")


if __name__ == "__main__":
    main()
