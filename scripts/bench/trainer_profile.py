"""Where a global-mode trainer's time goes: the trainer over pre-loaded input on a real
broker, in this process, under a sampling profiler (py-spy), then the samples grouped.

    pip install --target /tmp/pyspy py-spy
    /tmp/pyspy/bin/py-spy record -r 500 -f raw -o /tmp/trainer.txt -- \\
        env PYTHONPATH=src .venv/bin/python scripts/bench/trainer_profile.py --bootstrap 127.0.0.1:9092
    PYTHONPATH=src .venv/bin/python scripts/bench/trainer_profile.py --summarize /tmp/trainer.txt

The first prints the trainer's rate (examples learned / (last commit - first record)) and
its CPU time per example; the second, for the samples inside the processor's loop, the
share of each function including what it calls (a sampling profiler, unlike cProfile,
does not inflate functions called many times). The input is scripts/bench/global_mode.py's:
Agrawal, 4 partitions, labels 100 events late.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))


def run(boot: str, preset: str, events: int) -> None:
    import global_mode as g
    from prometheus_client import CollectorRegistry

    from driftline.runtime.topics import create_topics
    from driftline.runtime.trainer import Trainer

    rows = g._rows(events)
    with tempfile.TemporaryDirectory() as store:
        config = g._config(boot, store, preset, partitions=4)
        create_topics(config)
        g._produce(config, rows)
        trainer = Trainer(config, g.KEY, registry=CollectorRegistry())
        cpu = time.process_time()
        trainer.run(exit_when_idle_s=0.5)
        cpu = time.process_time() - cpu
    t, learned = trainer.timings, trainer.engine.n_learned
    print(f"{preset}: {learned} learned, {learned / (t['last_commit'] - t['first_record']):.0f} examples/s, "
          f"{1e6 * cpu / learned:.1f} CPU us per example (startup and the 0.5 s idle wait included)")


def summarize(path: str, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in open(path):
        stack, _, n = line.rstrip().rpartition(" ")
        frames = stack.split(";")
        if not any("_loop (driftline/runtime/processor.py" in f for f in frames):
            continue
        total += int(n)
        names = {re.sub(r":\d+\)$", ")", f) for f in frames}
        for name in names:
            inclusive[name] += int(n)
    if not total:
        raise SystemExit(f"{path}: no sample inside the processor's loop (was the trainer profiled?)")
    print(f"{total} samples inside Processor._loop; share including callees:")
    for name, n in inclusive.most_common(top):
        print(f"{100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--preset", default="logistic_regression")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--summarize", metavar="RAW", help="group a py-spy raw output instead of running")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize, args.top)
    else:
        run(args.bootstrap, args.preset, args.events)
