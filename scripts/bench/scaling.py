"""Keyed mode's scaling, measured on a real broker: throughput with 1 and 2 worker
processes, fail-over after kill -9 of one of two workers, and the cost of a rebalance.

Run by ``scripts/bench.sh --sections scaling`` (the ``scaling`` section of suite.py), or
alone against a running broker, one command for all three with a compact summary on
stdout and the details in bench-results/scaling.json::

    PYTHONPATH=src .venv/bin/python scripts/bench/scaling.py --bootstrap 127.0.0.1:49092 [--quick]

- throughput: 8 partitions, 1,000 entity keys, labels 100 events late, input pre-loaded.
  The workers join on empty topics until the group is stable, stop (static members stay
  in the group), the input is produced, and the same instances start again: they get
  their partitions back without a rebalance, and no producer competes with them.
  events/s = events / (last commit − first record) over all workers (wall clock, from each
  worker's end-of-run summary). Over that window the CPU seconds (utime + stime from
  /proc) of each worker, of the broker (the local ``kafka.Kafka`` process listening on the
  bootstrap port) and of the whole box are taken (scripts/bench/cpu_clock.py): events per
  worker-CPU-second says whether the split keeps its per-CPU efficiency, the broker's
  cores how much of the box it takes, "other" the rest (other jobs on a shared machine).
  Each worker's main thread is split into on-CPU, run-queue and blocked time
  (/proc/<pid>/schedstat): blocked time is where a worker waits (commits, fetches).
  ``--throughput N --set processor.commit_interval_ms=500`` runs one case with a setting.
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
  sent 1 s earlier. Part of the default run; ``--rebalance`` runs it alone. Aborted
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_clock import BOX, CpuClock, broker_pid  # noqa: E402

PARTITIONS, N_KEYS, DELAY = 8, 1_000, 100
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _toml(path: str, name: str, boot: str, store: str, preset: str, session_ms: int, extra: str = "") -> None:
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
{extra}
""")


