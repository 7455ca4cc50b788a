"""The fairness monitor's statistics and cost, measured (docs/governance.md).

Usage: python scripts/bench/fairness_bench.py [--seeds 20] [--events 100000] [--section all|alarms|power|delay|cost]

- alarms: fair streams (the lending stream with beta = 0, River's Agrawal function 1 by age
  band), a classifier right 90% of the time in every group; violations per 100k events
  with the defaults (every event is predicted and labelled at once).
- power: one look at a window with a true ratio of 0.7 (reference rate 0.3, reference group
  4x larger): the share of windows flagged, for the bare four-fifths rule, the rule gated by
  the z-test at alpha = 0.01, and at the default look level; the same on a fair model.
- delay: label bias beta = 0.3 injected at t0 = 30,000: events from t0 to the violation.
- cost: microseconds per event of the monitor, and of the engine with and without fairness.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time

import orjson

from driftline.config import DeploymentConfig, FairnessConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.fairness import FairnessMonitor
from driftline.core.fairness.statistics import z_test
from driftline.fairness_data import lending

METRICS = ["selection_rate", "base_rate", "tpr", "fpr"]


def _feed(mon, rows, seed):
    rng = random.Random(seed)
    alarms = 0
    for i, (x, y) in enumerate(rows):
        guess = y if rng.random() >= 0.1 else not y
        for change in mon.predicted(x, guess, i, 0) + mon.joined(x, guess, y, 0, i):
            alarms += change.state == "violation"
    return alarms


def alarms(seeds: int, events: int) -> None:
    cfg = FairnessConfig(enabled=True, attributes=[{"name": "group", "reference": "a"}], metrics=METRICS)
    total = 0
    for seed in range(seeds):
        rows = ((x, y) for x, y, _ in itertools.islice(lending(seed=seed), events))
        total += _feed(FairnessMonitor(cfg), rows, seed)
    print(f"alarms lending beta=0 (2 groups, 4 metrics): {total} violations in {seeds} x {events} events "
          f"= {total / seeds * 100_000 / events:.3f} per 100k events (look alpha {FairnessMonitor(cfg).look_alpha:g})")
    from river.datasets import synth
    age = FairnessConfig(enabled=True, attributes=[{"name": "age", "bins": [20, 40, 60], "reference": "[40,60)"}],
                         metrics=METRICS)
    n_agrawal = max(1, seeds // 4)
    total = 0
    for seed in range(1, n_agrawal + 1):
        rows = ((x, bool(y)) for x, y in synth.Agrawal(classification_function=1, seed=seed).take(events))
        total += _feed(FairnessMonitor(age), rows, seed)
    print(f"alarms Agrawal function 1 (3 age bands, 4 metrics): {total} violations in {n_agrawal} x {events} events "
          f"= {total / n_agrawal * 100_000 / events:.3f} per 100k events")


def power(trials: int = 4000) -> None:
    look = FairnessMonitor(FairnessConfig()).look_alpha
    rng = random.Random(1)
    print(f"one look, reference rate 0.3, reference group 4x larger, {trials} windows each")
    print("| n per group | true ratio | bare 4/5 rule | + z-test alpha 0.01 | + z-test at look alpha "
          f"{look:g} |\n|---|---|---|---|---|")
    for true_ratio in (1.0, 0.7):
        for n in (30, 100, 200, 500, 1000):
            bare = gated = strict = 0
            for _ in range(trials):
                n0 = 4 * n
                k0 = sum(rng.random() < 0.3 for _ in range(n0))
                k = sum(rng.random() < 0.3 * true_ratio for _ in range(n))
                if k0 == 0:
                    continue
                outside = (k / n) / (k0 / n0) < 0.8
                p = z_test(k, n, k0, n0, "less")
                bare += outside
                gated += outside and p <= 0.01
                strict += outside and p <= look
            print(f"| {n} | {true_ratio} | {bare / trials:.3f} | {gated / trials:.3f} | {strict / trials:.3f} |")


def delay(seeds: int) -> None:
    cfg = FairnessConfig(enabled=True, attributes=[{"name": "group", "reference": "a"}], metrics=["base_rate"])
    delays, early = [], 0
    for seed in range(seeds):
        mon = FairnessMonitor(cfg)
        for i, (x, label, _) in enumerate(itertools.islice(lending(seed=seed, beta=0.3, t0=30_000), 40_000)):
            if any(c.state == "violation" for c in mon.predicted(x, label, i, 0) + mon.joined(x, label, label, 0, i)):
                if i < 30_000:
                    early += 1
                    continue
                delays.append(i - 30_000)
                break
    delays.sort()
    print(f"delay beta=0.3 at t0=30000 (group b 30%, window {cfg.window}): {len(delays)}/{seeds} detected within "
          f"10000, median {delays[len(delays) // 2]} events, max {delays[-1]}, violations before t0: {early}")


def cost(events: int) -> None:
    rows = list(itertools.islice(lending(seed=1), events))
    per = float("inf")
    for _ in range(5):  # CPU time, best of 5: the machine is shared
        mon = FairnessMonitor(FairnessConfig(enabled=True, attributes=[{"name": "group"}], metrics=METRICS))
        start = time.process_time()
        for i, (x, y, _) in enumerate(rows):
            mon.predicted(x, y, i, 0)
            mon.joined(x, y, y, 0, i)
        per = min(per, (time.process_time() - start) / events * 1e6)
    print(f"cost monitor: {per:.2f} us per labelled event (one prediction + one join, 1 attribute, 4 metrics)")
    cached = float("inf")
    for _ in range(5):  # the groups mapped once per event, as the engine does (kept on the join entry)
        mon = FairnessMonitor(FairnessConfig(enabled=True, attributes=[{"name": "group"}], metrics=METRICS))
        start = time.process_time()
        for i, (x, y, _) in enumerate(rows):
            keys = mon.grouping.keys(x)
            mon.predicted(x, y, i, 0, keys)
            mon.joined(x, y, y, 0, i, keys)
        cached = min(cached, (time.process_time() - start) / events * 1e6)
    print(f"cost monitor, groups mapped once per event: {cached:.2f} us per labelled event")
    records = []
    for i, (x, y, _) in enumerate(rows[:20_000]):
        key = f"e{i}".encode()
        records.append(InputRecord("features", 0, i, i, key, orjson.dumps({"id": f"e{i}", "features": x})))
        records.append(InputRecord("labels", 0, i, i + 100, key, orjson.dumps({"id": f"e{i}", "label": y})))
    records.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
    model = {"preset": "logistic_regression",
             "features": {"group": "cat", "region": "cat", "income": "num", "debt": "num"}}
    timings = {}
    for name, fairness in (("off", {}), ("on", {"enabled": True, "attributes": [{"name": "group"}],
                                             "metrics": METRICS})):
        best = float("inf")
        for _ in range(5):
            engine = Engine(DeploymentConfig(name="bench", model=model, drift={"policy": "none"},
                                             governance={"fairness": fairness}))
            start = time.process_time()
            for record in records:
                engine.process(record, now_ms=0)
            best = min(best, time.process_time() - start)
        timings[name] = best / (len(records) // 2) * 1e6
    print(f"cost engine (LR, 20k labelled events, CPU time, best of 5): off {timings['off']:.1f} us/event, "
          f"on {timings['on']:.1f} us/event, fairness adds {timings['on'] - timings['off']:.1f} us/event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--section", default="all", choices=["all", "alarms", "power", "delay", "cost"])
    args = parser.parse_args()
    if args.section in ("all", "power"):
        power()
    if args.section in ("all", "delay"):
        delay(args.seeds)
    if args.section in ("all", "cost"):
        cost(args.events)
    if args.section in ("all", "alarms"):
        alarms(args.seeds, args.events)


if __name__ == "__main__":
    main()
