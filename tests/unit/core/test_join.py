"""The join buffer: either arrival order joins, duplicates are refused, entries expire."""

from __future__ import annotations

import pytest

from driftline.core.events import InputRecord
from driftline.core.join import JoinBuffer, OrphanLabel, Pending
from driftline.exceptions import BadEventError


def pending(t: int, x: float = 1.0) -> Pending:
    return Pending({"x": x}, True, {True: 0.6, False: 0.4}, 0, t)


def orphan(t: int, y=True) -> OrphanLabel:
    return OrphanLabel(y, t, InputRecord("labels", 0, t, t, b"k", b'{"label": true}'))


def expire(buf: JoinBuffer, stream_time: int) -> tuple[int, list[int]]:
    """(features expired, event times of the labels expired); ``expire`` may return None for none."""
    out = buf.expire(stream_time)
    return (0, []) if out is None else (out.features, [o.event_time for o in out.labels])


def test_features_then_label():
    buf = JoinBuffer(max_age_ms=100, max_pending=10)
    p = pending(0)
    assert buf.add_features("a", p) is None
    assert (buf.pending_features, buf.pending_labels) == (1, 0)
    assert buf.add_label("a", orphan(5)) is p
    assert len(buf) == 0


def test_label_then_features():
    buf = JoinBuffer(max_age_ms=100, max_pending=10)
    label = orphan(0, y=False)
    assert buf.add_label("a", label) is None
    assert (buf.pending_features, buf.pending_labels) == (0, 1)
    assert buf.add_features("a", pending(3)) is label
    assert len(buf) == 0


@pytest.mark.parametrize("label_first", [False, True])
def test_duplicates_after_a_join_are_refused(label_first):
    buf = JoinBuffer(max_age_ms=100, max_pending=10)
    if label_first:
        buf.add_label("a", orphan(0))
        buf.add_features("a", pending(0))
    else:
        buf.add_features("a", pending(0))
        buf.add_label("a", orphan(0))
    with pytest.raises(BadEventError) as info:
        buf.add_features("a", pending(1))
    assert info.value.reason == "duplicate_event_id"
    with pytest.raises(BadEventError) as info:
        buf.add_label("a", orphan(1))
    assert info.value.reason == "duplicate_label"
    assert len(buf) == 0  # the refused duplicates were not stored


def test_duplicates_while_pending_are_refused():
    buf = JoinBuffer(max_age_ms=100, max_pending=10)
    buf.add_features("a", pending(0))
    with pytest.raises(BadEventError, match="duplicate_event_id"):
        buf.add_features("a", pending(1))
    buf.add_label("b", orphan(0))
    with pytest.raises(BadEventError, match="duplicate_label"):
        buf.add_label("b", orphan(1))
    assert (buf.pending_features, buf.pending_labels) == (1, 1)


def test_expiry_by_event_time_age():
    buf = JoinBuffer(max_age_ms=100, max_pending=10)
    for i, t in enumerate([0, 50, 100]):
        buf.add_features(f"f{i}", pending(t))
        buf.add_label(f"l{i}", orphan(t))
    # horizon = 150 - 100 = 50: only entries strictly older than 50 go
    assert expire(buf, 150) == (1, [0])
    assert expire(buf, 150) == (0, [])  # idempotent
    assert expire(buf, 10_000) == (2, [50, 100])
    assert len(buf) == 0
    # an expired id is forgotten: its late label now waits as an orphan
    assert buf.add_label("f0", orphan(10_000)) is None


def test_expiry_by_count_evicts_the_oldest():
    buf = JoinBuffer(max_age_ms=10**9, max_pending=3)
    for i in range(5):
        buf.add_features(f"f{i}", pending(i))
        buf.add_label(f"l{i}", orphan(i))
    assert expire(buf, 5) == (2, [0, 1])
    assert buf.add_label("f0", orphan(6)) is None  # f0 was evicted
    assert buf.add_label("f2", orphan(6)) is not None  # f2 survived
    assert buf.add_features("l1", pending(6)) is None  # l1 was evicted
    assert buf.add_features("l4", pending(6)).event_time == 4


def test_expired_orphan_labels_keep_their_record():
    buf = JoinBuffer(max_age_ms=10, max_pending=10)
    label = orphan(0)
    buf.add_label("a", label)
    (expired,) = buf.expire(100).labels
    assert expired is label and expired.record == label.record


def test_take_features_removes_them_and_holds_nothing_otherwise():
    buf = JoinBuffer(max_age_ms=100, max_pending=10)
    p = pending(0)
    buf.add_features("a", p)
    assert buf.take_features("b") is None and len(buf) == 1  # no label is held by a miss
    assert buf.take_features("a") is p and len(buf) == 0
    with pytest.raises(BadEventError, match="duplicate_label"):
        buf.add_label("a", orphan(1))


def test_buffers_pickled_with_ordered_dicts_still_work():
    """Snapshots from before the plain dicts hold OrderedDicts; every operation still works."""
    from collections import OrderedDict

    buf = JoinBuffer(max_age_ms=100, max_pending=2)
    buf._features, buf._labels, buf._joined = OrderedDict(), OrderedDict(), OrderedDict()
    buf._joined_cap = 1
    for i, t in enumerate([50, 10, 60]):
        buf.add_features(f"f{i}", pending(t))
    buf.add_label("l0", orphan(5))
    assert buf.add_label("f2", orphan(61)) is not None
    assert buf.add_label("f1", orphan(62)) is not None  # "f2" leaves the capped joined set
    assert expire(buf, 155) == (1, [5])
    assert len(buf) == 0
