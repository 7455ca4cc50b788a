"""What keyed mode costs per event: KeyedEngine against the engines it routes to.

    .venv/bin/python scripts/bench/keyed_overhead.py [--events 10000] [--repeat 3] [--preset logistic_regression]

Four runs over the same seeded stream (features and labels, labels 0-40 ms late), each
timed in CPU seconds of this process (``time.process_time``: the machine is shared), the
best of ``--repeat``:

- one key: ``Engine`` fed every record, against ``KeyedEngine`` with every record under one key;
- 1,000 keys: one ``Engine`` per key, created on first sight and fed through a dict (the
  least a router does), against ``KeyedEngine`` with every key resident;
- 1,000 keys with half of them resident: ``KeyedEngine(max_keys=500)``, evicting to a
  ``MemoryColdStore`` (pickle and unpickle per eviction and restore), against the keyed
  run with every key resident.

Prints one line per comparison with the ratio and the overhead per event in µs (an event
is a features record and its label record), the CPU cost of one eviction and restore, and
the memory of a resident key (tracemalloc) and of an evicted one (its pickle).
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc

import orjson

from driftline.config import DeploymentConfig, ModelConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.cold import MemoryColdStore
from driftline.core.keyed import KeyedEngine


def stream(n_events: int, n_keys: int, seed: int = 7) -> list[InputRecord]:
    rng = random.Random(seed)
    weights = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(n_keys)]
    records, offsets = [], {"features": 0, "labels": 0}
    for i in range(n_events):
        k = i if i < n_keys else int(rng.random() ** 3 * n_keys)
        x = {name: rng.gauss(0, 1) for name in "abc"}
        y = sum(w * v for w, v in zip(weights[k], x.values())) + rng.gauss(0, 0.3) > 0
        key = f"k{k:04d}".encode()
        for kind, ts, body in (("features", i * 10, {"id": f"e{i}", "features": x}),
                               ("labels", i * 10 + rng.randrange(0, 41), {"id": f"e{i}", "label": y})):
            records.append(InputRecord(kind, 0, offsets[kind], ts, key, orjson.dumps(body)))
            offsets[kind] += 1
    return sorted(records, key=lambda r: (r.timestamp, r.kind != "labels", r.offset))


def cpu(pair, repeat: int) -> tuple[float, float]:
    """Best CPU time of each of two runs, measured alternately (A B A B ...) so that a
    change of load on the shared machine hits both alike."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, fn in enumerate(pair):
            start = time.process_time()
            fn()
            best[i] = min(best[i], time.process_time() - start)
    return best[0], best[1]


def resident_bytes(config, records) -> tuple[float, float]:
    """Traced bytes per resident key, and pickled bytes per evicted key, after ``records``."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keyed = KeyedEngine(config)
    for r in records:
        keyed.process(r, 0)
    per_key = (tracemalloc.get_traced_memory()[0] - before) / len(keyed.keys())
    tracemalloc.stop()
    cold = MemoryColdStore()
    tight = KeyedEngine(config, cold=cold, max_keys=1)
    for r in records:
        tight.process(r, 0)
    return per_key, cold.nbytes() / len(cold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--preset", default="logistic_regression")
    a = parser.parse_args()
    config = DeploymentConfig(name="bench", model=ModelConfig(preset=a.preset, features={n: "num" for n in "abc"}),
                              scale={"mode": "keyed"})
    one = stream(a.events, 1)
    many = stream(a.events, a.keys)

    def engine_one():
        engine = Engine(config)
        for r in one:
            engine.process(r, 0)

    def keyed(records, max_keys=None):
        def go():
            k = KeyedEngine(config, max_keys=max_keys)
            for r in records:
                k.process(r, 0)
        return go

    stats = {}

    def engines_many():
        engines: dict[bytes, Engine] = {}
        for r in many:
            engine = engines.get(r.key)
            if engine is None:
                engine = engines[r.key] = Engine(config)
            engine.process(r, 0)

    def keyed_evicting():
        k = KeyedEngine(config, max_keys=a.keys // 2)
        for r in many:
            k.process(r, 0)
        stats.update(k.key_stats())

    results = {
        "one key": cpu((engine_one, keyed(one)), a.repeat),
        f"{a.keys} keys, all resident": cpu((engines_many, keyed(many)), a.repeat),
    }
    results[f"{a.keys} keys, {a.keys // 2} resident"] = cpu((keyed(many), keyed_evicting), a.repeat)
    n = a.events  # events = feature records; each has its label record too
    print(f"preset {a.preset}, {n} events ({2 * n} records), best of {a.repeat}, CPU seconds")
    for name, (base, keyed_s) in results.items():
        print(f"{name:>28}: base {base:.3f} s  keyed {keyed_s:.3f} s  ratio {keyed_s / base:.3f}  "
              f"overhead {(keyed_s - base) / n * 1e6:+.1f} us/event")
    evictions = stats["evictions"]
    resident, evicting = results[f"{a.keys} keys, {a.keys // 2} resident"]
    print(f"{'evictions':>28}: {evictions} evictions, {stats['restores']} restores, "
          f"{(evicting - resident) / max(evictions, 1) * 1e3:.3f} ms CPU each (over all resident)")
    per_key, blob = resident_bytes(config, many)
    print(f"{'memory':>28}: {per_key / 1024:.1f} KiB per resident key (tracemalloc), "
          f"{blob / 1024:.1f} KiB per evicted key (pickled)")


if __name__ == "__main__":
    main()
