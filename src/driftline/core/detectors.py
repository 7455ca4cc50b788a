"""Concept-drift detectors from ``river.drift`` watching the per-example error stream.

Each detector is built by name (``ADWIN``, ``PageHinkley``, ``KSWIN``, ``binary.DDM``,
``binary.EDDM``, ``binary.HDDMA``, ``binary.HDDMW``, ``binary.FHDDM``) and fed what it
expects:

- the binary ones take a 0/1 error (regression tasks cannot use them);
- FHDDM is fed ``1 - error`` because it signals when its input *falls*;
- Page-Hinkley defaults to ``mode="up"``: only a *rising* error is drift (River's default
  ``"both"`` also fires when the model gets better, about 7 times the false alarms);
- every detector with a seed gets a fixed one, so replays fire at the same examples;
- a detection carries the detector's parameters, state and the test that fired
  (:mod:`driftline.core.evidence`).

Detectors with a warning zone (DDM, EDDM, HDDM_A, HDDM_W) also report it: ``warning``
is true while any of them is in its warning zone, which the ``background`` policy uses.

>>> from driftline.config import DetectorSpec
>>> watch = ErrorWatch([DetectorSpec(name="PageHinkley", params={"threshold": 5})], "classification")
>>> fired = [i for i in range(400) if watch.update(float(i >= 200 and i % 2 == 0))]
>>> fired[0] > 200
True
>>> watch.update(0.0)
()
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

from river import drift, stats
from river.drift import binary

from driftline.config import DetectorSpec
from driftline.core.evidence import EvidentADWIN, EvidentFHDDM, EvidentKSWIN, evidence_of
from driftline.exceptions import ConfigError

__all__ = ["ErrorWatch", "Detection", "build_detector", "input_of", "default_detectors"]

_INVERTED = {"FHDDM"}
_WARNING_ZONE = {"DDM", "EDDM", "HDDMA", "HDDMW"}
_DEFAULTS: dict[str, dict[str, Any]] = {"PageHinkley": {"mode": "up"}}
# The parameter (or computed attribute) a detector compares its statistic with.
_THRESHOLD = {
    "PageHinkley": "threshold", "ADWIN": "delta", "KSWIN": "alpha", "DDM": "drift_threshold",
    "EDDM": "beta", "HDDMA": "drift_confidence", "HDDMW": "drift_confidence", "FHDDM": "_epsilon",
}
_STATS = ("estimation", "width", "variance", "_sum_increase", "_min_increase", "_u_max", "n_one",
          "_p_min", "_s_min", "_ps_min", "p_value")
_NOTHING: tuple = ()


@dataclass(frozen=True)
class Detection:
    """A detector that fired on the last update, with its evidence.

    ``params`` and ``settings`` are every constructor parameter the detector actually runs
    with (the configured ones over River's defaults and Driftline's own); ``configured`` the
    ones the deployment set; ``statistic`` and ``evidence`` its state and the test that fired
    (:mod:`driftline.core.evidence`); ``input`` what it was fed (``error``, ``1-error`` or
    ``loss``).
    """

    detector: str
    params: dict[str, Any]
    statistic: dict[str, float | None]
    threshold: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    input: str = "error"
    evidence: dict[str, Any] = field(default_factory=dict)
    configured: dict[str, Any] = field(default_factory=dict)


def input_of(name: str, task: str) -> str:
    """What a detector is fed: ``1-error`` (FHDDM), ``error`` (0/1 loss) or ``loss`` (|y - ŷ|).

    >>> input_of("binary.FHDDM", "classification"), input_of("ADWIN", "regression")
    ('1-error', 'loss')
    """
    if name.rpartition(".")[2] in _INVERTED:
        return "1-error"
    return "loss" if task == "regression" else "error"


def default_detectors(task: str) -> list[DetectorSpec]:
    """The detectors used when none are configured, chosen by ``scripts/bench_drift.sh``.

    Classification: HDDM_A on the 0/1 error had the best prequential accuracy, recall 0.90
    within 1000 events, a median delay of 28 and the fewest false alarms of the detectors
    that reach that recall (docs/drift-benchmark.md); it also has a warning zone, which the
    ``background`` policy needs. Regression: ADWIN, the one scale-free detector of a
    continuous loss (Page-Hinkley's threshold is in the loss's units).

    >>> [d.name for d in default_detectors("classification")], [d.name for d in default_detectors("regression")]
    (['binary.HDDMA'], ['ADWIN'])
    """
    if task == "regression":
        return [DetectorSpec(name="ADWIN")]
    return [DetectorSpec(name="binary.HDDMA")]


class _CheapMean(stats.Mean):
    """A ``stats.Mean`` whose ``clone`` is a shallow copy (its state is two floats).

    No longer used; kept so that snapshots pickled with it still load.
    """

    def clone(self, new_params=None, include_attributes=False):  # noqa: ARG002
        return copy.copy(self)


class FastHDDMA(binary.HDDMA):
    """River's HDDM_A with the same arithmetic on plain floats.

    River's ``HDDMA.update`` keeps three ``stats.Mean`` objects (the global mean and the two
    cut points), clones one whenever a cut point moves and recomputes ``log(1 / delta)`` on
    every bound. Profiled in the engine on Elec2 it cost about 7 us an update, as much as a
    logistic regression's learn step. Here each mean is an ``(n, mean)`` pair of floats
    updated with the very expressions of ``stats.Mean.update`` and ``HDDMA.update``, in the
    same order, so every decision is bit-for-bit River's; the logarithms, which depend only
    on the parameters, are computed once. tests/unit/core/test_detectors.py checks the
    signals against River's ``HDDMA`` on drifting streams, one- and two-sided.
    """

    def _reset(self) -> None:
        super(binary.HDDMA, self)._reset()  # the drift and warning flags; not River's means
        self._z_n = self._z_mean = 0.0  # global mean
        self._min_n = self._min_mean = 0.0  # cut point for a rising mean
        self._max_n = self._max_mean = 0.0  # cut point for a falling mean
        self._log_bound = math.log(1.0 / self.drift_confidence)
        self._log_drift = math.log(2.0 / self.drift_confidence)
        self._log_warning = math.log(2.0 / self.warning_confidence)

    def update(self, x: float) -> None:
        if self._drift_detected:
            self._reset()
        n = self._z_n + 1.0
        mean = self._z_mean + (1.0 / n) * (x - self._z_mean)
        self._z_n, self._z_mean = n, mean
        if self._min_n == 0:
            self._min_n, self._min_mean = n, mean
        if self._max_n == 0:
            self._max_n, self._max_mean = n, mean
        log_bound = self._log_bound
        eps_z = math.sqrt(1.0 / (2 * n) * log_bound)
        if self._min_mean + math.sqrt(1.0 / (2 * self._min_n) * log_bound) >= mean + eps_z:
            self._min_n, self._min_mean = n, mean
        if self._max_mean - math.sqrt(1.0 / (2 * self._max_n) * log_bound) <= mean - eps_z:
            self._max_n, self._max_mean = n, mean
        drift = warning = False
        min_n = self._min_n
        if min_n != n:
            m = (n - min_n) / min_n * (1.0 / n)
            rise = mean - self._min_mean
            if rise >= math.sqrt(m / 2 * self._log_drift):
                drift = True
            elif rise >= math.sqrt(m / 2 * self._log_warning):
                warning = True
        if self.two_sided_test:
            max_n = self._max_n
            if max_n != n:
                m = (n - max_n) / max_n * (1.0 / n)
                fall = self._max_mean - mean
                if fall >= math.sqrt(m / 2 * self._log_drift):
                    drift = True
                elif fall >= math.sqrt(m / 2 * self._log_warning):
                    warning = True
        self._drift_detected, self._warning_detected = drift, warning

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Detectors pickled when this class still kept River's ``stats.Mean`` objects."""
        self.__dict__.update(state)
        if "_z_n" not in state:
            z, low, high = state["_z"], state["_x_min"], state["_x_max"]
            self._z_n, self._z_mean = z.n, z._mean
            self._min_n, self._min_mean = low.n, low._mean
            self._max_n, self._max_mean = high.n, high._mean
            self._log_bound = math.log(1.0 / self.drift_confidence)
            self._log_drift = math.log(2.0 / self.drift_confidence)
            self._log_warning = math.log(2.0 / self.warning_confidence)


