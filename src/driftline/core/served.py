"""Served quality: what users got, per partition, from a predictor's own predictions.

A global-mode predictor (runtime/predictor.py) serves predictions with a version the
trainer released; the trainer scores its own model, not what was served. With ``[scale]
served_labels = true`` a predictor also reads the labels of the partitions it owns and
joins each with the prediction it served for that event id. Per partition it keeps:

* the served predictions waiting for their label, by event id, at most ``capacity``
  (the oldest is evicted when a new one needs room; evictions are counted);
* the served metric: accuracy for a classifier, MAE for a regressor (River's metrics);
* the labels joined, and the labels whose prediction it did not serve (a prediction served
  by another predictor before a rebalance, or by this one before a restart, or evicted);
* a drift watch on the served error stream (the ``[drift]`` detectors and grace period, the
  same 0/1 error or absolute error the trainer's detectors see, core/detectors.py).

No I/O: the runtime feeds it and publishes what it returns.

>>> quality = ServedQuality("classification", None, grace=0, capacity=2)
>>> quality.served(0, "a", True, 1)
>>> quality.served(0, "b", False, 1)
>>> quality.served(0, "c", True, 2)             # "a" is evicted to make room
>>> quality.label(0, "a", True) is None        # its prediction is no longer held
True
>>> join = quality.label(0, "b", True)
>>> join.model_version, join.error, join.metrics_after
(1, 1.0, {'accuracy': 0.0})
>>> quality.label(0, "c", True).metrics_after
{'accuracy': 0.5}
>>> quality.summary()[0]
{'accuracy': 0.5, 'joined': 2, 'unmatched': 1, 'evictions': 1, 'pending': 0, 'drifts': 0}
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from river import metrics

from driftline.config import DetectorSpec
from driftline.core.detectors import Detection, ErrorWatch
from driftline.core.outputs import DriftEvent
from driftline.core.scoring import error_of

__all__ = ["ServedQuality", "PartitionQuality", "ServedJoin", "served_drift_events"]


@dataclass(frozen=True, slots=True)
class ServedJoin:
    """A label joined with the prediction served for its event."""

    partition: int
    event_id: str
    model_version: int  # the version that served the prediction
    error: float  # what the drift watch was fed (0/1 error, or absolute error)
    position: int  # labels joined on this partition before this one
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    detections: tuple[Detection, ...] | list[Detection]


class PartitionQuality:
    """One partition's served predictions awaiting their labels, metric and drift watch."""

    def __init__(self, task: str, detectors: list[DetectorSpec] | None, grace: int, capacity: int) -> None:
        self.task = task
        self.capacity = capacity
        self.metric_name = "mae" if task == "regression" else "accuracy"
        self._metric = metrics.MAE() if task == "regression" else metrics.Accuracy()
        self._watch = ErrorWatch(detectors, task, grace)
        self._served: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.joined = 0
        self.unmatched = 0
        self.evictions = 0
        self.drifts = 0

    def metrics(self) -> dict[str, float]:
        """The served metric so far ({} before the first label joined)."""
        return {self.metric_name: self._metric.get()} if self.joined else {}

    def served(self, event_id: str, prediction: Any, version: int) -> None:
        held = self._served
        if event_id in held:  # served again (a replay after a rebalance): the latest answer counts
            held.move_to_end(event_id)
        elif len(held) >= self.capacity:
            held.popitem(last=False)
            self.evictions += 1
        held[event_id] = (prediction, version)

    def label(self, partition: int, event_id: str, label: Any) -> ServedJoin | None:
        served = self._served.pop(event_id, None)
        if served is None:
            self.unmatched += 1
            return None
        prediction, version = served
        before = self.metrics()
        self._metric.update(label, prediction)
        error = error_of(self.task, label, prediction) if prediction is not None else 1.0
        detections = self._watch.update(error)
        position, self.joined = self.joined, self.joined + 1
        self.drifts += len(detections)
        return ServedJoin(partition, event_id, version, error, position, before, self.metrics(), detections)

    def holds(self, event_id: str) -> bool:
        return event_id in self._served

    def drop_held(self) -> None:
        """Forget the predictions waiting for their labels (their partition moved away)."""
        self._served.clear()

    def summary(self) -> dict[str, Any]:
        return {**({self.metric_name: self._metric.get()} if self.joined else {}), "joined": self.joined,
                "unmatched": self.unmatched, "evictions": self.evictions, "pending": len(self._served),
                "drifts": self.drifts}


