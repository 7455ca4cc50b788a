"""Data-drift benchmark: false alarms on stationary streams, hit rate and delay on shifted ones.

Each stream has five N(0, 1) numeric features and one categorical feature (a, b, c with
probabilities 0.5, 0.3, 0.2). Shifted streams change one feature at event ``SHIFT``: a
0.5σ mean shift, a doubled variance, or categorical frequencies 0.5/0.3/0.2 -> 0.35/0.35/0.3.
A hit is an event naming the changed feature within ``window_size`` events of the shift.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from driftline.config import DataDriftConfig
from driftline.core.datadrift import DataDriftWatch

NUMERIC = [f"x{i}" for i in range(5)]
KINDS = {**{n: "num" for n in NUMERIC}, "c": "cat"}
SHIFT = 3000
SCENARIOS = {
    "mean +0.5σ": ("x0", lambda rng: rng.gauss(0.5, 1.0)),
    "variance x2": ("x0", lambda rng: rng.gauss(0.0, 2 ** 0.5)),
    "categorical 50/30/20 -> 35/35/30": ("c", lambda rng: rng.choices("abc", (0.35, 0.35, 0.3))[0]),
}


def rows(n: int, seed: int, scenario: str | None = None) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        row: dict[str, Any] = {name: rng.gauss(0.0, 1.0) for name in NUMERIC}
        row["c"] = rng.choices("abc", (0.5, 0.3, 0.2))[0]
        if scenario is not None and i >= SHIFT:
            feature, draw = SCENARIOS[scenario]
            row[feature] = draw(rng)
        out.append(row)
    return out


def detections(config: DataDriftConfig, data: list[dict[str, Any]]) -> tuple[list[tuple[int, list[str]]], float]:
    watch = DataDriftWatch(config, KINDS)
    found = []
    started = time.perf_counter()
    for i, row in enumerate(data):
        result = watch.observe(row, None)
        if result is not None:
            found.append((i, result.newly))
    return found, time.perf_counter() - started


def run(config: DataDriftConfig, stationary_runs: int = 20, stationary_n: int = 20_000, shifted_runs: int = 50) -> dict[str, Any]:
    alarms, events, seconds = 0, 0, 0.0
    for seed in range(stationary_runs):
        found, s = detections(config, rows(stationary_n, 10_000 + seed))
        alarms += len(found)
        events += stationary_n
        seconds += s
    out: dict[str, Any] = {"config": config.model_dump(), "stationary": {
        "runs": stationary_runs, "events": events, "false_alarms": alarms,
        "false_per_10k": 10_000 * alarms / events, "us_per_event": 1e6 * seconds / events}}
    window = config.window_size
    for name, (feature, _) in SCENARIOS.items():
        hits, delays, early = 0, [], 0
        for seed in range(shifted_runs):
            found, _ = detections(config, rows(SHIFT + 2 * window, seed, name))
            early += sum(1 for i, _ in found if i < SHIFT)
            first = next((i for i, feats in found if i >= SHIFT and feature in feats), None)
            if first is not None and first - SHIFT < window:
                hits += 1
                delays.append(first - SHIFT)
        out[name] = {"runs": shifted_runs, "hit_rate": hits / shifted_runs,
                     "mean_delay": statistics.fmean(delays) if delays else None,
                     "median_delay": statistics.median(delays) if delays else None,
                     "false_before_shift": early}
    return out


VARIANTS = {
    "default (ref 1000, window 500, step 100, α 0.001, Holm)": {},
    "α 0.01": {"alpha": 0.01},
    "step 25": {"step": 25},
    "Bonferroni": {"correction": "bonferroni"},
    "BH": {"correction": "bh"},
}


def task(label: str) -> dict[str, Any]:
    return {"variant": label, **run(DataDriftConfig(enabled=True, **VARIANTS[label]))}
