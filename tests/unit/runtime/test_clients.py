"""Client settings: Driftline's defaults, and per-client overrides that cannot break guarantees."""

from __future__ import annotations

import pytest

from driftline.config import load_config
from driftline.exceptions import ConfigError
from driftline.runtime.clients import consumer_config, producer_config


def test_per_client_overrides_win_over_the_defaults_and_stay_on_their_client():
    config = load_config(name="m", kafka={"producer": {"linger.ms": "1"}, "consumer": {"fetch.wait.max.ms": "10"}})
    producer, consumer = producer_config(config, transactional=True), consumer_config(config)
    assert producer["linger.ms"] == "1" and consumer["fetch.wait.max.ms"] == "10"
    assert "fetch.wait.max.ms" not in producer and "linger.ms" not in consumer
    assert producer["transactional.id"] == config.transactional_id  # the rest is untouched
    assert consumer["isolation.level"] == "read_committed"


def test_without_overrides_the_defaults_hold():
    config = load_config(name="m")
    assert producer_config(config, transactional=False)["linger.ms"] == 5
    assert consumer_config(config)["fetch.wait.max.ms"] == 50


@pytest.mark.parametrize("client, key", [("producer", "enable.idempotence"), ("producer", "transactional.id"),
                                         ("consumer", "isolation.level"), ("consumer", "enable.auto.commit")])
def test_settings_the_guarantees_depend_on_cannot_be_overridden(client, key):
    with pytest.raises(ConfigError, match=key):
        load_config(name="m", kafka={client: {key: "x"}})


def test_at_least_once_outputs_wait_less_for_a_batch_unless_told_otherwise():
    alos = load_config(name="m", processor={"guarantee": "at_least_once"})
    assert producer_config(alos, transactional=False)["linger.ms"] < producer_config(load_config(name="m"), True)["linger.ms"]
    told = load_config(name="m", processor={"guarantee": "at_least_once"}, kafka={"producer": {"linger.ms": "20"}})
    assert producer_config(told, transactional=False)["linger.ms"] == "20"



def test_every_client_logs_librdkafka_lines_through_driftline(monkeypatch):
    from driftline.observability.logs import LibrdkafkaLog
    from driftline.runtime import clients

    seen = []
    for kind in ("Producer", "Consumer", "AdminClient"):
        monkeypatch.setattr(clients, kind, seen.append)
    config = load_config(name="m")
    clients.make_producer(config), clients.make_consumer(config), clients.make_admin(config)
    assert len(seen) == 3 and all(isinstance(conf["logger"], LibrdkafkaLog) for conf in seen)
