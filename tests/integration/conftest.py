"""Integration fixtures: a real Kafka broker on loopback, started once per session.

Set ``DRIFTLINE_TEST_BOOTSTRAP`` to use a broker that is already running; otherwise
``scripts/kafka.sh start`` starts one on ``KAFKA_TEST_PORT`` (default 28092).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from driftline.config import DeploymentConfig, load_config
from driftline.runtime.tail import read_committed
from driftline.runtime.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def signing_key() -> bytes:
    return b"integration-test-key"


@pytest.fixture(scope="session")
def bootstrap() -> str:
    if servers := os.environ.get("DRIFTLINE_TEST_BOOTSTRAP"):
        return servers
    port = os.environ.get("KAFKA_TEST_PORT", "28092")
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True,
                   env={**os.environ, "KAFKA_PORT": port}, stdout=subprocess.DEVNULL)
    return f"127.0.0.1:{port}"


@pytest.fixture
def make_config(bootstrap: str, tmp_path: Path) -> Callable[..., DeploymentConfig]:
    """A fresh deployment (unique name, own topics, own version store) per call."""

    def make(partitions: int = 1, create: bool = True, **overrides) -> DeploymentConfig:
        name = f"it-{uuid.uuid4().hex[:10]}"
        settings = {
            "name": name,
            "partitions": partitions,
            "kafka": {"bootstrap_servers": bootstrap},
            "checkpoint": {"store_url": str(tmp_path / "versions"), "every_examples": 1000,
                           **overrides.pop("checkpoint", {})},
            "processor": {"max_idle_ms": 3000, **overrides.pop("processor", {})},
            **overrides,
        }
        config = load_config(**settings)
        if create:
            create_topics(config)
        return config

    return make


read_all = read_committed  # every committed message of a topic, until idle


@pytest.fixture
def reader() -> Iterator[Callable[..., list]]:
    yield read_all
