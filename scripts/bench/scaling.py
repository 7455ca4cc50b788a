"""Keyed mode's scaling, measured on a real broker: throughput with 1 and 2 worker
processes, and fail-over after kill -9 of one of two workers.

Run by ``scripts/bench.sh --sections scaling`` (the ``scaling`` section of suite.py), or
alone against a running broker::

    .venv/bin/python scripts/bench/scaling.py --bootstrap 127.0.0.1:49092

- throughput: 8 partitions, 1,000 entity keys, labels 100 events late. The workers are
  started on empty topics and joined (the group is stable) before the input is produced,
  so no rebalance falls inside the measurement; events/s = events / (last commit − first
  record) over all workers (wall clock, from each worker's end-of-run summary).
- fail-over: two workers under a paced load at half the one-worker rate; one is killed
  with SIGKILL and not restarted. A reader (read_committed) timestamps every prediction:
  fail-over = from the kill until the first prediction of an event the dead worker's
  partitions received after the kill (the session timeout, the abort of its open
  transaction, restore and replay by the survivor).
- rebalance (``--rebalance``): two workers under a paced load; a third joins at ``join_at``
  and leaves (SIGTERM, a clean leave) at ``leave_at``. The reader counts predictions per
  1 s bin of their arrival (read_committed: when their transaction committed, plus the
  reader's fetch). Per event: the lowest bin in the 15 s after it against the offered
  rate, the time until a bin again reaches 90% of the offered rate after that low, and
  catch-up = from the event until, after the low bin, the predictions seen reach the events
  sent 1 s earlier. Aborted
  transactions: the workers' log lines for work aborted at a revoke or a lost assignment
  ("commit on revoke failed", "partitions lost: open work aborted"); there is no counter.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

PARTITIONS, N_KEYS, DELAY = 8, 1_000, 100
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _toml(path: str, name: str, boot: str, store: str, preset: str, session_ms: int) -> None:
    with open(path, "w") as f:
        f.write(f"""
