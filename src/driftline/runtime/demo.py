"""The live demo: a drifting stream replayed into Kafka while the processor learns from it.

The producer and the processor run side by side; the terminal shows throughput, rolling
accuracy, drift events as they are published and versions as they are cut, and the live
page (``/dashboard``) is served on loopback while the demo runs.
"""

from __future__ import annotations

import shlex
import threading
import time
import uuid
from collections.abc import Callable

import orjson
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from prometheus_client import CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.dashboard import LiveFeed, Sampler
from driftline.datasets import stream
from driftline.lifecycle.admin import AdminServer
from driftline.runtime.clients import make_consumer
from driftline.runtime.processor import Processor
from driftline.runtime.replay import replay
from driftline.runtime.topics import create_topics

__all__ = ["run_demo", "explore_commands"]


def run_demo(
    config: DeploymentConfig,
    signing_key: bytes,
    dataset: str = "synth:agrawal",
    events: int = 40_000,
    drift_every: int = 10_000,
    label_delay: int = 100,
    rate: float = 4000.0,
    echo: Callable[[str], None] = print,
    dashboard_port: int = 0,
) -> dict:
    """Run the demo to the end of the stream and return a summary."""
    rows = list(stream(dataset, limit=events, drift_every=drift_every, noise=0.05, seed=7))
    create_topics(config)
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    worker = threading.Thread(target=processor.run, kwargs={"exit_when_idle_s": 5.0}, daemon=True)
    # The live page (read-only admin server on loopback) while the demo runs.
    feed = LiveFeed()
    sampler = Sampler(feed, lambda: processor.engine, processor.membership.state)
    page = AdminServer(config.name, processor.lifecycle.registry, processor.lifecycle.queue.submit, processor.store,
                       token=None, host="127.0.0.1", port=dashboard_port, feed=feed)
    echo(f"live page: http://127.0.0.1:{page.start()}/dashboard")
    sampler.start()
    worker.start()
    echo(f"replaying {len(rows)} events of {dataset} at {rate:.0f}/s, concept switch every "
         f"{drift_every}, labels {label_delay} events late")
    producer = threading.Thread(
        target=replay, args=(config, rows), kwargs={"label_delay": label_delay, "rate": rate}, daemon=True
    )
    producer.start()

    watcher = make_consumer(config, group_id=f"driftline-demo-{uuid.uuid4().hex[:8]}",
                            **{"enable.partition.eof": False})
    watcher.assign([TopicPartition(config.topics.drift, 0, OFFSET_BEGINNING),
                    TopicPartition(config.topics.versions, 0, OFFSET_BEGINNING)])
    drift_seen, versions_seen = 0, 0
    started = time.monotonic()
    last_status = 0.0
    try:
        while worker.is_alive():
            for msg in watcher.consume(100, timeout=0.2):
                if msg.error() is not None:
                    continue
                body = orjson.loads(msg.value())
                if msg.topic() == config.topics.drift:
                    drift_seen += 1
                    before = body["metrics_before"].get("rolling_accuracy")
                    after = body["metrics_after"].get("rolling_accuracy")
                    echo(f"  DRIFT  {body['detector']:<12} at example {body['position']:>6}  "
                         f"rolling accuracy {_pct(before)} -> {_pct(after)}  action={body['action']}")
                else:
                    versions_seen += 1
                    echo(f"  VERSION v{body['version']:<4} trigger={body['trigger']:<8} "
                         f"examples={body['examples_seen']:>6}  {body['payload_bytes']} bytes")
            now = time.monotonic()
            engine = processor.engine
            if engine is not None and now - last_status >= 2.0:
                last_status = now
                values = engine.scores.values()
                echo(f"[{now - started:5.1f}s] predictions {engine.counters.predictions:>6}  "
                     f"learned {engine.n_learned:>6}  rolling accuracy {_pct(values.get('rolling_accuracy'))}  "
                     f"drift events {engine.counters.drift_events}  model v{engine.version}")
    finally:
        watcher.close()
    worker.join()
    sampler.stop()
    page.stop()
    engine = processor.engine
    assert engine is not None
    return {
        "model": config.name,
        "events": len(rows),
        "seconds": round(time.monotonic() - started, 1),
        "examples_learned": engine.n_learned,
        "accuracy": engine.scores.values().get("accuracy"),
        "drift_events": engine.counters.drift_events,
        "versions": engine.version,
        "dead_letters": engine.counters.dead_letters,
    }


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def explore_commands(config: DeploymentConfig, program: str = "driftline", config_path: str | None = None,
                     store: str | None = None) -> list[str]:
    """Commands to look at what the demo produced, each complete (broker, name, config):
    they work as printed from the same directory, whatever port the broker is on.

    >>> from driftline.config import load_config
    >>> explore_commands(load_config(name="d", kafka={"bootstrap_servers": "127.0.0.1:29092"}))[0]
    'driftline --bootstrap 127.0.0.1:29092 --name d tail drift --from-beginning'
    """
    base = [program, "--bootstrap", config.kafka.bootstrap_servers, "--name", config.name]
    if config_path:
        base += ["-c", config_path]
    if store:
        base += ["--store", store]
    return [shlex.join(base + args) for args in (
        ["tail", "drift", "--from-beginning"],
        ["tail", "predictions", "--max", "5"],
        ["models", "list"],
        ["report", "-o", "report.html"],
    )]
