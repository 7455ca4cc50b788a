"""`driftline tail` and `read_committed` on the real broker: messages, and clear errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from driftline.cli import main
from driftline.exceptions import KafkaSetupError
from driftline.runtime.tail import follow, read_committed

pytestmark = pytest.mark.integration


def test_follow_prints_what_was_produced(make_config):
    config = make_config()
    producer = Producer({"bootstrap.servers": config.kafka.bootstrap_servers})
    for i in range(3):
        producer.produce(config.topics.features, key=f"k{i}".encode(), value=b'{"id":"k%d","features":{"x":%d}}' % (i, i))
    assert producer.flush(10) == 0
    lines = list(follow(config, config.topics.features, from_beginning=True, max_messages=3, idle_timeout=10))
    assert [line.split(" key=")[1].split(" ")[0] for line in lines] == ["k0", "k1", "k2"]
    assert lines[2].splitlines()[1:] == ["  {", '    "id": "k2",', '    "features": {', '      "x": 2', "    }", "  }"]
    raw = list(follow(config, config.topics.features, max_messages=2, idle_timeout=10, last=2, style="json"))
    assert raw == ['{"id":"k1","features":{"x":1}}', '{"id":"k2","features":{"x":2}}']


@pytest.mark.parametrize("reader", [
    lambda config: list(follow(config, config.topics.predictions, idle_timeout=30)),
    lambda config: read_committed(config, config.topics.predictions, idle_s=30),
])
def test_a_missing_topic_is_an_error_not_a_silent_wait(make_config, reader):
    config = make_config(create=False)  # before, both readers waited out their idle timeout and returned nothing
    with pytest.raises(KafkaSetupError, match=f"{config.topics.predictions} does not exist"):
        reader(config)


def test_the_cli_exits_with_the_reason(make_config):
    config = make_config(create=False)
    result = CliRunner().invoke(main, ["--name", config.name, "--bootstrap", config.kafka.bootstrap_servers,
                                       "tail", "predictions", "--timeout", "30"])
    assert result.exit_code == 1
    assert "does not exist: run `driftline topics create`" in result.output
