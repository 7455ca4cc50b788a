"""Provisioning topics with the AdminClient on the real broker."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import NewTopic

from driftline.exceptions import KafkaSetupError
from driftline.runtime.clients import make_admin
from driftline.runtime.topics import create_topics, partition_counts

pytestmark = pytest.mark.integration


def test_create_is_idempotent_and_sizes_topics(make_config):
    config = make_config(partitions=3, create=False)
    first = create_topics(config)
    again = create_topics(config)
    assert set(first.values()) == {"created"}
    assert set(again.values()) == {"exists"}
    counts = partition_counts(config)
    assert counts[config.topics.features] == counts[config.topics.labels] == 3
    assert counts[config.topics.versions] == 1


def test_features_and_labels_must_be_copartitioned(make_config):
    config = make_config(create=False)
    admin = make_admin(config)
    futures = admin.create_topics([NewTopic(config.topics.features, 2, 1), NewTopic(config.topics.labels, 3, 1)])
    for future in futures.values():
        future.result()
    with pytest.raises(KafkaSetupError, match="co-partitioned"):
        create_topics(config)