# Driftline's versions: FastHDDMA for speed; the others keep the evidence River drops when
# it fires (core/evidence.py). Each decides exactly like River's class.
_FAST = {binary.HDDMA: FastHDDMA, drift.ADWIN: EvidentADWIN, drift.KSWIN: EvidentKSWIN, binary.FHDDM: EvidentFHDDM}


@functools.cache
def _takes_seed(cls: type) -> bool:
    """Does ``cls`` take a ``seed``? (``inspect.signature`` costs ~20 us; detectors are rebuilt on every reset.)"""
    return "seed" in inspect.signature(cls).parameters


def build_detector(spec: DetectorSpec, task: str) -> Any:
    """Instantiate ``spec`` from ``river.drift`` (``binary.`` prefix for binary detectors)."""
    module, _, name = spec.name.rpartition(".")
    namespace = {"": drift, "binary": binary}.get(module)
    cls = getattr(namespace, name, None) if namespace is not None else None
    if cls is None or not isinstance(cls, type):
        raise ConfigError(f"unknown drift detector {spec.name!r}")
    if namespace is binary and task == "regression":
        raise ConfigError(f"{spec.name} needs a 0/1 error: it cannot watch a regression loss")
    params = {**_DEFAULTS.get(name, {}), **spec.params}
    if _takes_seed(cls):
        params.setdefault("seed", 42)  # determinism: replays must fire at the same examples
    try:
        return _FAST.get(cls, cls)(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad parameters for {spec.name}: {exc}") from exc


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _statistic(detector: Any) -> dict[str, float]:
    stats: dict[str, float] = {}
    for attr in _STATS:
        value = getattr(detector, attr, None)
        if _number(value):
            stats[attr.lstrip("_")] = float(value)
    return stats


def _settings(detector: Any) -> dict[str, Any]:
    try:
        return {k: v for k, v in detector._get_params().items() if v is None or isinstance(v, (int, float, str))}
    except Exception:  # noqa: BLE001 - evidence is best effort, never a reason to stop
        return {}


class ErrorWatch:
    """A set of detectors updated together with each example's error.

    ``update`` returns an empty tuple (no allocation) on the common path. For the first
    ``grace`` updates after the watch is built or reset the detectors are not fed: a young
    model's error is still falling, and its level is not the one to compare later errors with.

    >>> watch = ErrorWatch(None, "classification", grace=100)
    >>> [watch.update(1.0) for _ in range(100)].count(()), watch.young
    (100, 0)
    """

    # Snapshots pickled before the grace period existed restore with none.
    grace = 0
    young = 0

    def __init__(self, specs: list[DetectorSpec] | None, task: str, grace: int = 0) -> None:
        self.specs = list(default_detectors(task) if specs is None else specs)
        self.task = task
        self.grace = grace
        self._names = [spec.name.rpartition(".")[2] for spec in self.specs]
        self._inverted = [name in _INVERTED for name in self._names]
        self.has_warning_zone = any(name in _WARNING_ZONE for name in self._names)
        self.warning = False
        self._run_settings: list[dict[str, Any]] = []
        self._build()

    def _build(self) -> None:
        self._detectors = [build_detector(spec, self.task) for spec in self.specs]
        if not self._run_settings:
            # The same specs always give the same settings; River reads them with inspect
            # (~30 us), so once per watch rather than once per detection.
            self._run_settings = [_settings(detector) for detector in self._detectors]
        self._slots = list(zip(self.specs, self._detectors, self._inverted, self._names, self._run_settings))
        self._warners = [d for d, n in zip(self._detectors, self._names) if n in _WARNING_ZONE]
        self.warning = False
        self.young = self.grace

    def update(self, error: float) -> tuple[Detection, ...] | list[Detection]:
        """Feed one error; return the detections it caused (usually none)."""
        if self.young:
            self.young -= 1
            return _NOTHING
        fired: list[Detection] | None = None
        for spec, detector, inverted, name, settings in self._slots:
            detector.update(1.0 - error if inverted else error)
            if detector.drift_detected:
                if fired is None:
                    fired = []
                fired.append(self._detection(spec, detector, name, settings))
        if self._warners:
            self.warning = False
            if fired is None:
                for detector in self._warners:
                    if detector.warning_detected:
                        self.warning = True
                        break
        return _NOTHING if fired is None else fired

    def _detection(self, spec: DetectorSpec, detector: Any, name: str, settings: dict[str, Any]) -> Detection:
        key = _THRESHOLD.get(name)
        threshold = getattr(detector, key, None) if key else None
        statistic, evidence = evidence_of(detector)
        return Detection(
            spec.name, dict(settings), statistic or _statistic(detector),
            float(threshold) if _number(threshold) else None,
            dict(settings), input_of(spec.name, self.task), evidence, dict(spec.params),
        )

    def warnings(self) -> list[str]:
        """Names of the detectors in their warning zone after the last update."""
        return [spec.name for spec, d, _, n, _ in self._slots if n in _WARNING_ZONE and d.warning_detected]

    def reset(self) -> None:
        """Fresh detectors (after the model itself was reset)."""
        self._build()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Watches pickled before the settings were kept read them once from their detectors."""
        self.__dict__.update(state)
        if "_run_settings" not in state:
            self._run_settings = [_settings(detector) for detector in self._detectors]
            self._slots = [(*slot, settings) for slot, settings in zip(self._slots, self._run_settings)]
