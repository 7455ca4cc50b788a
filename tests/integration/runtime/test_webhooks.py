"""`forward` on the real broker: drift and lifecycle events reach an HTTP receiver as signed
binary-mode CloudEvents, through a period when the receiver answers 503, once each."""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from driftline.runtime.webhooks import WebhookSink, forward, signature

pytestmark = pytest.mark.integration

SECRET = b"webhook-test-secret"


def _drift(model: str, i: int) -> dict:
    return {"id": f"{model}-drift-{i}-ADWIN", "kind": "concept", "model": model, "model_version": 1,
            "detector": "ADWIN", "params": {}, "statistic": {}, "position": i, "event_time": i,
            "source": {"kind": "labels", "partition": 0, "offset": i}, "metrics_before": {}, "metrics_after": {},
            "action": "reset", "detected_at": 1_796_169_600_000 + i}


class Receiver(BaseHTTPRequestHandler):
    down_for = 3  # the first requests find the receiver down
    received: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.down_for > 0:
            Receiver.down_for -= 1
            self.send_response(503)
        else:
            Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))  # names are case-insensitive
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_drift_and_lifecycle_events_arrive_signed_once_through_a_down_period(make_config):
    config = make_config()
    producer = Producer({"bootstrap.servers": config.kafka.bootstrap_servers})
    drift = [_drift(config.name, i) for i in range(5)]
    for body in drift:
        producer.produce(config.topics.drift, key=body["id"].encode(), value=orjson.dumps(body),
                         headers=[("ce_specversion", b"1.0"), ("ce_id", body["id"].encode()),
                                  ("ce_type", b"io.driftline.drift"), ("ce_source", f"driftline/{config.name}".encode())])
    lifecycle = {"id": "lc-1", "model": config.name, "action": "rollback", "actor": "cli:test", "reason": "bad labels",
                 "model_version": 3, "details": {"to": 2}, "at": 1_796_169_600_500}
    producer.produce(config.topics.lifecycle, key=b"lc-1", value=orjson.dumps(lifecycle),
                     headers=[("ce_specversion", b"1.0"), ("ce_id", b"lc-1"), ("ce_type", b"io.driftline.lifecycle")])
    assert producer.flush(10) == 0

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    registry = CollectorRegistry()
    try:
        sink = WebhookSink(url, SECRET, config.name, registry=registry, max_backoff_s=1.0)
        assert forward(config, sink, idle_timeout=5) == 6
        again = WebhookSink(url, SECRET, config.name, registry=CollectorRegistry())
        assert forward(config, again, idle_timeout=3) == 0  # resumed after what was delivered
    finally:
        server.shutdown()

    ids = [headers["ce-id"] for headers, _ in Receiver.received]
    assert sorted(ids) == sorted([d["id"] for d in drift] + ["lc-1"])
    assert [i for i in ids if i != "lc-1"] == [d["id"] for d in drift]  # in topic order
    for headers, body in Receiver.received:
        assert hmac.compare_digest(headers["x-driftline-signature"], signature(body, SECRET))
        assert not hmac.compare_digest(headers["x-driftline-signature"], signature(body, b"wrong"))
        assert headers["content-type"] == "application/json" and headers["ce-specversion"] == "1.0"
    assert orjson.loads(Receiver.received[ids.index("lc-1")][1])["reason"] == "bad labels"
    assert registry.get_sample_value("driftline_webhook_failures_total", {"model": config.name, "reason": "503"}) == 3