name = "{name}"
partitions = {PARTITIONS}
[kafka]
bootstrap_servers = "{boot}"
[model]
preset = "{preset}"
[scale]
mode = "keyed"
session_timeout_ms = {session_ms}
[checkpoint]
store_url = "{store}"
every_examples = 20000
[drift]
policy = "none"
""")


def _cli(toml: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "driftline.cli", "-c", toml, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": "bench-scaling-key"}


def _rows(n: int) -> list[tuple[str, dict, bool]]:
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from driftline.datasets import stream
    from driftline.runtime.replay import encode_features

    rng = random.Random(3)
    return [(f"k{rng.randrange(N_KEYS)}", encode_features(x), y)
            for x, y in stream("synth:agrawal", limit=n, seed=5)]


def _produce(boot: str, name: str, rows, rate: float | None = None, sent: dict | None = None) -> None:
    """Features keyed by entity key; each label DELAY events later. ``rate``: events/s."""
    producer = Producer({"bootstrap.servers": boot, "partitioner": "murmur2_random", "linger.ms": 5})
    started = time.monotonic()
    for i in range(len(rows) + DELAY):
        now = int(time.time() * 1000)
        if i < len(rows):
            key, x, _ = rows[i]

            def ack(err, msg, i=i):
                if sent is not None and err is None:
                    sent[f"e{i}"] = (msg.partition(), time.time())
            producer.produce(f"driftline.{name}.features", orjson.dumps({"id": f"e{i}", "features": x}),
                             key.encode(), timestamp=now, on_delivery=ack)
        if i >= DELAY:
            key, _, y = rows[i - DELAY]
            producer.produce(f"driftline.{name}.labels", orjson.dumps({"id": f"e{i - DELAY}", "label": y}),
                             key.encode(), timestamp=now)
        producer.poll(0)
        if rate:
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush(60)


def _wait_stable(boot: str, name: str, members: int, timeout_s: float = 60) -> None:
    admin = AdminClient({"bootstrap.servers": boot})
    group = f"driftline.{name}.processor"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        desc = admin.describe_consumer_groups([group])[group].result()
        assigned = sum(len(m.assignment.topic_partitions) for m in desc.members)
        if len(desc.members) == members and str(desc.state).endswith("STABLE") and assigned == 2 * PARTITIONS:
            return
        time.sleep(0.5)
    raise RuntimeError(f"group {group} not stable with {members} members within {timeout_s}s")


def _deployment(boot: str, preset: str, session_ms: int = 6000) -> tuple[str, str]:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp(prefix="driftline-scaling-")
    toml = os.path.join(tmp, "keyed.toml")
    _toml(toml, name, boot, os.path.join(tmp, "versions"), preset, session_ms)
    subprocess.run(_cli(toml, "topics", "create"), env=_env(), check=True, capture_output=True)
    return name, toml


def throughput(boot: str, preset: str, workers: int, n: int) -> dict:
    name, toml = _deployment(boot, preset)
    rows = _rows(n)
    procs = [subprocess.Popen(_cli(toml, "run", "--instance", f"w{i}", "--exit-when-idle", "8"), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for i in range(workers)]
    _wait_stable(boot, name, workers)
    _produce(boot, name, rows)
    summaries = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        summaries.append(json.loads(out))
    first = min(s["timings"]["first_record"] for s in summaries if "first_record" in s["timings"])
    last = max(s["timings"]["last_commit"] for s in summaries if "last_commit" in s["timings"])
    learned = sum(s["examples_learned"] for s in summaries)
    return {"preset": preset, "workers": workers, "events": n, "learned": learned, "seconds": round(last - first, 3),
            "eps": round(n / (last - first)), "tasks": [sorted(s["tasks"]) for s in summaries]}


def failover(boot: str, preset: str, rate: float, seconds: float, kill_at: float, session_ms: int) -> dict:
    name, toml = _deployment(boot, preset, session_ms)
    rows = _rows(int(rate * seconds))
    procs = [subprocess.Popen(_cli(toml, "run", "--instance", f"w{i}", "--exit-when-idle", "20"), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for i in range(2)]
    _wait_stable(boot, name, 2)
    admin = AdminClient({"bootstrap.servers": boot})
    group = f"driftline.{name}.processor"
    desc = admin.describe_consumer_groups([group])[group].result()
    owner = {tp.partition: m.group_instance_id for m in desc.members for tp in m.assignment.topic_partitions}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def read() -> None:
        c = Consumer({"bootstrap.servers": boot, "group.id": f"read-{uuid.uuid4().hex[:6]}",
                      "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
        c.subscribe([f"driftline.{name}.predictions"])
        while not stop.is_set():
            for m in c.consume(1000, 0.2):
                if m.error() is None:
                    seen.setdefault(orjson.loads(m.value())["id"], time.time())
        c.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent: dict[str, tuple[int, float]] = {}
    producer = threading.Thread(target=_produce, args=(boot, name, rows, rate, sent))
    producer.start()
    time.sleep(kill_at)
    victim_instance = f"driftline.{name}.processor.w1"
    victim_parts = {p for p, inst in owner.items() if inst == victim_instance}
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    producer.join()
    procs[0].communicate(timeout=600)
    stop.set()
    reader.join(10)
    after = [e for e, (p, t) in sent.items() if p in victim_parts and t > killed_at]
    resumed = min((seen[e] for e in after if e in seen), default=float("nan"))
    lat = sorted(seen[e] - sent[e][1] for e in seen if e in sent)
    return {"preset": preset, "rate": rate, "session_timeout_ms": session_ms, "victim_partitions": sorted(victim_parts),
            "failover_s": round(resumed - killed_at, 2), "predicted": len(seen), "events": len(rows),
            "latency_p50_s": round(lat[len(lat) // 2], 3) if lat else None,
            "latency_max_s": round(lat[-1], 3) if lat else None}


def _after(bins: dict[int, int], at: float, rate: float, sent_t: list[float], seen_t: list[float]) -> dict:
    start = int(at)
    window = [(b, bins.get(b, 0)) for b in range(start, start + 15)]
    low_b, low = min(window, key=lambda bc: bc[1])
    back = next((b + 1 for b, c in window if b > low_b and c >= 0.9 * rate), None)
    sent_t, seen_t = sorted(sent_t), sorted(seen_t)
    caught = None
    j = 0
    for i, t in enumerate(seen_t):
        if t < at:
            continue
        while j < len(sent_t) and sent_t[j] <= t - 1.0:
            j += 1
        if i + 1 >= j and t > low_b + 1.0:
            caught = t
            break
    return {"lowest_bin_per_s": low, "lowest_bin_at_s": round(low_b - at, 1),
            "recovered_after_s": round(back - at, 1) if back is not None else None,
            "caught_up_after_s": round(caught - at, 2) if caught is not None else None}


def rebalance(boot: str, preset: str, rate: float, seconds: float, join_at: float, leave_at: float) -> dict:
    name, toml = _deployment(boot, preset)
    rows = _rows(int(rate * seconds))
    logdir = os.path.dirname(toml)

    def start(i: int) -> subprocess.Popen:
        err = open(os.path.join(logdir, f"w{i}.log"), "w")
        return subprocess.Popen(_cli(toml, "run", "--instance", f"w{i}", "--exit-when-idle", "10"), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=err)
    procs = [start(0), start(1)]
    _wait_stable(boot, name, 2)
    seen: dict[str, float] = {}
    stop = threading.Event()

    def read() -> None:
        c = Consumer({"bootstrap.servers": boot, "group.id": f"read-{uuid.uuid4().hex[:6]}",
                      "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
        c.subscribe([f"driftline.{name}.predictions"])
        while not stop.is_set():
            for m in c.consume(1000, 0.1):
                if m.error() is None:
                    seen.setdefault(orjson.loads(m.value())["id"], time.time())
        c.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent: dict[str, tuple[int, float]] = {}
    producer = threading.Thread(target=_produce, args=(boot, name, rows, rate, sent))
    t0 = time.time()
    producer.start()
    time.sleep(max(0.0, join_at - (time.time() - t0)))
    joined = time.time()
    procs.append(start(2))
    time.sleep(max(0.0, leave_at - (time.time() - t0)))
    left = time.time()
    procs[2].send_signal(signal.SIGTERM)
    producer.join()
    for p in procs:
        p.wait(timeout=600)
    time.sleep(2)
    stop.set()
    reader.join(10)
    bins: dict[int, int] = {}
    for t in seen.values():
        bins[int(t - t0)] = bins.get(int(t - t0), 0) + 1
    aborted = 0
    for i in range(3):
        with open(os.path.join(logdir, f"w{i}.log")) as f:
            text = f.read()
        aborted += text.count("commit on revoke failed") + text.count("partitions lost: open work aborted")
    sent_t = [t - t0 for _, t in sent.values()]
    seen_t = [t - t0 for t in seen.values()]
    return {"preset": preset, "rate": rate, "seconds": seconds, "events": len(rows), "predicted": len(seen),
            "load_1min": os.getloadavg()[0],
            "join": _after(bins, joined - t0, rate, sent_t, seen_t),
            "leave": _after(bins, left - t0, rate, sent_t, seen_t), "aborted_transactions": aborted,
            "bins_per_s": [bins.get(b, 0) for b in range(max(bins) + 1)] if bins else [],
            "join_at_s": round(joined - t0, 1), "leave_at_s": round(left - t0, 1)}


def run(boot: str, quick: bool = False) -> dict:
    n = 20_000 if quick else 60_000
    out: dict = {"throughput": [], "failover": []}
    for preset in ("logistic_regression", "hoeffding_tree"):
        one = throughput(boot, preset, 1, n)
        two = throughput(boot, preset, 2, n)
        out["throughput"] += [one, two]
        print(f"{preset}: 1 worker {one['eps']:,} ev/s, 2 workers {two['eps']:,} ev/s "
              f"(x{two['eps'] / one['eps']:.2f})", flush=True)
        if preset == "logistic_regression":
            f = failover(boot, preset, rate=one["eps"] / 4, seconds=30 if not quick else 20, kill_at=8,
                         session_ms=6000)
            out["failover"].append(f)
            print(f"fail-over after kill -9 of 1 of 2 workers: {f['failover_s']} s "
                  f"(session timeout {f['session_timeout_ms']} ms); {f['predicted']}/{f['events']} predicted; "
                  f"end-to-end latency p50 {f['latency_p50_s']} s, max {f['latency_max_s']} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS", "127.0.0.1:49092"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rebalance", action="store_true", help="only the rebalance cost: a third worker joins, leaves")
    ap.add_argument("--preset", default="logistic_regression")
    ap.add_argument("--rate", type=float, default=300.0, help="events/s offered for --rebalance")
    args = ap.parse_args()
    if args.rebalance:
        print(json.dumps(rebalance(args.bootstrap, args.preset, args.rate, 50, 15, 32)))
        return
    res = run(args.bootstrap, args.quick)
    os.makedirs(os.path.join(ROOT, "bench-results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench-results", "scaling.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M %Z"), **res}, f, indent=2)


if __name__ == "__main__":
    main()
