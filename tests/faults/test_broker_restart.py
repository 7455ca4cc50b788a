"""Scenario 2: stop and restart the broker mid-stream; the processor rides through.

This test runs its own broker on ``FAULTS_RESTART_PORT`` (default 29192) with
scripts/kafka.sh, so the shared test broker is never touched. ``kafka.sh stop`` (without
``--clean``) keeps the data, as a rolling restart or a crash-and-reboot would. One
processor subprocess runs through every outage; nobody restarts it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from driftline.datasets import stream
from driftline.runtime.processor import EXIT_HUNG
from driftline.runtime.replay import encode_features

pytestmark = pytest.mark.faults

# Below the kernel's ephemeral range (32768-60999 here): a port inside it can be taken as the
# local port of one of the suite's own outgoing connections (a CI run failed so: "Address
# already in use" on 39192). The controller gets PORT + 1000, also below it.
PORT = int(os.environ.get("FAULTS_RESTART_PORT", "29192"))
DELAY = 100


def _kafka(harness, command: str, *args: str) -> None:
    env = {**os.environ, "KAFKA_PORT": str(PORT), "KAFKA_HEAP": "512m"}
    subprocess.run([str(harness.KAFKA_SH), command, *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, timeout=180)


@pytest.fixture
def own_broker(harness):
    _kafka(harness, "start")
    yield f"127.0.0.1:{PORT}"
    _kafka(harness, "stop", "--clean")


def test_broker_restart_mid_stream(own_broker, harness, invariants, signing_key, tmp_path):
    n_events = harness.scaled(20_000, soak=200_000)
    n_restarts = harness.scaled(2, soak=6)
    rate = 1_000
    config = harness.new_config(own_broker, tmp_path / "versions",
                                checkpoint={"every_examples": 2_000},
                                processor={"commit_interval_ms": 100, "batch_size": 500})
    rows = ((encode_features(x), y) for x, y in stream("synth:sea", limit=n_events, seed=5))
    producer, produced = harness.replay_in_background(config, rows, label_delay=DELAY, rate=rate, n_rows=n_events)
    # The processor exits with EXIT_HUNG when librdkafka hangs in a transactional call after a
    # broker crash (see Processor._start_watchdog); this test is then its supervisor.
    runner = harness.ProcessorRunner(config, tmp_path, signing_key, env={"DRIFTLINE_TXN_HANG_TIMEOUT_S": "45"})
    # Idle exit well beyond an outage: the processor must wait the broker out, not leave.
    proc = runner.start("--exit-when-idle", "40")
    supervisor_restarts = 0

    def supervise():
        nonlocal proc, supervisor_restarts
        if proc.poll() is not None and proc.returncode == EXIT_HUNG:
            supervisor_restarts += 1
            proc = runner.start("--exit-when-idle", "40")
        assert proc.poll() is None, f"the processor stopped ({proc.returncode}):\n{runner.log_text()[-3000:]}"

    rng = random.Random(99)
    downtimes: list[float] = []
    modes: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while '"processing"' not in runner.log_text() and time.monotonic() < deadline:
            assert proc.poll() is None, runner.log_text()[-3000:]
            time.sleep(0.1)
        for r in range(n_restarts):
            time.sleep(rng.uniform(1.0, 4.0))
            supervise()
            stopped = time.monotonic()
            if r % 2 == 0:  # a crash: SIGKILL, no controlled shutdown, open transactions left behind
                pid_file = harness.ROOT / ".cache" / "kafka-data" / str(PORT) / "kafka.pid"
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGKILL)
                while os.path.exists(f"/proc/{pid}") and "zombie" not in _state(pid):
                    time.sleep(0.1)
                modes.append("sigkill")
            else:
                _kafka(harness, "stop")
                modes.append("graceful")
            time.sleep(rng.uniform(2.0, 8.0))
            _kafka(harness, "start")
            downtimes.append(round(time.monotonic() - stopped, 1))
        producer.join(timeout=n_events / rate + 300)
        assert "error" not in produced, produced.get("error")
        assert produced.get("n") == n_events
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                if proc.poll() == 0:
                    break
                if proc.poll() is not None:
                    supervise()
                time.sleep(0.5)
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: dumps every thread's stack
            proc.wait()
            pytest.fail(f"the processor hung after the broker restarts:\n{runner.log_text()[-4000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = runner.log_text()
    assert proc.returncode == 0, f"the processor failed ({proc.returncode}):\n{log[-4000:]}"
    assert runner.runs == 1 + supervisor_restarts

    figures = invariants(config, signing_key, predicted=(f"e{i}" for i in range(n_events)), learned=n_events)
    harness.report("broker_restart", events=n_events, labels=n_events, broker_restarts=n_restarts,
                   modes=modes, downtime_s=downtimes, processor_restarts=supervisor_restarts, lost=0, duplicated=0,
                   versions=figures["version"], retry_warnings=log.count('"retrying"'),
                   aborted_batches=log.count("transaction aborted"))


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((line for line in fh if line.startswith("State:")), "")
    except OSError:
        return "zombie"
