"""The drift benchmark: concept drift, adaptation policies, data drift, Elec2, and the service.

Usage: python scripts/bench/drift_bench.py [--seeds 1,2] [--policy-seeds 1] [--bootstrap HOST:PORT]
       [--sections concept,data,elec,broker] [--out bench-results/drift.json]

Prints one table per section and writes every figure to the JSON file. See
docs/drift-benchmark.md for the definitions and the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from multiprocessing import Pool
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import drift_concept as concept  # noqa: E402
import drift_data as data  # noqa: E402
from river import evaluate, metrics  # noqa: E402

from driftline.config import load_config  # noqa: E402
from driftline.core.models import build_model  # noqa: E402
from driftline.datasets import stream  # noqa: E402

ELEC = os.environ.get("DRIFTLINE_ELEC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "elec.csv"))
DEFAULT = None  # the deployment default detectors (binary.HDDMA for a classifier)
POLICIES: dict[str, dict[str, Any]] = {
    "none (no detector)": {"policy": "none", "detectors": []},
    "reset": {"policy": "reset"},
    "reset, warm start 500": {"policy": "reset", "warm_start": 500},
    "background": {"policy": "background"},
    "periodic 5000, retrain last 2000": {"policy": "periodic", "period_examples": 5000, "retrain_last": 2000,
                                          "detectors": []},
}
ELEC_MODELS = ["logistic_regression", "hoeffding_tree", "hoeffding_adaptive_tree"]


def elec_task(preset: str) -> dict[str, Any]:
    rows = list(stream(ELEC))
    records = concept.records_of(rows, 0)
    started = time.perf_counter()
    bare = evaluate.progressive_val_score(rows, build_model(load_config(name="b", model={"preset": preset}).model),
                                          metrics.Accuracy())
    out = {"model": preset, "river_accuracy": bare.get(), "river_seconds": time.perf_counter() - started,
           "policies": {}}
    for label, drift in POLICIES.items():
        out["policies"][label] = concept.engine_run(records, drift, preset)
    return out


def run_task(item: tuple[str, Any]) -> tuple[str, Any]:
    kind, args = item
    if kind == "concept":
        return kind, concept.stream_task(args)
    if kind == "data":
        return kind, data.task(args)
    return kind, elec_task(args)


def broker_run(bootstrap: str, preset: str = "hoeffding_tree", policy: str = "background") -> dict[str, Any]:
    """Elec2 through the real processor on the real broker, and the same records in memory."""
    from prometheus_client import CollectorRegistry

    from driftline.runtime.processor import Processor
    from driftline.runtime.replay import encode_features, replay
    from driftline.runtime.topics import create_topics

    rows = [(encode_features(x), y) for x, y in stream(ELEC)]
    config = load_config(
        name=f"bench-drift-{uuid.uuid4().hex[:6]}", kafka={"bootstrap_servers": bootstrap},
        model={"preset": preset}, drift={"policy": policy},
        checkpoint={"store_url": f"/tmp/driftline-bench-{uuid.uuid4().hex[:6]}", "every_examples": 10_000_000,
                    "every_seconds": 3600, "on_drift": False},
    )
    create_topics(config)
    replay(config, rows, label_delay=0, n_rows=len(rows))
    processor = Processor(config, b"bench", registry=CollectorRegistry())
    engine = processor.run(exit_when_idle_s=2.0)
    elapsed = processor.timings["last_commit"] - processor.timings["first_record"]
    memory = concept.engine_run(concept.records_of(rows, 0), {"policy": policy}, preset)
    return {"model": preset, "policy": policy, "events": len(rows), "service_accuracy": engine.scores.values()["accuracy"],
            "service_drift_events": engine.counters.drift_events, "service_events_per_s": len(rows) / elapsed,
            "memory_accuracy": memory["accuracy"], "memory_drift_events": memory["events"]}


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def num(x: float | None, fmt: str = ".1f") -> str:
    return "–" if x is None else format(x, fmt)


def print_tables(report: dict[str, Any]) -> None:
    if "detectors" in report:
        print("\n## Concept drift: detectors (Hoeffding tree, reset on detection, delay 0)")
        print(f"{'detector':<30} {'accuracy':>9} {'rec@250':>8} {'rec@1000':>9} {'FA/100k':>8} {'mean dly':>9} {'med dly':>8}")
        for r in report["detectors"]:
            print(f"{r['detector']:<30} {pct(r['accuracy']):>9} {r['recall250']:>8.3f} {r['recall1000']:>9.3f} "
                  f"{r['false_per_100k']:>8.1f} {num(r['mean_delay']):>9} {num(r['median_delay']):>8}")
        print("\nrecall@1000 per stream: " + "; ".join(
            f"{r['detector']}: " + ", ".join(f"{s} {v:.2f}" for s, v in r["per_stream_recall1000"].items())
            for r in report["detectors"][:2]))
    if "policies" in report:
        print("\n## Concept drift: prequential accuracy per policy (engine, Hoeffding tree, default detectors)")
        streams = list(report["policies"])
        print(f"{'policy':<34} " + " ".join(f"{s:>9}" for s in streams) + f" {'mean':>9}")
        for label in POLICIES:
            accs = [report["policies"][s][label] for s in streams]
            known = [a for a in accs if a is not None]
            print(f"{label:<34} " + " ".join(f"{pct(a):>9}" for a in accs) + f" {pct(statistics.fmean(known) if known else None):>9}")
    if "data" in report:
        print("\n## Data drift (5 numeric + 1 categorical feature)")
        names = list(data.SCENARIOS)
        print(f"{'variant':<56} {'FA/10k':>7} {'µs/ev':>6} " + " ".join(f"{n[:22]:>24}" for n in names))
        for r in report["data"]:
            cells = [f"{r[n]['hit_rate']:.2f} (med {num(r[n]['median_delay'], '.0f')})" for n in names]
            print(f"{r['variant']:<56} {r['stationary']['false_per_10k']:>7.3f} {r['stationary']['us_per_event']:>6.1f} "
                  + " ".join(f"{c:>24}" for c in cells))
    if "elec" in report:
        print("\n## Elec2: prequential accuracy (delay 0)")
        print(f"{'model':<26} {'River alone':>11} " + " ".join(f"{p[:16]:>17}" for p in POLICIES))
        for r in report["elec"]:
            print(f"{r['model']:<26} {pct(r['river_accuracy']):>11} "
                  + " ".join(f"{pct(r['policies'][p]['accuracy']):>17}" for p in POLICIES))
    if "broker" in report:
        b = report["broker"]
        print(f"\n## Through the processor on the broker: {b}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--policy-seeds", default="1")
    parser.add_argument("--sections", default="concept,data,elec,broker")
    parser.add_argument("--bootstrap", default=os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", default="bench-results/drift.json")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    policy_seeds = {int(s) for s in args.policy_seeds.split(",")}
    started = time.time()

    tasks: list[tuple[str, Any]] = []
    if "elec" in sections:
        tasks += [("elec", m) for m in ELEC_MODELS]
    if "concept" in sections:
        tasks += [("concept", (s, seed, list(concept.DETECTORS), POLICIES if seed in policy_seeds else {}, 0))
                  for seed in seeds for s in concept.STREAMS]
    if "data" in sections:
        tasks += [("data", v) for v in data.VARIANTS]
    with Pool(args.workers) as pool:
        results = pool.map(run_task, tasks, chunksize=1)

    report: dict[str, Any] = {
        "command": " ".join(sys.argv), "machine": platform.platform(), "processor": platform.processor(),
        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
    }
    runs = [r for k, r in results if k == "concept"]
    if runs:
        report["concept_runs"] = runs
        report["detectors"] = concept.summarise_detectors(runs)
        report["policies"] = {r["stream"]: {p: v["accuracy"] for p, v in r["policies"].items()}
                              for r in runs if r["policies"]}
        report["policy_details"] = {r["stream"]: r["policies"] for r in runs if r["policies"]}
    if any(k == "data" for k, _ in results):
        report["data"] = [r for k, r in results if k == "data"]
    if any(k == "elec" for k, _ in results):
        report["elec"] = [r for k, r in results if k == "elec"]
    if "broker" in sections:
        try:
            report["broker"] = broker_run(args.bootstrap)
        except Exception as exc:  # noqa: BLE001 - keep the in-memory figures if the broker is down
            report["broker"] = {"error": repr(exc)}
    report["seconds"] = time.time() - started
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2, default=str)
    print_tables(report)
    print(f"\nwrote {args.out} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
