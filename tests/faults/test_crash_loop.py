"""Scenario 1: kill -9 the processor at many seeded random moments of a live stream.

A producer thread publishes the stream at a steady rate while the processor subprocess is
started, killed with SIGKILL at a random moment (during start-up and restore, during the
replay that follows a restore, mid-batch, mid-transaction, mid-snapshot), and restarted,
over and over. A last run drains the stream; then the invariants must hold exactly.
"""

from __future__ import annotations

import random
import time

import pytest

from driftline.datasets import stream
from driftline.runtime.replay import encode_features

pytestmark = pytest.mark.faults

SEED = 20240917
DELAY = 200


def test_crash_loop_kill_minus_nine(make_config, harness, invariants, signing_key, tmp_path, record_property):
    n_events = harness.scaled(20_000, soak=1_000_000)
    n_kills = harness.scaled(10, soak=120)
    rate = harness.scaled(800, soak=3_000)  # events/s: the stream lasts about as long as the kill loop
    config = make_config(
        checkpoint={"every_examples": 1_000 if n_events <= 100_000 else 5_000},
        processor={"commit_interval_ms": 50, "batch_size": 200},
    )
    rows = ((encode_features(x), y) for x, y in stream("synth:agrawal", limit=n_events, seed=11))
    producer, produced = harness.replay_in_background(config, rows, label_delay=DELAY, rate=rate, n_rows=n_events)

    runner = harness.ProcessorRunner(config, tmp_path, signing_key)
    rng = random.Random(SEED)
    phases = {"startup": 0, "running": 0}
    kills = 0
    started = time.monotonic()
    stop_at = started + 120 + 4 * n_kills + n_events / 500  # the test stops by itself
    while (kills < n_kills or producer.is_alive()) and time.monotonic() < stop_at:
        proc = runner.start("--exit-when-idle", "60")
        phase = "startup" if rng.random() < 0.25 else "running"
        if phase == "startup":
            # Killed while importing, fencing, restoring, or in the first replayed batches.
            time.sleep(rng.uniform(0.05, 1.5))
        else:
            deadline = time.monotonic() + 60
            while '"processing"' not in runner.log_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 2.5))
        if harness.kill9(proc):
            kills += 1
            phases["running" if '"processing"' in runner.log_text() else "startup"] += 1
        else:
            pytest.fail(f"the processor exited by itself ({proc.returncode}):\n{runner.log_text()[-3000:]}")
    assert kills >= n_kills and not producer.is_alive(), f"stopped at its bound after {kills} kills"
    producer.join()
    assert "error" not in produced, produced.get("error")
    assert produced["n"] == n_events

    final = runner.run("--exit-when-idle", "6", timeout=600 + n_events / 200)
    assert final.returncode == 0, final.stdout.decode()[-3000:]

    figures = invariants(config, signing_key, predicted=(f"e{i}" for i in range(n_events)), learned=n_events)
    record_property("figures", {**figures, "kills": kills, "phases": phases, "events": n_events})
    harness.report("crash_loop", events=n_events, labels=n_events, kills=kills, kill_phases=phases,
                   restarts=runner.runs, lost=0, duplicated=0, versions=figures["version"],
                   seconds=round(time.monotonic() - started, 1))
