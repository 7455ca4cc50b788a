"""Background saves: a forked child writes the version; the parent keeps going."""

from __future__ import annotations

import gc
import os
import time

import pytest

from driftline.runtime.snapshots import BackgroundSaver
from driftline.versions.store import VersionStore


class PickledOnSignal:
    """Pickling waits until the file ``gate`` exists, when one is given (in whichever process
    pickles it): the test decides when a save may finish."""

    def __init__(self, payload: list[int], gate: str | None = None) -> None:
        self.gate, self.payload, self.stamp = gate, payload, None

    def __getstate__(self):
        for _ in range(6000 if self.gate else 0):  # bounded: 60 s at most
            if os.path.exists(self.gate):
                break
            time.sleep(0.01)
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


class Unpicklable:
    def __getstate__(self):
        raise TypeError("cannot pickle this on purpose")


@pytest.fixture
def store(tmp_path) -> VersionStore:
    return VersionStore(str(tmp_path), "m", key=b"k")


@pytest.mark.parametrize("forking", [True, False])
def test_a_save_lands_verified_with_what_prepare_set(store, forking):
    saver = BackgroundSaver(store, enabled=forking)
    state = PickledOnSignal([1, 2, 3])
    saver.start(1, {"trigger": "t"}, {"obj": state}, prepare=lambda: setattr(state, "stamp", 1))
    done = saver.wait()
    assert (done.version, done.error) == (1, None)
    meta, loaded = store.load(1)
    assert meta["trigger"] == "t" and loaded["obj"].payload == [1, 2, 3] and loaded["obj"].stamp == 1
    # A forked child changed its own copy only; inline, prepare ran here.
    assert state.stamp == (None if forking else 1)
    assert not saver.busy and saver.poll() is None


def test_the_parent_is_not_held_up_while_the_child_pickles(store, tmp_path):
    saver = BackgroundSaver(store)
    assert saver.forking
    gate = str(tmp_path / "go")
    saver.start(1, {}, {"obj": PickledOnSignal(list(range(10)), gate)})
    # start() returned while the child waits in __getstate__ for the gate only this process opens
    assert saver.busy and saver.poll() is None
    assert store.latest() is None
    open(gate, "w").close()
    done = saver.wait()
    assert done.error is None and store.latest() == 1
    assert store.load(1)[1]["obj"].payload == list(range(10))


@pytest.mark.parametrize("forking", [True, False])
def test_a_failed_save_reports_why_and_leaves_no_version(store, forking):
    saver = BackgroundSaver(store, enabled=forking)
    saver.start(1, {}, {"obj": Unpicklable()})
    done = saver.wait()
    assert done.version == 1 and "cannot pickle this on purpose" in done.error
    assert store.latest() is None
    assert not os.path.isdir(store._dir) or os.listdir(store._dir) == []


def test_one_save_at_a_time(store, tmp_path):
    saver = BackgroundSaver(store)
    gate = str(tmp_path / "go")
    saver.start(1, {}, {"obj": PickledOnSignal([], gate)})
    with pytest.raises(RuntimeError):
        saver.start(2, {}, {})
    open(gate, "w").close()
    saver.wait()


class RecordsItsScheduler:
    """Pickles the scheduling policy of whichever process pickles it."""

    def __getstate__(self):
        return {"policy": os.sched_getscheduler(0)}

    def __setstate__(self, state):
        self.__dict__.update(state)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
def test_the_writer_only_uses_idle_cpu(store):
    saver = BackgroundSaver(store)
    saver.start(1, {}, {"obj": RecordsItsScheduler()})
    assert saver.wait().error is None
    assert store.load(1)[1]["obj"].policy == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the parent keeps its own priority


def test_objects_alive_at_the_fork_skip_collections_until_the_child_is_collected(store, tmp_path):
    saver = BackgroundSaver(store)
    gate = str(tmp_path / "go")
    saver.start(1, {}, {"obj": PickledOnSignal([1], gate)})
    assert gc.get_freeze_count() > 0  # a full collection now would copy the shared heap
    open(gate, "w").close()
    assert saver.wait().error is None
    assert gc.get_freeze_count() == 0
