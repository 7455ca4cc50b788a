"""Capacity model and a discrete-event simulation of a keyed deployment (docs/scaling.md,
"Capacity model"). Standard library only, seeded, a few seconds per run.

Two parts:

1. **Sizing, on paper**: from the per-core rates measured on this project's 2-core machine
   (CALIBRATION, each with its source), the processes and partitions a target rate needs in
   keyed and in global mode, and the share of labels a single global trainer can learn.
2. **Simulation** of N keyed workers (default 100) owning P tasks (a partition index each),
   stepped in time: process crashes (the pod restarts under its id within the session
   timeout: no rebalance, its tasks restore and replay on it), node losses (its tasks move
   after the session timeout; it returns later and they move back), optional scaling steps,
   the range assignor over the members sorted by id (so one member more or less moves most
   tasks), an eager rebalance pause for every member, version cuts every S seconds per task.
   A moved or restarted task restores its version (CPU), replays what was learned since
   that version (CPU, outputs suppressed) and drains the backlog of the pause, on its
   owner's spare capacity. Reported: availability (task-seconds served in real time),
   lost capacity (core-seconds not doing live work: dead processes, pauses, restores,
   replays, version cuts) and catch-up times (disruption to live again).

    python3 scripts/sim/capacity.py                      # the tables quoted in docs/scaling.md
    python3 scripts/sim/capacity.py --instances 10 --hours 1 --json
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
from dataclasses import asdict, dataclass, replace

# Per-core rates (events/s; an event is one features record and its label) and costs,
# measured on a 2 vCPU shared machine, Python 3.11.7, River 0.26.1, Kafka 4.1.1.
CALIBRATION = {
    # docs/benchmarks.md, Throughput: River's bare predict+learn loop, Driftline end to end.
    "river_loop": {"lr": 85_410, "ht": 30_383, "arf": 1_981},
    "single_process": {"lr": 16_033, "ht": 12_504, "arf": 2_045},
    # docs/scaling.md, Global mode, Measured (scripts/bench/global_mode.py, Agrawal, 2026-12-03):
    # the trainer end to end (mean of two runs) and one predictor process.
    "global_trainer": {"lr": 5_969, "ht": 3_654, "arf": 335},
    "global_predictor": {"lr": 14_205, "ht": 14_154, "arf": 3_643},
    # docs/scaling.md, Measured: one keyed worker, 1,000 keys, 8 partitions.
    "keyed_worker": {"lr": 12_094, "ht": 6_519},
    # docs/scaling.md, Cost: one eviction and its later restore of one key (CPU s).
    "key_restore_s": {"lr": 0.00127, "ht": 0.00250},
    # docs/scaling.md, Measured: fail-over after kill -9 with a 6 s session timeout: 9.4 s.
    # The 3.4 s beyond the session timeout (abort, rebalance, restore, replay of a small
    # model) is taken as the pause of an eager rebalance: an upper bound.
    "rebalance_pause_s": 9.4 - 6.0,
    # docs/benchmarks.md, one version cut with the forked writer blocks the loop 7.6 ms
    # (22.5 MB forest); taken for every cut of every task: an upper bound for small models.
    "cut_block_s": 0.0076,
}


def range_assign(members: list[str], partitions: int) -> dict[int, str]:
    """Kafka's range assignor for one topic (co-partitioned topics get the same): members
    sorted by id, contiguous ranges, the first ``partitions % n`` members one more."""
    members = sorted(members)
    n, out, start = len(members), {}, 0
    for i, m in enumerate(members):
        size = partitions // n + (1 if i < partitions % n else 0)
        for p in range(start, start + size):
            out[p] = m
        start += size
    return out


def sticky_assign(members: list[str], current: dict[int, str | None]) -> dict[int, str]:
    """What an assignor that keeps co-partitioning and moves only what it must would give:
    tasks stay with live owners, orphans and the excess of the busiest go to the least busy."""
    members = sorted(members)
    n, parts = len(members), sorted(current)
    quota = {m: len(parts) // n + (1 if i < len(parts) % n else 0) for i, m in enumerate(members)}
    out, load = {}, {m: 0 for m in members}
    for p in parts:
        o = current[p]
        if o in load and load[o] < quota[o]:
            out[p], load[o] = o, load[o] + 1
    for p in parts:
        if p not in out:
            m = min(members, key=lambda k: (load[k] - quota[k], k))
            out[p], load[m] = m, load[m] + 1
    return out


def sizing(target: float, utilisation: float = 0.7, per_member_partitions: int = 4) -> dict:
    """Processes (one core each) and partitions for ``target`` events/s, per model."""
    out = {}
    for model in ("lr", "ht", "arf"):
        keyed = CALIBRATION["keyed_worker"].get(model, CALIBRATION["single_process"][model])
        workers = math.ceil(target / (keyed * utilisation))
        # The trainer as measured end to end; River's bare loop bounds it from above.
        trainer_lo, trainer_hi = CALIBRATION["global_trainer"][model], CALIBRATION["river_loop"][model]
        predictor = CALIBRATION["global_predictor"][model]
        predictors = math.ceil(target / (predictor * utilisation))
        out[model] = {
            "keyed_rate_per_core": keyed, "keyed_workers": workers, "keyed_partitions": per_member_partitions * workers,
            "predictor_rate_per_core": predictor,
            "predictors": predictors, "global_partitions": per_member_partitions * predictors,
            "trainer_rate_range": [trainer_lo, trainer_hi],
            "label_share_range": [min(1.0, trainer_lo * utilisation / target), min(1.0, trainer_hi * utilisation / target)],
        }
    return out


@dataclass(frozen=True)
class Scenario:
    instances: int = 100
    partitions_per_instance: int = 4
    model: str = "lr"
    utilisation: float = 0.6          # offered load / (instances x per-core rate)
    keys_per_task: int = 1000
    snapshot_s: float = 60.0          # [checkpoint] every_seconds
    session_timeout_s: float = 10.0   # [scale] session_timeout_ms
    crash_mtbf_h: float = 24.0        # per process: restarts under its id
    restart_s: float = 5.0
    node_mtbf_h: float = 24.0 * 7     # per process: gone longer than the session timeout
    node_down_s: float = 600.0
    scale_steps_per_h: float = 0.0    # autoscaler steps, alternating +1 / -1 member
    assignor: str = "range"           # "range" (what Driftline uses) or "sticky" (hypothetical)
    hours: float = 6.0
    seed: int = 1


@dataclass
class _Task:
    owner: str | None
    backlog: float = 0.0        # events to process before it is live (replay + arrivals)
    restore: float = 0.0        # CPU seconds of restore still to do
    live: bool = True
    since: float = 0.0          # live since / disrupted since
    last_cut: float = 0.0       # the cut it would restore from, while disrupted


@dataclass
class Result:
    scenario: dict
    availability: float
    lost_capacity: float
    catch_up_p50_s: float
    catch_up_p99_s: float
    catch_up_max_s: float
    disruptions: int
    crashes: int
    node_losses: int
    scale_steps: int
    rebalances: int
    tasks_moved: int
    events_replayed: float
    offered_events: float
    processed_events: float
    backlog_left: float


def simulate(sc: Scenario) -> Result:
    rng = random.Random(sc.seed)
    rate = CALIBRATION["keyed_worker"][sc.model]
    restore_cost = sc.keys_per_task * CALIBRATION["key_restore_s"][sc.model]
    pause = CALIBRATION["rebalance_pause_s"]
    n_parts = sc.instances * sc.partitions_per_instance
    lam = sc.utilisation * sc.instances * rate / n_parts            # events/s per task
    horizon, dt = sc.hours * 3600.0, 1.0
    members = {str(i): True for i in range(sc.instances)}            # id -> alive
    phase = [rng.uniform(0, sc.snapshot_s) for _ in range(n_parts)]
    tasks = [_Task(owner=o) for _, o in sorted(range_assign(list(members), n_parts).items())]
    paused_until = 0.0
    events: list[tuple[float, int, str, str]] = []
    seq = 0

    def push(t: float, kind: str, who: str) -> None:
        nonlocal seq
        if t < horizon:
            heapq.heappush(events, (t, seq, kind, who))
            seq += 1

    for m in members:
        push(rng.expovariate(1 / (sc.crash_mtbf_h * 3600)), "crash", m)
        push(rng.expovariate(1 / (sc.node_mtbf_h * 3600)), "node", m)
    if sc.scale_steps_per_h > 0:
        push(rng.expovariate(sc.scale_steps_per_h / 3600), "scale", "")
    cut = lambda p, t: t - ((t - phase[p]) % sc.snapshot_s) if t >= phase[p] else 0.0  # noqa: E731

    def disrupt(p: int, t: float, owner: str | None, restore: bool) -> None:
        task = tasks[p]
        if task.live:
            task.last_cut = max(cut(p, t), task.since)
            task.since = t
            task.live = False
            counts["disruptions"] += 1
        if restore:  # memory lost: restore the version, replay since its cut
            task.restore = restore_cost
            replay = lam * (t - task.last_cut)
            task.backlog += replay
            counts["replayed"] += replay
        if task.owner != owner:
            dirty[0] = True
        task.owner = owner

    def rebalance(t: float) -> None:
        nonlocal paused_until
        alive = [m for m, up in members.items() if up]
        new = (range_assign(alive, n_parts) if sc.assignor == "range"
               else sticky_assign(alive, {p: task.owner for p, task in enumerate(tasks)}))
        for p, task in enumerate(tasks):
            moved = new[p] != task.owner
            counts["moved"] += moved
            if moved or not task.live:
                disrupt(p, t, new[p], restore=moved)
            else:  # every member revokes and resumes (eager protocol): a pause, no restore
                disrupt(p, t, new[p], restore=False)
        paused_until = t + pause
        counts["rebalances"] += 1

    dirty = [True]  # the tasks' owners changed: regroup them
    counts = {"disruptions": 0, "crashes": 0, "nodes": 0, "scale": 0, "rebalances": 0, "moved": 0, "replayed": 0.0}
    down_until: dict[str, float] = {}
    grow = True
    by_owner: dict[str | None, list[int]] = {}
    served = total = lost = processed = offered = 0.0
    catch_up: list[float] = []
    t = 0.0
    while t < horizon:
        while events and events[0][0] <= t:
            _, _, kind, who = heapq.heappop(events)
            if kind == "crash" and members.get(who):
                counts["crashes"] += 1
                down_until[who] = t + sc.restart_s
                for p, task in enumerate(tasks):
                    if task.owner == who:
                        disrupt(p, t, who, restore=True)
                push(t + rng.expovariate(1 / (sc.crash_mtbf_h * 3600)), "crash", who)
            elif kind == "node" and members.get(who):
                counts["nodes"] += 1
                members[who] = False
                down_until[who] = t + sc.node_down_s
                for p, task in enumerate(tasks):
                    if task.owner == who:
                        disrupt(p, t, who, restore=True)
                push(t + sc.session_timeout_s, "rebalance", who)
                push(t + sc.node_down_s, "return", who)
                push(t + rng.expovariate(1 / (sc.node_mtbf_h * 3600)), "node", who)
            elif kind == "return" and who in members:
                members[who] = True
                rebalance(t)
            elif kind == "rebalance":
                rebalance(t)
            elif kind == "scale":
                counts["scale"] += 1
                if grow:
                    new_id = str(len(members))
                    members[new_id] = True
                    push(t + rng.expovariate(1 / (sc.crash_mtbf_h * 3600)), "crash", new_id)
                else:  # the highest ordinal leaves; a static member is noticed after the session timeout
                    last = str(len(members) - 1)
                    del members[last]
                    for p, task in enumerate(tasks):
                        if task.owner == last:
                            disrupt(p, t, last, restore=False)
                    push(t + sc.session_timeout_s, "rebalance", last)
                if grow:
                    rebalance(t)
                grow = not grow
                push(t + rng.expovariate(sc.scale_steps_per_h / 3600), "scale", "")
        # one step: arrivals of every task, processed by its owner if that one works
        offered += lam * dt * n_parts
        total += len(members) * dt
        if dirty[0]:
            dirty[0] = False
            by_owner = {}
            for p, task in enumerate(tasks):
                by_owner.setdefault(task.owner, []).append(p)
        working = t >= paused_until
        for m, up in members.items():
            owned = by_owner.get(m, ())
            if not up or not working or down_until.get(m, 0.0) > t:
                lost += dt
                for p in owned:
                    tasks[p].backlog += lam * dt
                continue
            budget = rate * dt
            behind = []
            for p in owned:
                task = tasks[p]
                if task.live:
                    budget -= lam * dt
                else:
                    behind.append(p)
            if budget < 0:  # overloaded: every task falls behind by its share
                for p in owned:
                    task = tasks[p]
                    if task.live:
                        task.last_cut, task.since, task.live = max(cut(p, t), task.since), t, False
                        counts["disruptions"] += 1
                        behind.append(p)
                budget = rate * dt
            live_work = rate * dt - budget
            processed += live_work
            for p in sorted(behind):
                task = tasks[p]
                task.backlog += lam * dt
                if task.restore > 0:
                    spend = min(task.restore, budget / rate)
                    task.restore -= spend
                    budget -= spend * rate
                    if task.restore > 0:
                        continue
                work = min(task.backlog, budget)
                task.backlog -= work
                budget -= work
                processed += work
                if task.backlog <= 0 and task.restore <= 0:
                    catch_up.append(t + dt - task.since)
                    task.live, task.since, task.backlog = True, t + dt, 0.0
            lost += (rate * dt - budget - live_work) / rate  # restore, replay and backlog work
        for task in tasks:  # tasks of a member that left, waiting to be moved
            if task.owner not in members:
                task.backlog += lam * dt
        served += sum(1 for task in tasks if task.live) * dt
        t += dt
    cuts = n_parts * horizon / sc.snapshot_s * CALIBRATION["cut_block_s"]
    lost += cuts
    catch_up.sort()
    pick = lambda q: catch_up[min(len(catch_up) - 1, int(q * len(catch_up)))] if catch_up else 0.0  # noqa: E731
    return Result(
        scenario=asdict(sc), availability=served / (n_parts * horizon), lost_capacity=lost / total,
        catch_up_p50_s=pick(0.5), catch_up_p99_s=pick(0.99), catch_up_max_s=catch_up[-1] if catch_up else 0.0,
        disruptions=counts["disruptions"], crashes=counts["crashes"], node_losses=counts["nodes"],
        scale_steps=counts["scale"], rebalances=counts["rebalances"], tasks_moved=counts["moved"],
        events_replayed=counts["replayed"], offered_events=offered, processed_events=processed,
        backlog_left=sum(task.backlog for task in tasks))


SCENARIOS = {
    "baseline": {},
    "cuts every 10 s": {"snapshot_s": 10.0},
    "cuts every 300 s": {"snapshot_s": 300.0},
    "Hoeffding tree": {"model": "ht"},
    "+ 2 autoscaler steps/h": {"scale_steps_per_h": 2.0},
    "crash MTBF 2 h": {"crash_mtbf_h": 2.0},
    "utilisation 0.85": {"utilisation": 0.85},
    "sticky co-partitioned assignor": {"assignor": "sticky"},
}


def _table(results: dict[str, Result]) -> str:
    rows = ["| scenario | availability | lost capacity | catch-up p50 / p99 / max (s) | crashes / node losses "
            "/ scale steps | rebalances | tasks moved | events replayed |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r.availability:.5f} | {r.lost_capacity:.4f} | {r.catch_up_p50_s:.0f} / "
                    f"{r.catch_up_p99_s:.0f} / {r.catch_up_max_s:.0f} | {r.crashes} / {r.node_losses} / "
                    f"{r.scale_steps} | {r.rebalances} | {r.tasks_moved:,} | {r.events_replayed:,.0f} |")
    return "\n".join(rows)


def _sizing_table(target: float) -> str:
    names = {"lr": "logistic regression", "ht": "Hoeffding tree", "arf": "adaptive random forest (10 trees)"}
    rows = [f"| model | keyed: per core | keyed: workers / partitions for {target:,.0f} ev/s | global: per "
            "predictor core | global: predictors / partitions | global trainer: ev/s per core | label share one "
            "trainer learns |",
            "|---|---|---|---|---|---|---|"]
    for model, s in sizing(target).items():
        lo, hi = sorted(s["trainer_rate_range"])
        slo, shi = sorted(s["label_share_range"])
        rows.append(f"| {names[model]} | {s['keyed_rate_per_core']:,} | {s['keyed_workers']:,} / "
                    f"{s['keyed_partitions']:,} | {s['predictor_rate_per_core']:,} | "
                    f"{s['predictors']:,} / {s['global_partitions']:,} | "
                    f"{lo:,}-{hi:,} | {100 * slo:.2f}%-{100 * shi:.2f}% |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=Scenario.instances)
    parser.add_argument("--hours", type=float, default=Scenario.hours)
    parser.add_argument("--seed", type=int, default=Scenario.seed)
    parser.add_argument("--target", type=float, default=1_000_000.0, help="events/s to size for")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    args = parser.parse_args(argv)
    if args.instances < 2 or args.hours <= 0:
        print("capacity.py: --instances must be at least 2 and --hours positive", file=sys.stderr)
        return 1
    base = Scenario(instances=args.instances, hours=args.hours, seed=args.seed)
    results = {name: simulate(replace(base, **SCENARIOS[name])) for name in (args.scenario or SCENARIOS)}
    if args.json:
        print(json.dumps({"calibration": CALIBRATION, "sizing": sizing(args.target),
                          "simulation": {k: asdict(v) for k, v in results.items()}}, indent=1))
        return 0
    print(_sizing_table(args.target))
    print()
    print(f"Simulation: {base.instances} workers, {base.instances * base.partitions_per_instance} tasks, "
          f"{base.hours:g} h, seed {base.seed}; baseline = {asdict(base)}")
    print()
    print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
