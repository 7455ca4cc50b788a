"""scripts/sim/capacity.py: the assignors, the sizing arithmetic and the simulation's
invariants on small seeded runs (10 workers, half an hour)."""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("capacity_sim", ROOT / "scripts" / "sim" / "capacity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("capacity_sim", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small(sim):
    return sim.Scenario(instances=10, hours=0.5, seed=7, crash_mtbf_h=2.0, node_mtbf_h=3.0, node_down_s=300.0)


def test_range_assignor_is_contiguous_balanced_and_sorts_ids_as_strings(sim) -> None:
    out = sim.range_assign(["2", "10", "1"], 8)  # sorted: "1", "10", "2"
    assert [out[p] for p in range(8)] == ["1", "1", "1", "10", "10", "10", "2", "2"]
    # one member more moves most tasks: the reason rebalances are expensive with it
    before, after = sim.range_assign([str(i) for i in range(10)], 40), sim.range_assign([str(i) for i in range(11)], 40)
    assert sum(before[p] != after[p] for p in range(40)) > 20


def test_sticky_assignor_moves_only_the_orphans_and_stays_balanced(sim) -> None:
    members = [str(i) for i in range(10)]
    current = sim.range_assign(members, 40)
    out = sim.sticky_assign([m for m in members if m != "3"], current)
    moved = [p for p in range(40) if out[p] != current[p]]
    assert sorted(moved) == sorted(p for p, m in current.items() if m == "3")
    loads = [list(out.values()).count(m) for m in set(out.values())]
    assert max(loads) - min(loads) <= 1


def test_sizing_covers_the_target_with_four_partitions_per_process(sim) -> None:
    for model, s in sim.sizing(1_000_000, utilisation=0.7).items():
        rate = s["keyed_rate_per_core"]
        assert s["keyed_workers"] * rate * 0.7 >= 1_000_000 > (s["keyed_workers"] - 1) * rate * 0.7
        assert s["keyed_partitions"] == 4 * s["keyed_workers"]
        lo, hi = s["trainer_rate_range"]
        assert s["label_share_range"] == [pytest.approx(lo * 0.7 / 1e6), pytest.approx(hi * 0.7 / 1e6)]
    assert math.isclose(sim.sizing(1_000)["lr"]["label_share_range"][0], 1.0)  # capped: learns every label


def test_a_run_is_seeded(sim, small) -> None:
    a, b = sim.simulate(small), sim.simulate(small)
    assert a == b
    assert sim.simulate(replace(small, seed=8)) != a


def test_every_event_is_processed_or_still_waiting(sim, small) -> None:
    r = sim.simulate(small)
    assert r.crashes + r.node_losses > 0 and r.rebalances > 0 and r.events_replayed > 0
    assert r.processed_events + r.backlog_left == pytest.approx(r.offered_events + r.events_replayed, rel=1e-9)
    assert 0 < r.availability < 1 and 0 < r.lost_capacity < 1
    assert 0 < r.catch_up_p50_s <= r.catch_up_p99_s <= r.catch_up_max_s


def test_without_failures_everything_is_served_and_only_cuts_cost(sim, small) -> None:
    calm = sim.simulate(replace(small, crash_mtbf_h=1e9, node_mtbf_h=1e9))
    assert (calm.availability, calm.rebalances, calm.disruptions, calm.events_replayed) == (1.0, 0, 0, 0)
    cuts = 40 * 1800 / small.snapshot_s * sim.CALIBRATION["cut_block_s"]
    assert calm.lost_capacity == pytest.approx(cuts / (10 * 1800))
    assert calm.backlog_left == 0


def test_cutting_versions_more_often_replays_less(sim, small) -> None:
    replayed = [sim.simulate(replace(small, snapshot_s=s)).events_replayed for s in (10.0, 60.0, 300.0)]
    assert replayed[0] < replayed[1] < replayed[2]


def test_a_sticky_assignor_moves_fewer_tasks_than_range(sim, small) -> None:
    ranged, sticky = sim.simulate(small), sim.simulate(replace(small, assignor="sticky"))
    assert sticky.rebalances == ranged.rebalances
    assert sticky.tasks_moved < ranged.tasks_moved and sticky.availability > ranged.availability


def test_the_command_refuses_a_useless_size(sim, capsys) -> None:
    assert sim.main(["--instances", "1"]) == 1
    assert "at least 2" in capsys.readouterr().err
