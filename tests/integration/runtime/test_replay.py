"""`replay` on the real broker: every message acknowledged, or a DeliveryError that counts them."""

from __future__ import annotations

import base64
import os

import pytest

from driftline.exceptions import DeliveryError
from driftline.runtime.replay import replay

pytestmark = pytest.mark.integration


def test_messages_the_cluster_refuses_are_counted(make_config):
    # The features topic takes at most ~1 MB per message (the broker's default); this row is
    # 1.5 MB of incompressible text, so the broker refuses it. Before, replay returned 3.
    config = make_config(processor={"max_message_bytes": 4_000_000})
    big = base64.b64encode(os.urandom(1_100_000)).decode()
    rows = [({"x": 1.0}, 0), ({"x": 2.0, "blob": big}, 1), ({"x": 3.0}, 0)]
    with pytest.raises(DeliveryError, match="1 of 6 messages were not delivered") as failed:
        replay(config, rows, n_rows=len(rows))
    assert (failed.value.undelivered, failed.value.total) == (1, 6)


def test_all_delivered(make_config):
    config = make_config()
    assert replay(config, [({"x": float(i)}, i % 2) for i in range(20)], label_delay=3, n_rows=20) == 20
