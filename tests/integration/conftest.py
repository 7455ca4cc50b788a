"""Integration fixtures: a real Kafka broker on loopback, started once per session.

Set ``DRIFTLINE_TEST_BOOTSTRAP`` to use a broker that is already running; otherwise
``scripts/kafka.sh start`` starts one on ``KAFKA_TEST_PORT`` (default 28092).
"""

from __future__ import annotations

import itertools
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


class LoggedProcess(subprocess.Popen):
    """A child process whose stdout and stderr go to files, read by :meth:`communicate`.

    A pipe that nobody reads while the child runs blocks the child once 64 KiB of logs are
    written to it: a long multi-process test would then stall, not fail.
    """

    def __init__(self, command: list[str], log_dir: Path, name: str, **kwargs) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = log_dir / f"{name}-{next(_spawned)}"
        self.out_path, self.err_path = stem.with_suffix(".out"), stem.with_suffix(".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            super().__init__(command, stdout=out, stderr=err, **kwargs)

    def communicate(self, input=None, timeout: float | None = None) -> tuple[bytes, bytes]:  # noqa: A002
        self.wait(timeout)
        return self.out_path.read_bytes(), self.err_path.read_bytes()

    def stderr_tail(self, chars: int = 2000) -> str:
        return self.err_path.read_bytes().decode(errors="replace")[-chars:]


_spawned = itertools.count()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., LoggedProcess]]:
    """Start ``command`` as a :class:`LoggedProcess` logging under ``tmp_path/logs``; any
    still running at the end of the test is killed."""
    started: list[LoggedProcess] = []

    def start(command: list[str], name: str, **kwargs) -> LoggedProcess:
        proc = LoggedProcess(command, tmp_path / "logs", name, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


read_all = read_committed  # every committed message of a topic, until idle


@pytest.fixture
def reader() -> Iterator[Callable[..., list]]:
    yield read_all


def _kill_runs(config: DeploymentConfig, toml: Path, signing_key: bytes, *, runs: int, seed: int,
               max_pause_s: float = 0.3, on_kill: Callable[[], None] | None = None) -> int:
    """Run ``driftline run`` over the pre-loaded input ``runs`` times, each killed with SIGKILL
    a seeded moment after its second new version (mid-batch, mid-transaction or
    mid-snapshot), then once to the end; the number of kills (a run may finish first)."""
    import random
    import signal
    import sys
    import time

    from driftline.versions.store import VersionStore

    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    command = [sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--exit-when-idle", "4"]
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    rng = random.Random(seed)
    kills = 0
    for _ in range(runs):
        before = store.latest() or 0
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(1200):  # up to 60 s for two versions; a run that ends sooner is not killed
            if (store.latest() or 0) > before + 1 or proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, max_pause_s))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            if on_kill is not None:
                on_kill()
        proc.wait()
    final = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    return kills


@pytest.fixture
def kill_runs() -> Callable[..., int]:
    """:func:`_kill_runs`: kill -9 a processor at seeded moments, then run it to the end."""
    return _kill_runs


def _reference_records(rows, delay: int) -> list:
    """The records of ``replay(config, rows, label_delay=delay)`` (one partition, timestamps =
    row index, labels ``delay`` later) in the processor's event-time order."""
    import orjson

    from driftline.core.events import InputRecord

    records = []
    for i, (x, y) in enumerate(rows):
        key = f"e{i}".encode()
        records.append(InputRecord("features", 0, i, i, key, orjson.dumps({"id": f"e{i}", "features": x})))
        records.append(InputRecord("labels", 0, i, i + delay, key, orjson.dumps({"id": f"e{i}", "label": y})))
    records.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
    return records


@pytest.fixture
def reference_records() -> Callable[..., list]:
    """:func:`_reference_records`: what an uninterrupted in-memory run is fed."""
    return _reference_records
