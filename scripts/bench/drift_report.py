"""Render bench-results/drift.json as the Markdown tables of docs/drift-benchmark.md.

Usage: python scripts/bench/drift_report.py [bench-results/drift.json]
"""

from __future__ import annotations

import json
import statistics
import sys


def pct(x):
    return "–" if x is None else f"{100 * x:.2f}%"


def num(x, fmt=".1f"):
    return "–" if x is None else format(x, fmt)


def main() -> None:
    report = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "bench-results/drift.json"))
    print(f"Command: `{report['command']}` · machine: {report['machine']}, {report['cpus']} cores · "
          f"Python {report['python']} · {report['date']} · {report['seconds']:.0f} s\n")
    print("### Detectors\n")
    print("| Detector | Accuracy | Recall ≤250 | Recall ≤1000 | False alarms /100k | Mean delay | Median delay | Recall ≤1000 per stream |")
    print("|---|---|---|---|---|---|---|---|")
    for r in report["detectors"]:
        per = ", ".join(f"{s} {v:.2f}" for s, v in r["per_stream_recall1000"].items())
        print(f"| {r['detector']} | {pct(r['accuracy'])} | {r['recall250']:.3f} | {r['recall1000']:.3f} | "
              f"{r['false_per_100k']:.1f} | {num(r['mean_delay'])} | {num(r['median_delay'])} | {per} |")
    print("\n### Policies (engine, Hoeffding tree)\n")
    streams = list(report["policies"])
    labels = list(next(iter(report["policies"].values())))
    print("| Policy | " + " | ".join(streams) + " | mean |")
    print("|---|" + "---|" * (len(streams) + 1))
    for label in labels:
        accs = [report["policies"][s][label] for s in streams]
        known = [a for a in accs if a is not None]
        print(f"| {label} | " + " | ".join(pct(a) for a in accs) + f" | {pct(statistics.fmean(known) if known else None)} |")
    details = report.get("policy_details", {})
    if details:
        print("\nDrift events per policy run (stream: events): " + "; ".join(
            f"{label}: " + ", ".join(f"{s} {details[s][label]['events']}" for s in streams) for label in labels))
    print("\n### Data drift\n")
    names = [k for k in report["data"][0] if k not in ("variant", "config", "stationary")]
    print("| Variant | False alarms /10k stationary | µs per event | " + " | ".join(
        f"{n}: hit ≤500 (median delay)" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for r in report["data"]:
        cells = [f"{r[n]['hit_rate']:.2f} ({num(r[n]['median_delay'], '.0f')})" for n in names]
        st = r["stationary"]
        print(f"| {r['variant']} | {st['false_per_10k']:.3f} ({st['false_alarms']} in {st['events']:,}) | "
              f"{st['us_per_event']:.1f} | " + " | ".join(cells) + " |")
    print("\n### Elec2 (45,312 events, delay 0)\n")
    policies = list(report["elec"][0]["policies"])
    print("| Model | River alone | " + " | ".join(policies) + " |")
    print("|---|---|" + "---|" * len(policies))
    for r in report["elec"]:
        print(f"| {r['model']} | {pct(r['river_accuracy'])} | " + " | ".join(
            f"{pct(r['policies'][p]['accuracy'])} ({r['policies'][p]['events']} ev)" for p in policies) + " |")
    b = report.get("broker")
    if b:
        print("\n### Through the processor on the broker\n")
        print("```\n" + json.dumps(b, indent=1) + "\n```")


if __name__ == "__main__":
    main()
