"""A tampered or foreign snapshot is refused with a clear error and never unpickled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftline.datasets import stream
from driftline.exceptions import SnapshotIntegrityError
from driftline.runtime.processor import Processor
from driftline.runtime.replay import replay

pytestmark = pytest.mark.integration


def _latest_file(config) -> Path:
    return sorted(Path(config.checkpoint.store_url, config.name).glob("v*.snap"))[-1]


@pytest.fixture
def trained(make_config, signing_key):
    config = make_config()
    replay(config, list(stream("synth:sea", limit=500)), label_delay=5, n_rows=500)
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=2)
    return config


def test_a_flipped_byte_is_refused_at_restore(trained, signing_key):
    path = _latest_file(trained)
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0x01  # inside the pickle
    path.write_bytes(bytes(blob))
    with pytest.raises(SnapshotIntegrityError, match="signature does not verify"):
        Processor(trained, signing_key, registry=CollectorRegistry()).restore()


def test_a_snapshot_signed_with_another_key_stops_the_cli_with_a_clear_message(trained, tmp_path):
    toml = tmp_path / "d.toml"
    toml.write_text(
        f'name = "{trained.name}"\n[kafka]\nbootstrap_servers = "{trained.kafka.bootstrap_servers}"\n'
        f'[checkpoint]\nstore_url = "{trained.checkpoint.store_url}"\n'
    )
    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": "not-the-key-it-was-signed-with"}
    result = subprocess.run([sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--max-seconds", "5"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "signature does not verify" in result.stderr
    assert "not-the-key" not in result.stderr  # the key itself never reaches the output


def test_a_truncated_snapshot_is_refused(trained, signing_key):
    path = _latest_file(trained)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(SnapshotIntegrityError):
        Processor(trained, signing_key, registry=CollectorRegistry()).restore()
