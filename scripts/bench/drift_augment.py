"""Augmentation on imbalanced streams: minority recall, F1 and ROC AUC with and without SMOTE.

Usage: python scripts/bench/drift_augment.py [--n 30000] [--models logistic_regression,hoeffding_tree]
       [--variants none,smote-k1,smote-k3,smote-k10,random_over,random_under,
       hard_sampling] [--out bench-results/augment.json]

Streams: Agrawal (classification function 0) and SEA (variant 0), 10% label noise removed,
thinned to about 2% positives by keeping every negative and a seeded random share of the
positives (seed 3). The real engine, labels at once (delay 0), policy ``none`` without
detectors so that only the augmentation differs; scored on every prediction the engine
published (test-then-train).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import drift_policies  # noqa: E402

from driftline.config import load_config  # noqa: E402
from driftline.core.engine import Engine  # noqa: E402
from driftline.core.outputs import Prediction  # noqa: E402
from driftline.core.roc_auc import BinnedROCAUC  # noqa: E402
from driftline.datasets import drifting  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "smote-k1": {"kind": "smote", "k": 1},
    "smote-k3": {"kind": "smote", "k": 3},
    "smote-k10": {"kind": "smote", "k": 10},
    # River's imblearn wrappers (core/augment.py:resampled), equal class shares by default
    "random_over": {"kind": "random_over"},
    "random_under": {"kind": "random_under"},
    "hard_sampling": {"kind": "hard_sampling", "p": 0.1},
}


def thinned(name: str, n: int, share: float = 0.02, seed: int = 3) -> list[tuple[dict, Any]]:
    """``n`` rows of a stationary stream with about ``share`` positives."""
    base = list(itertools.islice(drifting(name, drift_every=10**9, noise=0.0, seed=seed), 20 * n))
    positives = sum(1 for _, y in base if y) / len(base)
    keep = share / (1 - share) * (1 - positives) / positives
    rng = random.Random(seed)
    rows = [(x, int(y)) for x, y in base if not y or rng.random() < keep]
    return rows[:n]


def run(rows, preset: str, augment: dict[str, Any]) -> dict[str, Any]:
    engine = Engine(load_config(name="aug", model={"preset": preset, "augment": augment, "classes": [0, 1]},
                                drift={"policy": "none", "detectors": []}, checkpoint={"on_drift": False}))
    labels = {f"e{i}": y for i, (_, y) in enumerate(rows)}
    tp = fp = fn = 0
    auc = BinnedROCAUC(pos_val=1)
    started = time.perf_counter()
    for record in drift_policies.records_of(rows, 0):
        for o in engine.process(record, 0):
            if isinstance(o, Prediction) and o.prediction is not None:
                y = labels[o.id]
                tp += o.prediction == 1 and y == 1
                fp += o.prediction == 1 and y == 0
                fn += o.prediction != 1 and y == 1
                if o.proba:
                    auc.update(y == 1, {True: o.proba.get(1, 0.0), False: 1 - o.proba.get(1, 0.0)})
    recall = tp / (tp + fn) if tp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"recall": recall, "precision": precision, "f1": f1, "roc_auc": auc.get(),
            "accuracy": engine.scores.values().get("accuracy"), "positives": sum(y for _, y in rows),
            "synthetic": engine.augment.synthetic if engine.augment else 0, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--streams", default="agrawal,sea")
    parser.add_argument("--models", default="logistic_regression,hoeffding_tree")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default="bench-results/augment.json")
    args = parser.parse_args()
    report: dict[str, Any] = {"command": " ".join(sys.argv), "machine": platform.platform(), "cpus": os.cpu_count(),
                              "date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(), "runs": []}
    for name in args.streams.split(","):
        rows = thinned(name, args.n)
        for preset in args.models.split(","):
            for variant in args.variants.split(","):
                r = run(rows, preset, VARIANTS[variant])
                report["runs"].append({"stream": name, "model": preset, "variant": variant, **r})
                print(f"| {name} | {preset} | {variant} | {r['positives']} | {100 * r['recall']:.1f}% | "
                      f"{100 * r['f1']:.1f}% | {r['roc_auc']:.4f} | {100 * r['accuracy']:.2f}% |", flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
