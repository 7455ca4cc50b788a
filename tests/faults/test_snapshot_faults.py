"""Scenario 3: snapshot storage faults never corrupt or hide the last good version.

* Disk full: the version store lives on a tiny tmpfs (this needs root to mount; the test
  is skipped otherwise) that is filled up mid-stream. Snapshot writes fail with ENOSPC;
  the processor keeps serving, logs the failure and counts it in
  ``driftline_snapshot_failures_total``; the last good version stays the latest and
  verifies; once space is back, a restart restores it and replays exactly.
* Killed mid-write: a large model (adaptive random forest) is SIGKILLed the moment a
  snapshot's temporary file appears; the partial file never shows as a version, and the
  restart restores the last good one.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.datasets import stream
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.faults


def _rows(n: int, seed: int, start: int = 0):
    rows = [(encode_features(x), y) for x, y in stream("synth:sea", limit=start + n, seed=seed)]
    return rows[start:]


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    """Take every free byte of the file system ``directory`` is on."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 64, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_keeps_last_good_version(tiny_disk, harness, invariants, signing_key, tmp_path, caplog):
    n = harness.scaled(3_000)
    config = harness.new_config(harness.bootstrap_servers(), tiny_disk, checkpoint={"every_examples": 500},
                                processor={"commit_interval_ms": 100})
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    runner = harness.ProcessorRunner(config, tmp_path, signing_key)
    rows = _rows(3 * n, seed=3)

    # 1. Healthy: versions are cut.
    replay(config, rows[:n], label_delay=50, id_prefix="a")
    assert runner.run("--exit-when-idle", "4").returncode == 0, runner.log_text()[-3000:]
    good = store.latest()
    assert good is not None and good > 1
    good_meta = store.meta(good)

    # 2. Disk full: every snapshot write fails, the processor keeps serving.
    filler = _fill(tiny_disk)
    replay(config, rows[n:2 * n], label_delay=50, id_prefix="b")
    registry = CollectorRegistry()
    with caplog.at_level(logging.ERROR, logger="driftline.processor"):
        engine = Processor(config, signing_key, registry=registry).run(exit_when_idle_s=4)
    failures = registry.get_sample_value("driftline_snapshot_failures_total", {"model": config.name})
    assert failures and failures >= 2, failures  # periodic ones and the one at shutdown
    # Failed attempts back off like successful ones: at most one per every_examples learned
    # (plus the one at shutdown), not one per batch.
    assert failures <= n // config.checkpoint.every_examples + 2, failures
    logged = [r for r in caplog.records if r.getMessage().startswith("snapshot failed")]
    assert len(logged) == failures
    assert "No space left on device" in str(logged[0].__dict__.get("fields"))
    assert engine.n_learned == 2 * n  # it learned all along, in memory
    assert store.latest() == good and store.meta(good) == good_meta
    store.load(good)  # still verifies
    leftovers = [p.name for p in tiny_disk.joinpath(config.name).iterdir() if ".tmp-" in p.name]

    # 3. Space is back: a restart restores the last good version and replays exactly.
    filler.unlink()
    for name in leftovers:  # what an operator (or a janitor) would clean; versions never need it
        tiny_disk.joinpath(config.name, name).unlink()
    replay(config, rows[2 * n:], label_delay=50, id_prefix="c")
    done = runner.run("--exit-when-idle", "4")
    assert done.returncode == 0, runner.log_text()[-3000:]
    assert f'"version":{good}' in runner.log_text().replace(" ", "")  # restored the last good one
    ids = [f"{p}{i}" for p in "abc" for i in range(n)]
    figures = invariants(config, signing_key, predicted=ids, learned=3 * n)
    harness.report("snapshot_disk_full", events=3 * n, labels=3 * n, failed_snapshots=int(failures),
                   partial_files_left=len(leftovers), last_good_version=good, final_version=figures["version"],
                   lost=0, duplicated=0)


def test_kill_mid_snapshot_write_restores_last_good(make_config, harness, invariants, reader, signing_key, tmp_path):
    n = harness.scaled(4_000)
    attempts = harness.scaled(6, soak=20)
    config = make_config(model={"preset": "adaptive_random_forest", "params": {"n_models": 5}},
                         checkpoint={"every_examples": 400}, processor={"commit_interval_ms": 100})
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    directory = Path(config.checkpoint.store_url) / config.name
    replay(config, _rows(n, seed=8), label_delay=50)
    runner = harness.ProcessorRunner(config, tmp_path, signing_key)

    mid_write = 0
    for _ in range(attempts):
        before = set(os.listdir(directory)) if directory.exists() else set()
        proc = runner.start("--exit-when-idle", "30")
        deadline = time.monotonic() + 120
        caught = None
        while proc.poll() is None and time.monotonic() < deadline:
            if directory.exists():
                tmp = [f for f in os.listdir(directory) if ".tmp-" in f and f not in before]
                if tmp:
                    proc.kill()
                    caught = tmp[0]
                    break
            time.sleep(0.001)
        proc.wait()
        if caught is None:
            break  # the stream is done
        if (directory / caught).exists():
            mid_write += 1  # killed between open() and rename: a partial file was left behind
        latest = store.latest()
        if latest is not None:  # (None: killed while writing the very first version)
            store.load(latest)  # the latest version is always whole and verifies
        assert not (directory / caught.split(".tmp-")[0]).exists() or store.load(int(caught[1:9]))
    assert mid_write >= 1, "no kill landed mid-write"
    done = runner.run("--exit-when-idle", "5", timeout=900)
    assert done.returncode == 0, runner.log_text()[-3000:]
    nulls = sum(orjson.loads(m.value())["prediction"] is None for m in reader(config, config.topics.predictions))
    assert nulls <= 100, nulls  # only the untrained forest's first answers
    figures = invariants(config, signing_key, predicted=[f"e{i}" for i in range(n)], learned=n, unscored=nulls)
    harness.report("snapshot_kill_mid_write", events=n, labels=n, kills=runner.runs - 1,
                   kills_with_partial_file=mid_write, model="ARFClassifier(n_models=5)",
                   final_version=figures["version"], lost=0, duplicated=0)
