"""Fixtures shared by the unit tests: no network, no Kafka broker, no ambient environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pytest

from driftline.core.events import InputRecord


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DRIFTLINE_* variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)


def features_record(offset: int, ts: int, event_id: str, x: dict[Any, Any], partition: int = 0) -> InputRecord:
    """A features message; keys become strings as they would on the wire."""
    body = {"id": event_id, "features": {str(k): v for k, v in x.items()}}
    return InputRecord("features", partition, offset, ts, event_id.encode(), orjson.dumps(body))


def label_record(offset: int, ts: int, event_id: str, y: Any, partition: int = 0) -> InputRecord:
    return InputRecord("labels", partition, offset, ts, event_id.encode(), orjson.dumps({"id": event_id, "label": y}))


def replay_order(records: Iterable[InputRecord]) -> list[InputRecord]:
    """Sort by (timestamp, labels before features, partition, offset), written independently of
    ``EventTimeMerger`` so that engine tests do not trust the code they check."""
    return sorted(records, key=lambda r: (r.timestamp, r.kind != "labels", r.partition, r.offset))


@pytest.fixture
def timeline() -> Callable[..., list[InputRecord]]:
    """``timeline(rows, delay)``: feature ``i`` at time ``i`` (id ``e<i>``), its label at
    ``i + delay``, in replay order: the schedule ``progressive_val_score(delay=delay)`` simulates."""

    def build(rows: list[tuple[dict, Any]], delay: int = 0) -> list[InputRecord]:
        records = []
        for i, (x, y) in enumerate(rows):
            records.append(features_record(i, i, f"e{i}", x))
            records.append(label_record(i, i + delay, f"e{i}", y))
        return replay_order(records)

    return build


@pytest.fixture
def rec():
    """Builders for single records: ``rec.features(...)``, ``rec.label(...)``."""

    class Records:
        features = staticmethod(features_record)
        label = staticmethod(label_record)

    return Records