def _cli(toml: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "driftline.cli", "-c", toml, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": "bench-scaling-key"}


def _settings(pairs: list[str]) -> str:
    """``processor.commit_interval_ms=500`` ... -> TOML tables (the bench's configuration probes)."""
    tables: dict[str, list[str]] = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        table, field = key.rsplit(".", 1)
        tables.setdefault(table, []).append(f"{field} = {value}")
    return "\n".join(f"[{t}]\n" + "\n".join(v) for t, v in tables.items())


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


_ADMINS: dict[str, AdminClient] = {}


def _group(boot: str, name: str):
    admin = _ADMINS.setdefault(boot, AdminClient({"bootstrap.servers": boot}))  # one, alive until its results
    group = f"driftline.{name}.processor"
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result()


def _wait_stable(boot: str, name: str, members: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        desc = _group(boot, name)
        assigned = sum(len(m.assignment.topic_partitions) for m in desc.members)
        if len(desc.members) == members and str(desc.state).endswith("STABLE") and assigned == 2 * PARTITIONS:
            return
        time.sleep(0.5)
    raise RuntimeError(f"group driftline.{name}.processor not stable with {members} members within {timeout_s}s")


def _deployment(boot: str, preset: str, session_ms: int = 6000, extra: str = "") -> tuple[str, str]:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp(prefix="driftline-scaling-")
    toml = os.path.join(tmp, "keyed.toml")
    _toml(toml, name, boot, os.path.join(tmp, "versions"), preset, session_ms, extra)
    subprocess.run(_cli(toml, "topics", "create"), env=_env(), check=True, capture_output=True)
    return name, toml


def _worker(toml: str, i: int, idle: float, **io) -> subprocess.Popen:
    io.setdefault("stdout", subprocess.DEVNULL)
    io.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(_cli(toml, "run", "--instance", f"w{i}", "--exit-when-idle", str(idle)), env=_env(), **io)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def throughput(boot: str, preset: str, workers: int, n: int, extra: str = "") -> dict:
    """Pre-loaded input, workers that own their partitions from their first record on.

    The workers first join on empty topics until the group is stable, then stop (SIGTERM:
    static members do not leave the group); the input is produced; the same instances
    start again and get their assignment back at once (no rebalance: ``assignments`` in
    their summaries stays 1). The window is from the first record of any worker to the
    last commit of any; CPU seconds of each worker, of the broker and of the whole box are
    taken over that window."""
    name, toml = _deployment(boot, preset, session_ms=30_000, extra=extra)
    rows = _rows(n)
    procs = [_worker(toml, i, 120) for i in range(workers)]
    _wait_stable(boot, name, workers)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)
    _produce(boot, name, rows)
    clock = CpuClock()
    broker = broker_pid(boot)
    clock.watch(broker)
    load_start = _load()
    procs = [_worker(toml, i, 8, stdout=subprocess.PIPE) for i in range(workers)]
    for p in procs:
        clock.watch(p.pid)
    summaries = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    clock.close()
    first = min(s["timings"]["first_record"] for s in summaries if "first_record" in s["timings"])
    last = max(s["timings"]["last_commit"] for s in summaries if "last_commit" in s["timings"])
    window = last - first
    cpu = [clock.cpu(p.pid, first, last) for p in procs]
    broker_s, box_s = clock.cpu(broker, first, last), clock.cpu(BOX, first, last)
    return {"preset": preset, "workers": workers, "events": n, "learned": sum(s["examples_learned"] for s in summaries),
            "seconds": round(window, 3), "eps": round(n / window),
            "worker_cpu_s": [round(c, 2) for c in cpu], "worker_cores": [round(c / window, 2) for c in cpu],
            "eps_per_worker_cpu_s": round(n / sum(cpu)),
            "broker_cores": round(broker_s / window, 2), "box_busy_cores": round(box_s / window, 2),
            "other_cores": round((box_s - sum(cpu) - broker_s) / window, 2), "cores": os.cpu_count(),
            "load_start": load_start, "load_end": _load(), "settings": extra,
            "main_thread": [clock.main_thread(p.pid, first, last) for p in procs],
            "assignments": [s.get("assignments") for s in summaries],
            "tasks": [sorted(s["tasks"]) for s in summaries]}


class LiveRun:
    """Workers under a paced live load, a read_committed reader stamping each prediction's
    arrival (``seen``: id -> time) and the producer's acks (``sent``: id -> (partition, time))."""

    def __init__(self, boot: str, preset: str, rate: float, seconds: float, workers: int, idle: float,
                 session_ms: int = 6000) -> None:
        self.boot, self.rate, self.idle = boot, rate, idle
        self.name, self.toml = _deployment(boot, preset, session_ms)
        self.rows = _rows(int(rate * seconds))
        self.logdir = os.path.dirname(self.toml)
        self.procs = [self.start(i) for i in range(workers)]
        _wait_stable(boot, self.name, workers)
        self.seen: dict[str, float] = {}
        self.sent: dict[str, tuple[int, float]] = {}
        self._stop = threading.Event()

    def start(self, i: int) -> subprocess.Popen:
        return _worker(self.toml, i, self.idle, stderr=open(os.path.join(self.logdir, f"w{i}.log"), "w"))

    def owners(self) -> dict[int, str]:
        return {tp.partition: m.group_instance_id for m in _group(self.boot, self.name).members
                for tp in m.assignment.topic_partitions}

    def _read(self) -> None:
        c = Consumer({"bootstrap.servers": self.boot, "group.id": f"read-{uuid.uuid4().hex[:6]}",
                      "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
        c.subscribe([f"driftline.{self.name}.predictions"])
        while not self._stop.is_set():
            for m in c.consume(1000, 0.1):
                if m.error() is None:
                    self.seen.setdefault(orjson.loads(m.value())["id"], time.time())
        c.close()

    def go(self) -> float:
        """Start the reader and the paced producer; returns the start time."""
        threading.Thread(target=self._read, daemon=True).start()
        self._producer = threading.Thread(target=_produce, args=(self.boot, self.name, self.rows, self.rate,
                                                                 self.sent))
        self.t0 = time.time()
        self._producer.start()
        return self.t0

    def finish(self) -> None:
        """Wait for the producer and every worker still running, then stop the reader."""
        self._producer.join()
        for p in self.procs:
            p.wait(timeout=600)
        time.sleep(2)
        self._stop.set()

    def aborted(self) -> int:
        """Work aborted at a revoke or a lost assignment, from the workers' logs."""
        n = 0
        for log in os.listdir(self.logdir):
            if log.endswith(".log"):
                text = open(os.path.join(self.logdir, log)).read()
                n += text.count("commit on revoke failed") + text.count("partitions lost: open work aborted")
        return n


def failover(boot: str, preset: str, rate: float, seconds: float, kill_at: float, session_ms: int) -> dict:
    run = LiveRun(boot, preset, rate, seconds, workers=2, idle=20, session_ms=session_ms)
    owner = run.owners()
    run.go()
    time.sleep(kill_at)
    victim_parts = {p for p, inst in owner.items() if inst == f"driftline.{run.name}.processor.w1"}
    run.procs[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    run.finish()
    seen, sent = run.seen, run.sent
    after = [e for e, (p, t) in sent.items() if p in victim_parts and t > killed_at]
    resumed = min((seen[e] for e in after if e in seen), default=float("nan"))
    lat = sorted(seen[e] - sent[e][1] for e in seen if e in sent)
    return {"preset": preset, "rate": round(rate), "session_timeout_ms": session_ms,
            "victim_partitions": sorted(victim_parts), "failover_s": round(resumed - killed_at, 2),
            "predicted": len(seen), "events": len(run.rows), "aborted_transactions": run.aborted(),
            "latency_p50_s": round(lat[len(lat) // 2], 3) if lat else None,
            "latency_max_s": round(lat[-1], 3) if lat else None, "load": _load()}


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
    run = LiveRun(boot, preset, rate, seconds, workers=2, idle=10)
    t0 = run.go()
    time.sleep(max(0.0, join_at - (time.time() - t0)))
    joined = time.time()
    run.procs.append(run.start(2))
    time.sleep(max(0.0, leave_at - (time.time() - t0)))
    left = time.time()
    run.procs[2].send_signal(signal.SIGTERM)
    run.finish()
    bins: dict[int, int] = {}
    for t in run.seen.values():
        bins[int(t - t0)] = bins.get(int(t - t0), 0) + 1
    sent_t = [t - t0 for _, t in run.sent.values()]
    seen_t = [t - t0 for t in run.seen.values()]
    return {"preset": preset, "rate": rate, "seconds": seconds, "events": len(run.rows), "predicted": len(run.seen),
            "load_1min": os.getloadavg()[0], "load": _load(),
            "join": _after(bins, joined - t0, rate, sent_t, seen_t),
            "leave": _after(bins, left - t0, rate, sent_t, seen_t), "aborted_transactions": run.aborted(),
            "bins_per_s": [bins.get(b, 0) for b in range(max(bins) + 1)] if bins else [],
            "join_at_s": round(joined - t0, 1), "leave_at_s": round(left - t0, 1)}


def _line(e: dict) -> str:
    return (f"{e['preset'][:19]:<19} {e['workers']} worker(s): {e['eps']:>7,} ev/s  "
            f"{e['eps_per_worker_cpu_s']:>7,} ev/worker-CPU-s  worker cores {e['worker_cores']}  "
            f"broker {e['broker_cores']}  others {e['other_cores']}  box {e['box_busy_cores']}/{e['cores']}  "
            f"load {e['load_start'][0]}->{e['load_end'][0]}  main thread cpu/queued/blocked s "
            + " ".join(f"{m.get('on_cpu_s')}/{m.get('runqueue_s')}/{m.get('blocked_s')}" for m in e.get("main_thread", [])))


def verdict(one: dict, two: dict, goal: float = 1.7) -> dict:
    """What the CPU accounting says about 2 workers against 1: the speed-up, the per-CPU
    efficiency kept, and the cores ``goal`` x would take at the efficiencies measured (the
    workers' events per CPU-second and the broker's CPU per event, both from the 2-worker
    run): at this run's 1-worker rate, and for a 1-worker baseline with a whole core (on a
    quiet machine a CPU-bound worker runs at its events per CPU-second)."""
    ratio = two["eps"] / one["eps"]
    broker_per_event = two["broker_cores"] / two["eps"]

    def need(base_eps: float) -> dict:
        w, b = goal * base_eps / two["eps_per_worker_cpu_s"], goal * base_eps * broker_per_event
        return {"workers": round(w, 2), "broker": round(b, 2), "total": round(w + b, 2)}
    # Other jobs' CPU changes what the workers get between the two runs: the ratio then says
    # more about them than about the design.
    others = max(one["other_cores"], two["other_cores"])
    return {"preset": one["preset"], "ratio": round(ratio, 2), "goal": goal, "met": ratio >= goal,
            "conclusive": others < 0.25, "other_cores_max": others,
            "efficiency_kept": round(two["eps_per_worker_cpu_s"] / one["eps_per_worker_cpu_s"], 2),
            "one_worker_cores": one["worker_cores"][0],
            "cores_needed_for_goal": need(one["eps"]),
            "cores_needed_for_goal_vs_a_whole_core": need(one["eps_per_worker_cpu_s"])}


def run(boot: str, quick: bool = False, extra: str = "", rebalance_too: bool = True) -> dict:
    n = 20_000 if quick else 60_000
    out: dict = {"throughput": [], "verdict": [], "failover": [], "rebalance": []}
    for preset in ("logistic_regression", "hoeffding_tree"):
        one = throughput(boot, preset, 1, n, extra)
        print(_line(one), flush=True)
        two = throughput(boot, preset, 2, n, extra)
        print(_line(two), flush=True)
        v = verdict(one, two)
        others = v["other_cores_max"]
        out["throughput"] += [one, two]
        out["verdict"].append(v)
        print(f"{preset}: x{v['ratio']} ({'meets' if v['met'] else 'misses'} {v['goal']}x"
              f"{'' if v['conclusive'] else ', not conclusive: other jobs took up to %s cores' % others}); "
              f"per-CPU efficiency "
              f"kept {v['efficiency_kept']}; {v['goal']}x needs {v['cores_needed_for_goal']['total']} cores "
              f"(workers {v['cores_needed_for_goal']['workers']} + broker {v['cores_needed_for_goal']['broker']}); "
              f"against a worker with a whole core: {v['cores_needed_for_goal_vs_a_whole_core']['total']} cores",
              flush=True)
        if preset == "logistic_regression":
            f = failover(boot, preset, rate=one["eps"] / 4, seconds=20 if quick else 30, kill_at=8,
                         session_ms=6000)
            out["failover"].append(f)
            print(f"fail-over after kill -9 of 1 of 2 workers: {f['failover_s']} s "
                  f"(session timeout {f['session_timeout_ms']} ms); {f['predicted']}/{f['events']} predicted; "
                  f"latency p50 {f['latency_p50_s']} s, max {f['latency_max_s']} s; load {f['load'][0]}", flush=True)
            if rebalance_too:
                r = rebalance(boot, preset, 300.0, 50, 15, 32)
                out["rebalance"].append(r)
                print(f"rebalance at 300 ev/s: join lowest 1 s bin {r['join']['lowest_bin_per_s']}, back to 90% "
                      f"after {r['join']['recovered_after_s']} s; leave lowest {r['leave']['lowest_bin_per_s']}, "
                      f"back after {r['leave']['recovered_after_s']} s; aborted transactions "
                      f"{r['aborted_transactions']}; {r['predicted']}/{r['events']} predicted; load {r['load'][0]}",
                      flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS", "127.0.0.1:49092"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rebalance", action="store_true", help="only the rebalance cost: a third worker joins, leaves")
    ap.add_argument("--no-rebalance", action="store_true", help="throughput and fail-over only")
    ap.add_argument("--throughput", type=int, metavar="WORKERS", action="append",
                    help="only the throughput run with this many workers (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="TABLE.FIELD=VALUE",
                    help="a deployment setting for the throughput runs, e.g. processor.commit_interval_ms=500")
    ap.add_argument("--preset", default="logistic_regression")
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--rate", type=float, default=300.0, help="events/s offered for --rebalance")
    args = ap.parse_args()
    if args.rebalance:
        print(json.dumps(rebalance(args.bootstrap, args.preset, args.rate, 50, 15, 32)))
        return
    if args.throughput:
        for w in args.throughput:
            e = throughput(args.bootstrap, args.preset, w, args.events, _settings(args.set))
            print(_line(e), flush=True)
            print(json.dumps(e))
        return
    res = run(args.bootstrap, args.quick, _settings(args.set), rebalance_too=not args.no_rebalance)
    os.makedirs(os.path.join(ROOT, "bench-results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench-results", "scaling.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M %Z"), **res}, f, indent=2)


if __name__ == "__main__":
    main()
