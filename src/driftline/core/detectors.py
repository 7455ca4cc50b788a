"""Concept-drift detectors from ``river.drift`` watching the per-example error stream.

Each detector is built by name (``ADWIN``, ``PageHinkley``, ``KSWIN``, ``binary.DDM``,
``binary.EDDM``, ``binary.HDDMA``, ``binary.HDDMW``, ``binary.FHDDM``) and fed what it
expects: the binary ones take a 0/1 error (regression tasks cannot use them), and FHDDM
is fed ``1 - error`` because it signals when its input *falls*.

>>> from driftline.config import DetectorSpec
>>> watch = ErrorWatch([DetectorSpec(name="PageHinkley", params={"mode": "up", "threshold": 5})], "classification")
>>> fired = [i for i in range(400) if watch.update(float(i >= 200 and i % 2 == 0))]
>>> fired[0] > 200
True
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from river import drift
from river.drift import binary

from driftline.config import DetectorSpec
from driftline.exceptions import ConfigError

__all__ = ["ErrorWatch", "Detection", "build_detector"]

_INVERTED = {"FHDDM"}


@dataclass(frozen=True)
class Detection:
    """A detector that fired on the last update, with its evidence."""

    detector: str
    params: dict[str, Any]
    statistic: dict[str, float]


def build_detector(spec: DetectorSpec, task: str) -> Any:
    """Instantiate ``spec`` from ``river.drift`` (``binary.`` prefix for binary detectors)."""
    module, _, name = spec.name.rpartition(".")
    namespace = {"": drift, "binary": binary}.get(module)
    cls = getattr(namespace, name, None) if namespace is not None else None
    if cls is None or not isinstance(cls, type):
        raise ConfigError(f"unknown drift detector {spec.name!r}")
    if namespace is binary and task == "regression":
        raise ConfigError(f"{spec.name} needs a 0/1 error: it cannot watch a regression loss")
    params = dict(spec.params)
    if "seed" in inspect.signature(cls).parameters:
        params.setdefault("seed", 42)  # determinism: replays must fire at the same examples
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad parameters for {spec.name}: {exc}") from exc


def _statistic(detector: Any) -> dict[str, float]:
    stats: dict[str, float] = {}
    for attr in ("estimation", "width", "variance", "_sum_increase", "_min_increase"):
        value = getattr(detector, attr, None)
        if isinstance(value, (int, float)):
            stats[attr.lstrip("_")] = float(value)
    return stats


class ErrorWatch:
    """A set of detectors updated together with each example's error."""

    def __init__(self, specs: list[DetectorSpec], task: str) -> None:
        self.specs = list(specs)
        self.task = task
        self._detectors = [build_detector(spec, task) for spec in self.specs]
        self._inverted = [spec.name.rpartition(".")[2] in _INVERTED for spec in self.specs]

    def update(self, error: float) -> list[Detection]:
        """Feed one error; return the detections it caused (usually none)."""
        fired: list[Detection] = []
        for spec, detector, inverted in zip(self.specs, self._detectors, self._inverted):
            detector.update(1.0 - error if inverted else error)
            if detector.drift_detected:
                fired.append(Detection(spec.name, dict(spec.params), _statistic(detector)))
        return fired

    def reset(self) -> None:
        """Fresh detectors (after the model itself was reset)."""
        self._detectors = [build_detector(spec, self.task) for spec in self.specs]