class ServedQuality:
    """Served quality of every partition a predictor has owned, built on first use."""

    def __init__(self, task: str, detectors: list[DetectorSpec] | None, grace: int = 0,
                 capacity: int = 100_000) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity {capacity}: hold at least one served prediction per partition")
        self.task = task
        self.detectors = detectors
        self.grace = grace
        self.capacity = capacity
        self.partitions: dict[int, PartitionQuality] = {}

    def _of(self, partition: int) -> PartitionQuality:
        quality = self.partitions.get(partition)
        if quality is None:
            quality = self.partitions[partition] = PartitionQuality(self.task, self.detectors, self.grace,
                                                                    self.capacity)
        return quality

    def served(self, partition: int, event_id: str, prediction: Any, version: int) -> None:
        """A prediction this predictor served (and is about to commit)."""
        self._of(partition).served(event_id, prediction, version)

    def label(self, partition: int, event_id: str, label: Any) -> ServedJoin | None:
        """Join a label; None when this predictor holds no served prediction for it."""
        return self._of(partition).label(partition, event_id, label)

    def holds(self, partition: int, event_id: str) -> bool:
        """Is a served prediction for ``event_id`` waiting for its label?"""
        quality = self.partitions.get(partition)
        return quality is not None and quality.holds(event_id)

    def forget(self, partition: int) -> None:
        """The partition moved away: its held predictions will not see their labels here.
        Its metric, counts and watch stay (they carry on if it comes back)."""
        quality = self.partitions.get(partition)
        if quality is not None:
            quality.drop_held()

    def summary(self) -> dict[int, dict[str, Any]]:
        return {p: q.summary() for p, q in sorted(self.partitions.items())}


def served_drift_events(join: ServedJoin, model: str, instance: str, offset: int, event_time: int,
                        now_ms: int) -> list[DriftEvent]:
    """The drift events of a join whose served drift watch fired (docs/events.md, "drift").

    Concept drift events like the trainer's, marked by ``served`` ({instance, partition}):
    ``position`` counts the labels joined on that partition by that predictor, the metrics are
    the served ones, ``model_version`` is the version that served the prediction, ``source``
    the label record, and the action is always ``none`` (a predictor changes no model).

    >>> from driftline.config import DetectorSpec
    >>> quality = ServedQuality("classification", [DetectorSpec(name="PageHinkley", params={"threshold": 5})])
    >>> joins = []
    >>> for i in range(400):
    ...     quality.served(1, f"e{i}", i < 200 or i % 2 == 0, 3)
    ...     joins.append(quality.label(1, f"e{i}", True))
    >>> fired = next(j for j in joins if j.detections)
    >>> event = served_drift_events(fired, "m", "p0", 7, 1_000, 2_000)[0]
    >>> event.id, event.served, event.source
    ('m-served-p0-1-211-PageHinkley', {'instance': 'p0', 'partition': 1}, {'kind': 'labels', 'partition': 1, 'offset': 7})
    """
    return [
        DriftEvent(
            id=f"{model}-served-{instance}-{join.partition}-{join.position}-{det.detector}",
            model=model, model_version=join.model_version, drift_kind="concept", detector=det.detector,
            params=det.params, statistic=det.statistic, position=join.position, event_time=event_time,
            source={"kind": "labels", "partition": join.partition, "offset": offset},
            metrics_before=join.metrics_before, metrics_after=join.metrics_after, action="none",
            detected_at=now_ms, threshold=det.threshold, settings=det.settings, input=det.input,
            evidence={**det.evidence, "configured": det.configured},
            served={"instance": instance, "partition": join.partition},
        )
        for det in join.detections
    ]
