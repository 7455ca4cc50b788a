"""In-memory throughput of the engine on Elec2 (features, then the label 100 events later).

Usage: python scripts/bench/drift_speed.py [--preset logistic_regression] [--repeat 3] [drift overrides as JSON]
Prints events per second (best of ``--repeat``) so a change on the hot path can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import orjson

from driftline.config import load_config
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.datasets import stream


def records(path: str, delay: int = 100) -> list[InputRecord]:
    out = []
    for i, (x, y) in enumerate(stream(path)):
        out.append(InputRecord("features", 0, i, i, f"e{i}".encode(), orjson.dumps({"id": f"e{i}", "features": x})))
        out.append(InputRecord("labels", 0, i, i + delay, f"e{i}".encode(), orjson.dumps({"id": f"e{i}", "label": y})))
    out.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "elec.csv"))
    parser.add_argument("--preset", default="logistic_regression")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--drift", default="{}", help="JSON overrides for [drift]")
    args = parser.parse_args()
    recs = records(args.data)
    best = 0.0
    for _ in range(args.repeat):
        engine = Engine(load_config(name="speed", model={"preset": args.preset}, drift=json.loads(args.drift)))
        started = time.perf_counter()
        for r in recs:
            engine.process(r, 0)
        best = max(best, (len(recs) // 2) / (time.perf_counter() - started))
    print(json.dumps({"preset": args.preset, "events_per_s": round(best), "accuracy": engine.scores.values()["accuracy"],
                      "drift_events": engine.counters.drift_events}))


if __name__ == "__main__":
    main()
