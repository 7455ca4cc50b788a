"""What learning a seeded share of the labels gives and costs (``[model] learn_share``).

    .venv/bin/python scripts/bench/label_sampling.py [--data ../shared/data/elec.csv] [--delay 100]

The trainer's engine (core, no Kafka) over Electricity (Elec2, 45,312 rows, real drift),
labels ``--delay`` events late, for each model and share: the online accuracy over every
label (all are scored; only the sampled ones are learned) and the labels handled per CPU
second of this process (``time.process_time``: the machine may be shared), the best of
``--repeat`` runs. The ratio column is the rate against the same model learning every label
in the same run: how much faster one trainer core gets through a stream by learning less.
"""

from __future__ import annotations

import argparse
import json
import time

import orjson

from driftline.config import DeploymentConfig
from driftline.core.events import InputRecord
from driftline.core.trainer import TrainerEngine
from driftline.datasets import stream
from driftline.runtime.publisher import encode_features

MODELS = {"logistic regression": "logistic_regression", "Hoeffding tree": "river.tree:HoeffdingTreeClassifier",
          "adaptive random forest": "river.forest:ARFClassifier"}


def records(rows: list[tuple[dict, object]], delay: int) -> list[InputRecord]:
    """Features records, and each label ``delay`` events later, on one partition in event-time order."""
    out = []
    for i in range(len(rows) + delay):
        if i < len(rows):
            out.append(InputRecord("features", 0, i, 2 * i, None, orjson.dumps({"id": f"e{i}", "features": rows[i][0]})))
        if i >= delay:
            j = i - delay
            out.append(InputRecord("labels", 0, j, 2 * i + 1, None, orjson.dumps({"id": f"e{j}", "label": rows[j][1]})))
    return out


def one(preset: str, share: float, recs: list[InputRecord], repeat: int) -> dict:
    best, engine = float("inf"), None
    for _ in range(repeat):
        config = DeploymentConfig(name="sampling", model={"preset": preset, "learn_share": share, "learn_seed": 1},
                                  drift={"policy": "none"}, scale={"mode": "global", "publish_every_examples": 10**9})
        engine = TrainerEngine(config)
        start = time.process_time()
        for record in recs:
            engine.process(record, 0)
        best = min(best, time.process_time() - start)
    return {"share": share, "accuracy": round(engine.scores.values()["accuracy"], 4), "learned": engine.n_learned,
            "labels_per_cpu_s": round(engine.counters.joined / best)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/elec.csv")
    parser.add_argument("--delay", type=int, default=100)
    parser.add_argument("--limit", type=int, default=None, help="first N rows only")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--shares", default="1,0.5,0.25,0.1")
    parser.add_argument("--models", default="logistic regression,Hoeffding tree,adaptive random forest")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [(encode_features(x), y) for x, y in stream(args.data, limit=args.limit, target="class")]
    recs = records(rows, args.delay)
    results = []
    for name in args.models.split(","):
        base = None
        for share in (float(s) for s in args.shares.split(",")):
            row = {"model": name, **one(MODELS[name], share, recs, args.repeat)}
            base = base or row["labels_per_cpu_s"]
            row["rate_vs_all_labels"] = round(row["labels_per_cpu_s"] / base, 2)
            results.append(row)
            if not args.json:
                print(f"| {name} | {share:g} | {row['learned']:,} | {row['accuracy']:.4f} | "
                      f"{row['labels_per_cpu_s']:,} | {row['rate_vs_all_labels']:.2f}x |", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
