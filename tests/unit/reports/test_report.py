"""The per-version report: one histogram per feature, rows sorted by statistic, the drift
timeline equal to the engine's drift events, nothing loaded from outside, small."""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser

import orjson
import pytest

from driftline.config import DeploymentConfig, ModelConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import DriftEvent
from driftline.reports import report_data, render_html, version_report
from driftline.versions.store import VersionStore

N_FEATURES = 50
SHIFTED = 20  # the first SHIFTED features move by 1 sigma at CHANGE
CHANGE = 2500


def drifting_run(n: int = 4000, n_features: int = N_FEATURES, seed: int = 7):
    """A logistic-regression engine on a stream whose first features shift, with its drift events."""
    names = [f"f{i:02d}" for i in range(n_features - 1)] + ["colour"]
    features = {name: "num" for name in names[:-1]} | {"colour": "cat"}
    engine = Engine(DeploymentConfig(
        name="rep", model=ModelConfig(preset="logistic_regression", features=features, classes=[False, True]),
        drift={"metrics_window": 500, "data": {"enabled": True, "reference_size": 500, "window_size": 500,
                                               "step": 250}}))
    rng = random.Random(seed)
    events: list[DriftEvent] = []
    for i in range(n):
        shift = 1.0 if i >= CHANGE else 0.0
        x = {name: rng.gauss(shift if j < SHIFTED else 0.0, 1) for j, name in enumerate(names[:-1])}
        x["colour"] = rng.choice("rgb")
        y = x["f00"] + x["f01"] > 0 if i < CHANGE else x["f00"] - x["f01"] > 1
        key = f"e{i}".encode()
        for rec in (InputRecord("features", 0, i, 2 * i, key, orjson.dumps({"id": f"e{i}", "features": x})),
                    InputRecord("labels", 0, i, 2 * i + 1, key, orjson.dumps({"id": f"e{i}", "label": y}))):
            events += [o for o in engine.process(rec, 0) if isinstance(o, DriftEvent)]
    return engine, events


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def run():
    return drifting_run()


@pytest.fixture(scope="module")
def html(run):
    engine, _ = run
    meta = {"name": "rep", "version": 3, "parent": 2, "trigger": "drift", "examples_seen": engine.n_learned,
            "created_at": 1_790_000_000_000, "metrics": engine.scores.values(), "model_class": "Pipeline"}
    return render_html(report_data(meta, engine, [meta]))


def test_one_histogram_per_feature(html):
    blocks = re.findall(r'<div class="feat" id="f-\d+">(.*?)</div>', html, re.S)
    assert len(blocks) == N_FEATURES
    for block in blocks:
        assert block.count("reference vs current</title>") == 1
        assert block.count("<svg") == 2  # the histogram and the statistic over windows


def test_rows_sorted_by_statistic(html, run):
    engine, _ = run
    rows = re.findall(r'<tr class="[a-z]*" data-feature="([^"]+)">', html)
    assert len(rows) == N_FEATURES
    last = engine.data_watch.last
    stats = [last[name]["statistic"] for name in rows]
    assert stats == sorted(stats, reverse=True)
    drifted = {n for n, t in last.items() if t["drift"]}
    assert drifted and drifted <= {f"f{i:02d}" for i in range(SHIFTED)}


def test_drift_timeline_equals_the_drift_events(html, run):
    _, events = run
    assert events, "the stream must drift"
    assert re.findall(r'<tr data-drift-id="([^"]+)">', html) == [e.id for e in events]


def test_nothing_loaded_from_outside(html):
    parser = Collect()
    parser.feed(html)
    assert not [t for t, _ in parser.tags if t in ("script", "link", "img", "iframe", "object", "embed")]
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html)
    assert "@import" not in html and "url(" not in html
    # The only URL is the SVG namespace, an identifier that is never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}


def test_small_for_50_features(html):
    assert len(html.encode()) < 300_000


def test_rebuilt_from_the_version_store(tmp_path, run):
    engine, events = run
    store = VersionStore(str(tmp_path), "rep", key=b"k")
    store.save(1, {"parent": None, "trigger": "initial", "examples_seen": 0, "created_at": 1}, {"engine": Engine(
        DeploymentConfig(name="rep")), "positions": {}})
    store.save(2, {"parent": 1, "trigger": "drift", "examples_seen": engine.n_learned, "created_at": 2,
                   "metrics": engine.scores.values()}, {"engine": engine, "positions": {}})
    html = version_report(store)
    assert "rep, version 2" in html
    assert re.findall(r'<tr data-drift-id="([^"]+)">', html) == [e.id for e in events]
    assert re.findall(r"<tr><td>v(\d+)</td>", html) == ["2", "1"]  # lineage, newest first
    assert "importance-table" in html
