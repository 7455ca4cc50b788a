"""The live feed: numbered events, a bounded ring, Last-Event-ID replay, a cap on clients."""

from __future__ import annotations

import threading

from driftline.dashboard import LiveFeed


def test_ring_is_bounded_and_replays_after_last_event_id():
    feed = LiveFeed(capacity=5)
    for i in range(12):
        feed.publish("tick", {"i": i})
    assert [e.id for e in feed.since(None)] == [8, 9, 10, 11, 12]
    assert [e.id for e in feed.since(10)] == [11, 12]
    assert [e.id for e in feed.since(2)] == [8, 9, 10, 11, 12]  # what is left of a long absence
    assert feed.since(12) == []


def test_frame_is_a_server_sent_event():
    feed = LiveFeed()
    feed.publish("drift", {"id": "m-drift-1"})
    assert feed.since(None)[0].frame() == b'id: 1\nevent: drift\ndata: {"id":"m-drift-1"}\n\n'


def test_cap_on_clients():
    feed = LiveFeed(max_clients=2)
    assert feed.join() and feed.join() and not feed.join()
    feed.leave()
    assert feed.join()


def test_wait_wakes_on_publish_and_on_close():
    feed = LiveFeed()
    got = []
    t = threading.Thread(target=lambda: got.append(feed.wait(None, 30)))
    t.start()
    feed.publish("tick", {})
    t.join(30)
    assert [e.id for e in got[0]] == [1]
    t = threading.Thread(target=lambda: got.append(feed.wait(1, 30)))
    t.start()
    feed.close()
    t.join(30)
    assert got[1] == [] and not t.is_alive()
