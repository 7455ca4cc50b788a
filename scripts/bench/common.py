"""Shared pieces of the benchmark suite: streams, River's bare loops, pre-loading, memory.

Everything here is deterministic: the same spec gives the same events in the same order,
so the limit (River in memory), Driftline and the peers all see the same data.
"""

from __future__ import annotations

import os
import random
import resource
import time
from collections.abc import Iterator
from typing import Any

ELEC = os.environ.get("DRIFTLINE_BENCH_ELEC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "elec.csv"))


def synthetic(n_features: int, seed: int = 7) -> Iterator[tuple[dict[str, float], int]]:
    """Endless N(0,1) features, label = sign of a fixed random linear score plus noise."""
    rng = random.Random(seed)
    weights = [rng.gauss(0, 1) for _ in range(n_features)]
    names = [f"f{j}" for j in range(n_features)]
    while True:
        values = [rng.gauss(0, 1) for _ in range(n_features)]
        score = sum(w * v for w, v in zip(weights, values)) + rng.gauss(0, 0.5 * n_features**0.5)
        yield dict(zip(names, values)), int(score > 0)


def rows_of(spec: str, n: int) -> list[tuple[dict[str, Any], Any]]:
    """``elec`` (Elec2 CSV) or ``synth:<n_features>``: the first ``n`` rows, JSON-ready."""
    from driftline.runtime.replay import encode_features

    if spec == "elec":
        from driftline.datasets import stream

        return [(encode_features(x), y) for x, y in stream(ELEC, limit=n)]
    if spec.startswith("synth:"):
        gen = synthetic(int(spec.split(":", 1)[1]))
        return [next(gen) for _ in range(n)]
    raise ValueError(f"unknown data spec {spec!r}")


def river_loop(model, rows, delay: int) -> dict[str, float]:
    """River's own loop in memory, in the order Driftline processes the pre-loaded topics.

    Label ``i`` has event time ``t_i + delay``, labels sort before features at equal times,
    so just before predicting event ``i`` the model learns event ``i - delay``; the last
    ``delay`` labels are learned after the last prediction.
    """
    from river import metrics

    metric = metrics.Accuracy()
    pending = []
    started = time.perf_counter()
    for i, (x, y) in enumerate(rows):
        if i >= delay:
            xo, yo, po = pending[i - delay]
            if po is not None:
                metric.update(yo, po)
            model.learn_one(xo, yo)
        pending.append((x, y, model.predict_one(x)))
    for xo, yo, po in pending[max(0, len(rows) - delay):]:
        if po is not None:
            metric.update(yo, po)
        model.learn_one(xo, yo)
    elapsed = time.perf_counter() - started
    return {"eps": len(rows) / elapsed, "seconds": elapsed, "accuracy": metric.get()}


def river_minibatch_loop(model, rows, size: int) -> dict[str, float]:
    """River's mini-batch loop in memory: per batch of ``size`` events, build the frame from
    the event dicts (column-wise, as Driftline's mini-batch mode does), ``predict_many``,
    then ``learn_many`` (test-then-train per batch: every label of a batch is known once the
    batch has been predicted). The time of each part is reported per event."""
    import numpy as np

    from driftline.core.minibatch import to_frame

    to_frame([rows[0][0]], [rows[0][1]])  # import polars before the clock starts
    correct = build = predict = learn = 0.0
    started = time.perf_counter()
    for start in range(0, len(rows), size):
        chunk = rows[start:start + size]
        t0 = time.perf_counter()
        X, y = to_frame([x for x, _ in chunk], [t for _, t in chunk])
        t1 = time.perf_counter()
        predicted = model.predict_many(X)
        t2 = time.perf_counter()
        model.learn_many(X, y)
        t3 = time.perf_counter()
        correct += int(np.sum(np.asarray(predicted) == np.asarray(y)))
        build, predict, learn = build + t1 - t0, predict + t2 - t1, learn + t3 - t2
    elapsed = time.perf_counter() - started
    n = len(rows)
    return {"eps": n / elapsed, "seconds": elapsed, "accuracy": correct / n, "batch": size,
            "build_us": build / n * 1e6, "predict_many_us": predict / n * 1e6, "learn_many_us": learn / n * 1e6}


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentiles(values: list[float], qs=(50, 95, 99)) -> dict[str, float]:
    if not values:
        return {f"p{q}": float("nan") for q in qs}
    ordered = sorted(values)
    out = {}
    for q in qs:
        k = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
        out[f"p{q}"] = ordered[k]
    return out
