"""Event-time merge: a total order over sources, waiting for lagging sources (KIP-695) and
holding labels until the features' watermark has passed them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.core.events import InputRecord
from driftline.core.ordering import EventTimeMerger

SOURCES = [("features", 0), ("features", 1), ("labels", 0), ("labels", 1)]


def record(kind: str, partition: int, offset: int, ts: int) -> InputRecord:
    return InputRecord(kind, partition, offset, ts, None, b"")


def everyone_caught_up(_source) -> int:
    return 0


def lag_of(lagging) -> callable:
    """A lag callback: the sources in ``lagging`` are one record behind, the others caught up."""
    return lambda src: 1 if src in lagging else 0


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


def test_waits_for_a_lagging_source_without_a_time_limit():
    # KIP-695: a partition known to have data is waited for however slow its fetch is
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=100)
    merger.push(record("features", 0, 0, 10))
    labels_lag = lag_of({("labels", 0)})
    assert merger.pop(labels_lag, now_ms=1000) is None
    assert merger.pop(labels_lag, now_ms=10**9) is None
    assert merger.stats.waits == 1  # one episode, however many polls
    merger.push(record("labels", 0, 0, 10))
    assert [r.kind for r in drain(merger, now_ms=10**9)] == ["labels", "features"]


def test_an_unknown_lag_is_waited_for_like_a_known_one():
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=0)
    merger.push(record("features", 0, 0, 10))
    unknown = lambda src: None if src == ("labels", 0) else 0  # noqa: E731
    assert merger.pop(unknown, now_ms=10**9) is None
    assert merger.pop(everyone_caught_up, now_ms=10**9).kind == "features"


def test_features_do_not_wait_for_a_caught_up_label_partition():
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=10**9)
    merger.push(record("features", 0, 0, 10))
    assert merger.pop(everyone_caught_up, now_ms=0).kind == "features"


def test_a_label_waits_until_every_features_watermark_passed_its_time():
    sources = [("features", 0), ("features", 1), ("labels", 0)]
    merger = EventTimeMerger(sources, max_idle_ms=100)
    merger.push(record("features", 0, 0, 5))
    merger.push(record("features", 1, 0, 3))
    merger.push(record("labels", 0, 0, 6))
    assert [(r.kind, r.timestamp) for r in drain(merger, now_ms=0)] == [("features", 3), ("features", 5)]
    # features:0 has shown t=5, features:1 t=3: the label at 6 waits for both to pass 6
    merger.push(record("features", 0, 1, 7))
    assert merger.pop(everyone_caught_up, now_ms=50) is None
    merger.push(record("features", 1, 1, 6))  # equal time: the label goes first
    assert [(r.kind, r.partition, r.timestamp) for r in drain(merger, now_ms=60)] == [
        ("labels", 0, 6), ("features", 1, 6), ("features", 0, 7)]
    assert merger.stats.idle_releases == 0 and merger.stats.late_labels == 0


def test_a_silent_caught_up_features_partition_stops_holding_labels_after_max_idle_ms():
    sources = [("features", 0), ("features", 1), ("labels", 0)]
    merger = EventTimeMerger(sources, max_idle_ms=100)
    merger.push(record("features", 0, 0, 50))
    merger.push(record("labels", 0, 0, 10))
    merger.push(record("labels", 0, 1, 20))
    assert merger.pop(everyone_caught_up, now_ms=1000) is None  # features:1 silent since 1000
    assert merger.pop(everyone_caught_up, now_ms=1099) is None
    assert [r.offset for r in merger.pop_run(everyone_caught_up, 1100, 10)] == [0, 1]
    assert merger.stats.idle_releases == 2


def test_a_label_run_stops_at_the_smallest_features_watermark():
    sources = [("features", 0), ("features", 1), ("labels", 0)]
    merger = EventTimeMerger(sources, max_idle_ms=10**9)
    for offset, ts in enumerate((4, 8)):
        merger.push(record("features", offset, 0, ts))
    assert len(drain(merger)) == 2  # watermarks: features:0 at 4, features:1 at 8
    for offset, ts in enumerate((3, 4, 5)):
        merger.push(record("labels", 0, offset, ts))
    assert [r.timestamp for r in merger.pop_run(everyone_caught_up, 0, 10)] == [3, 4]
    assert merger.pop(everyone_caught_up, 0) is None  # t=5 waits for features:0 to pass 5


def test_labels_released_behind_a_later_feature_are_counted_late():
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=0)
    merger.push(record("features", 0, 0, 10))
    assert merger.pop(everyone_caught_up, 0).kind == "features"  # the label partition was idle
    merger.push(record("labels", 0, 0, 7))
    merger.push(record("labels", 0, 1, 11))
    assert len(drain(merger)) == 2
    assert merger.stats.late_labels == 1


def test_take_repeats_a_recorded_order_regardless_of_the_rules():
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=10**9)
    merger.push(record("labels", 0, 0, 9))
    assert merger.take_through(("labels", 0), 1) is None  # offset 1 is not fetched yet
    merger.push(record("labels", 0, 1, 10))
    merger.push(record("labels", 0, 3, 11))  # offset 2 was a transaction marker
    assert [r.offset for r in merger.take_through(("labels", 0), 1)] == [0, 1]
    assert [r.offset for r in merger.take_through(("labels", 0), 3)] == [3]


def test_nothing_buffered_returns_none_even_when_lagging():
    merger = EventTimeMerger(SOURCES, max_idle_ms=0)
    assert merger.pop(lambda src: 1, now_ms=10**9) is None


def test_clear_drops_everything():
    merger = EventTimeMerger(SOURCES, max_idle_ms=0)
    merger.push(record("labels", 1, 0, 1))
    merger.clear()
    assert len(merger) == 0 and merger.pop(everyone_caught_up, 0) is None


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
    caught_up = lambda src: remaining[src]  # noqa: E731
    cursors = [iter(s) for s in streams]
    out = []
    for step, i in enumerate(order):
        merger.push(next(cursors[i]))
        remaining[SOURCES[i]] -= 1
        if pops[step % len(pops)] and (r := merger.pop(caught_up, 0)) is not None:
            out.append(r)
    merger.max_idle_ms = 0  # the input is complete: no features partition can still deliver
    out += drain(merger, caught_up)
    assert out == sorted((r for s in streams for r in s), key=key)


def reference_pops(streams, caught_up) -> list[InputRecord]:
    """The per-record rule written out plainly: while no empty source is lagging, release
    the smallest head. Timestamps need not increase within a source (Kafka allows it)."""
    queues = {src: list(recs) for src, recs in zip(SOURCES, streams)}
    out = []
    while True:
        if any(not q and caught_up(src) != 0 for src, q in queues.items()):
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
    caught_up = lag_of(lagging)
    merger = EventTimeMerger(SOURCES, max_idle_ms=0)  # idle at once: the label rule never holds
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


@settings(max_examples=300, deadline=None)
@given(per_source_streams(), st.lists(st.integers(0, 3), min_size=40, max_size=40))
def test_no_label_goes_before_a_pushed_feature_with_an_earlier_time(data, actions):
    """Live: records arrive in any interleaving, pops happen between arrivals, every source
    looks caught up whenever it is empty (the worst case: arrivals are not foreseen) and no
    partition is ever idle long enough. A released label with time T never precedes a
    feature with time < T that was already pushed, or that was pushed later on a partition
    whose watermark had not passed T."""
    streams, order = data
    merger = EventTimeMerger(SOURCES, max_idle_ms=10**9)
    cursors = [iter(s) for s in streams]
    released: list[InputRecord] = []
    for step, i in enumerate(order):
        merger.push(next(cursors[i]))
        for _ in range(actions[step % len(actions)]):
            released += merger.pop_run(everyone_caught_up, 0, 3)
    for k, rec in enumerate(released):
        if rec.kind == "labels":
            later_features = [r for r in released[k + 1:] if r.kind == "features"]
            assert all(r.timestamp >= rec.timestamp for r in later_features), (rec, later_features)
    # Nothing is lost: what is not released is still buffered.
    assert len(released) + len(merger) == sum(len(s) for s in streams)
