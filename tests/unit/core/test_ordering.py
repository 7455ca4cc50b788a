"""Event-time merge: a total order over sources, waiting (boundedly) for lagging sources."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.core.events import InputRecord
from driftline.core.ordering import EventTimeMerger

SOURCES = [("features", 0), ("features", 1), ("labels", 0), ("labels", 1)]


def record(kind: str, partition: int, offset: int, ts: int) -> InputRecord:
    return InputRecord(kind, partition, offset, ts, None, b"")


def everyone_caught_up(_source) -> bool:
    return True


def drain(merger: EventTimeMerger, caught_up=everyone_caught_up, now_ms: int = 0) -> list[InputRecord]:
    out = []
    while (r := merger.pop(caught_up, now_ms)) is not None:
        out.append(r)
    return out


def key(r: InputRecord) -> tuple:
    return (r.timestamp, r.kind != "labels", r.partition, r.offset)


def test_release_order_is_time_then_labels_then_partition_then_offset():
    merger = EventTimeMerger(SOURCES, max_idle_ms=0)
    pushed = [
        record("features", 1, 0, 5), record("features", 1, 1, 7),
        record("features", 0, 0, 5), record("features", 0, 1, 5),
        record("labels", 1, 0, 5), record("labels", 0, 0, 6), record("labels", 0, 1, 7),
    ]
    for r in pushed:
        merger.push(r)
    assert len(merger) == 7 and merger.buffered(("features", 0)) == 2
    expected = [("labels", 1, 0), ("features", 0, 0), ("features", 0, 1), ("features", 1, 0),
                ("labels", 0, 0), ("labels", 0, 1), ("features", 1, 1)]
    assert [(r.kind, r.partition, r.offset) for r in drain(merger)] == expected
    assert len(merger) == 0 and merger.pop(everyone_caught_up, 0) is None


def test_waits_for_a_lagging_source_at_most_max_idle_ms():
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=100)
    merger.push(record("features", 0, 0, 10))
    labels_lag = lambda src: src != ("labels", 0)  # noqa: E731
    assert merger.pop(labels_lag, now_ms=1000) is None
    assert merger.pop(labels_lag, now_ms=1099) is None
    assert merger.pop(labels_lag, now_ms=1100).offset == 0


def test_a_lagging_source_that_delivers_in_time_keeps_the_order():
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=100)
    merger.push(record("features", 0, 0, 10))
    assert merger.pop(lambda src: src != ("labels", 0), now_ms=0) is None
    merger.push(record("labels", 0, 0, 10))
    assert [r.kind for r in drain(merger, now_ms=50)] == ["labels", "features"]
    # the wait is over: a new lag waits the full max_idle_ms again
    merger.push(record("features", 0, 1, 20))
    assert merger.pop(lambda src: src != ("labels", 0), now_ms=60) is None
    assert merger.pop(lambda src: src != ("labels", 0), now_ms=159) is None


def test_nothing_buffered_returns_none_even_when_lagging():
    merger = EventTimeMerger(SOURCES, max_idle_ms=0)
    assert merger.pop(lambda src: False, now_ms=10**9) is None


def test_clear_drops_everything():
    merger = EventTimeMerger(SOURCES, max_idle_ms=0)
    merger.push(record("labels", 1, 0, 1))
    merger.clear()
    assert len(merger) == 0 and merger.pop(everyone_caught_up, 0) is None


def test_after_the_idle_timeout_the_buffered_records_flow():
    # regression: the timer was re-armed after each release, so a lagging source let one
    # record through per max_idle_ms
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=100)
    for i in range(5):
        merger.push(record("features", 0, i, i))
    labels_lag = lambda src: src != ("labels", 0)  # noqa: E731
    assert merger.pop(labels_lag, now_ms=0) is None
    assert len(drain(merger, labels_lag, now_ms=100)) == 5


def test_each_lagging_source_gets_its_own_max_idle_ms():
    sources = [("features", 0), ("labels", 0), ("labels", 1)]
    merger = EventTimeMerger(sources, max_idle_ms=100)
    lagging = {("labels", 0)}
    caught_up = lambda src: src not in lagging  # noqa: E731
    merger.push(record("features", 0, 0, 1))
    merger.push(record("labels", 1, 0, 5))
    assert merger.pop(caught_up, now_ms=0) is None
    assert merger.pop(caught_up, now_ms=100).offset == 0  # labels:0 had its 100 ms
    merger.push(record("features", 0, 1, 9))
    lagging.add(("labels", 1))  # labels:1 just ran dry with more to fetch: it deserves 100 ms too
    assert merger.pop(caught_up, now_ms=150).kind == "labels"  # buffered labels:1 head (t=5)
    assert merger.pop(caught_up, now_ms=160) is None


# -- properties ----------------------------------------------------------------------------

@st.composite
def per_source_streams(draw):
    """Per source, records in offset order with non-decreasing timestamps, plus an
    interleaving (a sequence of source indices) in which they are pushed."""
    streams = []
    for kind, partition in SOURCES:
        gaps = draw(st.lists(st.integers(0, 3), max_size=8))
        ts, recs = 0, []
        for offset, gap in enumerate(gaps):
            ts += gap
            recs.append(record(kind, partition, offset, ts))
        streams.append(recs)
    order = [i for i, recs in enumerate(streams) for _ in recs]
    return streams, draw(st.permutations(order))


@settings(max_examples=200, deadline=None)
@given(per_source_streams())
def test_all_caught_up_pop_everything_is_globally_sorted(data):
    streams, order = data
    merger = EventTimeMerger(SOURCES, max_idle_ms=0)
    cursors = [iter(s) for s in streams]
    for i in order:
        merger.push(next(cursors[i]))
    expected = sorted((r for s in streams for r in s), key=key)
    assert drain(merger) == expected


@settings(max_examples=200, deadline=None)
@given(per_source_streams(), st.lists(st.booleans(), min_size=40, max_size=40))
def test_interleaved_pops_with_truthful_caught_up_stay_sorted(data, pops):
    """A source is caught up once all its records were pushed; pops may happen at any
    point between pushes. Without timeouts the output is still the global order."""
    streams, order = data
    merger = EventTimeMerger(SOURCES, max_idle_ms=10**9)
    remaining = {src: len(s) for src, s in zip(SOURCES, streams)}
    caught_up = lambda src: remaining[src] == 0  # noqa: E731
    cursors = [iter(s) for s in streams]
    out = []
    for step, i in enumerate(order):
        merger.push(next(cursors[i]))
        remaining[SOURCES[i]] -= 1
        if pops[step % len(pops)] and (r := merger.pop(caught_up, 0)) is not None:
            out.append(r)
    out += drain(merger, caught_up)
    assert out == sorted((r for s in streams for r in s), key=key)


def reference_pops(streams, caught_up) -> list[InputRecord]:
    """The per-record rule written out plainly: while no empty source is lagging, release
    the smallest head. Timestamps need not increase within a source (Kafka allows it)."""
    queues = {src: list(recs) for src, recs in zip(SOURCES, streams)}
    out = []
    while True:
        if any(not q and not caught_up(src) for src, q in queues.items()):
            return out
        heads = [q[0] for q in queues.values() if q]
        if not heads:
            return out
        best = min(heads, key=key)
        out.append(queues[(best.kind, best.partition)].pop(0))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 20), max_size=12), min_size=4, max_size=4),
    st.sets(st.sampled_from(SOURCES)),
    st.lists(st.integers(1, 5), min_size=1, max_size=8),
)
def test_pop_run_releases_what_per_record_pops_would(timestamps, lagging, limits):
    streams = [[record(k, p, off, ts) for off, ts in enumerate(tss)] for (k, p), tss in zip(SOURCES, timestamps)]
    caught_up = lambda src: src not in lagging  # noqa: E731
    merger = EventTimeMerger(SOURCES, max_idle_ms=10**9)
    for recs in streams:
        for r in recs:
            merger.push(r)
    out, i = [], 0
    while run := merger.pop_run(caught_up, 0, limits[i % len(limits)]):
        assert len(run) <= limits[i % len(limits)]
        assert len({(r.kind, r.partition) for r in run}) == 1
        out += run
        i += 1
    assert out == reference_pops(streams, caught_up)
