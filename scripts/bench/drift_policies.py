"""Adaptation policies under late labels: each policy × label delay × model × stream, in the engine.

Usage: python scripts/bench/drift_policies.py [--streams elec,sea,sine,mixed,stagger,agrawal]
       [--models logistic_regression,hoeffding_tree,hoeffding_adaptive_tree]
       [--delays 0,10,100,1000,random] [--policies none,reset,guarded] [--limit N]
       [--jobs 2] [--out bench-results/drift-policies.json]
       python scripts/bench/drift_policies.py --render bench-results/drift-policies.json

Every run is the real :class:`~driftline.core.engine.Engine` fed InputRecords: features of
event i at time i, its label at i + delay (``random``: a seeded delay uniform in [0, 1000]),
labels before features at equal times, so the accuracy is River's
``progressive_val_score(..., delay=d)`` for ``none`` without detectors. The synthetic streams
are ``driftline.datasets.drifting`` (seed 1, 100k events, a switch every 20k, 10% noise);
Elec2 is ``../shared/data/elec.csv`` (never cut by ``--limit``). ``--jobs N`` runs N runs at a time
(each is deterministic and independent: the figures do not depend on N).
Prints one line per run and writes every figure to the JSON file.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import platform
import random
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import drift_concept as concept  # noqa: E402
import orjson  # noqa: E402

from driftline.config import load_config  # noqa: E402
from driftline.core.engine import Engine  # noqa: E402
from driftline.core.events import InputRecord  # noqa: E402
from driftline.core.outputs import DriftEvent  # noqa: E402
from driftline.datasets import stream  # noqa: E402

ELEC = os.environ.get("DRIFTLINE_ELEC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                                     "shared", "data", "elec.csv"))
# The detector policies run with a grace period of 300 examples (the figure docs/drift-benchmark.md
# chose for guarded; the config default is 0).
POLICIES: dict[str, dict[str, Any]] = {
    "none": {"policy": "none", "detectors": []},
    "none+detector": {"policy": "none", "grace_examples": 300},
    "reset": {"policy": "reset", "grace_examples": 300},
    "background": {"policy": "background", "grace_examples": 300},
    "guarded": {"policy": "guarded", "grace_examples": 300},
    "periodic": {"policy": "periodic", "grace_examples": 300, "period_examples": 5000, "retrain_last": 2000},
}


@functools.lru_cache(maxsize=2)
def rows_for(name: str, limit: int | None) -> list[tuple[dict, Any]]:
    if name == "elec":
        rows = list(stream(ELEC))
    else:
        rows = concept.rows_of(name, 1)
    return rows[:limit] if limit else rows


def records_of(rows, delay: int | str) -> list[InputRecord]:
    """Features at i, labels at i + delay (``random``: seeded, uniform in [0, 1000])."""
    rng = random.Random(7)
    out = []
    for i, (x, y) in enumerate(rows):
        d = rng.randint(0, 1000) if delay == "random" else int(delay)
        eid = f"e{i}".encode()
        features = {str(k): (int(v) if isinstance(v, bool) else v) for k, v in x.items()}
        out.append(InputRecord("features", 0, i, i, eid, orjson.dumps({"id": f"e{i}", "features": features})))
        out.append(InputRecord("labels", 0, i, i + d, eid, orjson.dumps({"id": f"e{i}", "label": y})))
    out.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
    return out


def run(records, drift: dict[str, Any], preset: str) -> dict[str, Any]:
    engine = Engine(load_config(name="bench", model={"preset": preset}, drift=drift, checkpoint={"on_drift": False}))
    actions: dict[str, int] = {}
    started = time.perf_counter()
    for r in records:
        for o in engine.process(r, 0):
            if isinstance(o, DriftEvent):
                actions[o.action] = actions.get(o.action, 0) + 1
    return {"accuracy": engine.scores.values().get("accuracy"), "actions": actions,
            "seconds": time.perf_counter() - started}


def one(task) -> dict[str, Any]:
    """One run: (stream, limit, delay, model, policy, extra [drift] settings) -> its figures."""
    name, limit, delay, preset, label, extra = task
    records = _records(name, limit, delay)
    drift = {**POLICIES[label], **extra} if label != "none" else POLICIES[label]
    result = run(records, drift, preset)
    print(f"{name:8} delay={delay:>6} {preset:24} {label:14} {100 * result['accuracy']:6.2f}% "
          f"{result['actions']} {result['seconds']:.1f}s", flush=True)
    return {"stream": name, "delay": delay, "model": preset, "policy": label, **result}


@functools.lru_cache(maxsize=1)
def _records(name: str, limit: int | None, delay: str) -> list[InputRecord]:
    return records_of(rows_for(name, limit), delay)


def render(report: dict[str, Any]) -> str:
    """Markdown: one table per stream, a row per (model, policy), a column per delay.

    A cell is the accuracy, then for ``guarded`` the swaps/abandoned candidates/anchor restores,
    for ``background`` its swaps+plain resets, for ``reset`` the resets; ``Δ`` rows give guarded minus none.
    """
    lines = []
    runs = report["runs"]
    for name in dict.fromkeys(r["stream"] for r in runs):
        mine = [r for r in runs if r["stream"] == name]
        delays = list(dict.fromkeys(r["delay"] for r in mine))
        lines += [f"\n**{name}**\n", "| model | policy | " + " | ".join(f"delay {d}" for d in delays) + " |",
                  "|---|---|" + "---|" * len(delays)]
        for model in dict.fromkeys(r["model"] for r in mine):
            cells: dict[str, dict[str, Any]] = {}
            for r in mine:
                if r["model"] == model:
                    cells.setdefault(r["policy"], {})[r["delay"]] = r
            for policy, by_delay in cells.items():
                row = []
                for d in delays:
                    r = by_delay.get(d)
                    if r is None:
                        row.append("–")
                        continue
                    a = r["actions"]
                    extra = (f" ({a.get('candidate_swap', 0)}/{a.get('candidate_abandon', 0)}/{a.get('anchor_restore', 0)})"
                             if policy == "guarded"
                             else f" ({a.get('background_swap', 0)}+{a.get('reset', 0)})" if policy == "background"
                             else f" ({a.get('reset', 0)})" if policy == "reset" else "")
                    row.append(f"{100 * r['accuracy']:.2f}%{extra}")
                lines.append(f"| {model} | {policy} | " + " | ".join(row) + " |")
            if "guarded" in cells and "none" in cells:
                diff = [f"{100 * (cells['guarded'][d]['accuracy'] - cells['none'][d]['accuracy']):+.2f}"
                        if d in cells["guarded"] and d in cells["none"] else "–" for d in delays]
                lines.append(f"| {model} | Δ guarded − none | " + " | ".join(diff) + " |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        with open(sys.argv[2]) as fh:
            print(render(json.load(fh)))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", default="elec,sea,sine,mixed,stagger,agrawal")
    parser.add_argument("--models", default="logistic_regression,hoeffding_tree,hoeffding_adaptive_tree")
    parser.add_argument("--delays", default="0,10,100,1000,random")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--drift", default="{}", help="JSON merged into every policy's [drift] (e.g. guard settings)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (runs are independent)")
    parser.add_argument("--out", default="bench-results/drift-policies.json")
    args = parser.parse_args()
    extra = json.loads(args.drift)
    report: dict[str, Any] = {"command": " ".join(sys.argv), "machine": platform.platform(),
                              "processor": platform.processor(), "cpus": os.cpu_count(),
                              "date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
                              "runs": []}
    started = time.time()
    tasks = [(name, args.limit if name != "elec" else None, delay, preset, label, extra)
             for name in args.streams.split(",") for delay in args.delays.split(",")
             for preset in args.models.split(",") for label in args.policies.split(",")]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs, maxtasksperchild=None) as pool:
            results = pool.imap(one, tasks, chunksize=1)
            report["runs"] = [r for r in results]
    else:
        report["runs"] = [one(t) for t in tasks]
    report["seconds"] = time.time() - started
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2, default=str)
    print(f"wrote {args.out} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
