"""What the live page and the report cost: permutation importance on the hot path, one
sampler tick, and the size and render time of a 50-feature report.

Usage: .venv/bin/python scripts/bench/monitoring.py
Prints events per second with and without permutation importance (GaussianNB, 8 features,
20,000 events), the mean time of ``Sampler.sample()`` over 200 ticks and the report's bytes
and render time, on the engine of tests/unit/reports/test_report.py (50 features).
"""

from __future__ import annotations

import os
import random
import sys
import time

import orjson

from driftline.config import DeploymentConfig, ModelConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.dashboard import LiveFeed, Sampler
from driftline.reports import report_data, render_html

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "unit", "reports"))
from test_report import drifting_run  # noqa: E402


def records(n: int, d: int = 8, seed: int = 1) -> list[InputRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {f"f{j}": rng.random() for j in range(d)}
        key = f"e{i}".encode()
        out.append(InputRecord("features", 0, i, 2 * i, key, orjson.dumps({"id": f"e{i}", "features": x})))
        out.append(InputRecord("labels", 0, i, 2 * i + 1, key, orjson.dumps({"id": f"e{i}", "label": x["f0"] > 0.5})))
    return out


def main() -> None:
    recs = records(20_000)
    for permutation in (True, False):
        engine = Engine(DeploymentConfig(name="b", model=ModelConfig(preset="gaussian_naive_bayes")))
        if not permutation:
            engine.permutation = None
        started = time.perf_counter()
        for record in recs:
            engine.process(record, 0)
        rate = 20_000 / (time.perf_counter() - started)
        print(f"gaussian_naive_bayes {'with' if permutation else 'without'} permutation importance: {rate:.0f} events/s")
    engine, _ = drifting_run()
    feed = LiveFeed()
    sampler = Sampler(feed, lambda: engine, lambda: {"version": engine.version, "scores": engine.scores.values(), "lag": {}})
    started = time.perf_counter()
    for _ in range(200):
        sampler.sample()
    print(f"sampler tick, 50 features: {(time.perf_counter() - started) / 200 * 1e3:.2f} ms")
    meta = {"name": "rep", "version": 3, "parent": 2, "trigger": "drift", "examples_seen": engine.n_learned,
            "created_at": 1, "metrics": engine.scores.values()}
    started = time.perf_counter()
    html = render_html(report_data(meta, engine, [meta]))
    print(f"report, 50 features: {len(html.encode())} bytes in {(time.perf_counter() - started) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
