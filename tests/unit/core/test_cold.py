"""The cold store contract, over every implementation in the core."""

from __future__ import annotations

import pytest

from driftline.core.cold import ColdStore, MemoryColdStore

STORES = [MemoryColdStore]


@pytest.mark.parametrize("make", STORES)
def test_put_get_replace_release(make):
    store = make()
    assert isinstance(store, ColdStore)
    assert store.get("1/k") is None
    store.put("1/k", b"a")
    store.put("2/k", b"b")
    store.put("1/k", b"c")  # a reference written again after a restore replaces the blob
    assert (store.get("1/k"), store.get("2/k")) == (b"c", b"b")
    store.release("1/k")
    store.release("never-put")
    assert store.get("2/k") == b"b"


def test_memory_store_sizes():
    store = MemoryColdStore()
    store.put("1/k", b"abc")
    store.put("2/j", b"de")
    assert (len(store), store.nbytes()) == (2, 5)
    store.release("1/k")
    assert (len(store), store.nbytes(), store.get("1/k")) == (1, 2, None)
