"""Why a concept detector fired: its estimates, the bound they crossed and its windows.

``evidence_of(detector)`` reads a ``river.drift`` detector right after it signalled drift
and returns ``(statistic, evidence)``: ``statistic`` is a flat name -> number view of its
state (estimates, counts, window sizes), ``evidence`` says which test fired, in the
detector's own terms::

    {"test": "<the inequality that held>", "value": <its left side>, "bound": <its right side>,
     "examples": <inputs seen since the detector last reset>, "windows": {name: size, ...}}

(plus ``warning_bound`` for detectors with a warning zone). docs/events.md lists the names
per detector. Values are in what the detector was fed: FHDDM is fed ``1 - error``, so its
rates are accuracies.

Most detectors keep their state intact when they fire (they reset on the *next* update).
Three do not: ADWIN drops the older part of its window, KSWIN replaces its window and
never stores its KS statistic, FHDDM pops the oldest value after its test. For those,
:func:`driftline.core.detectors.build_detector` builds the subclasses below, which keep the
numbers of the last test and otherwise decide exactly like River's classes
(tests/unit/core/test_evidence.py checks the signals). Evidence is read only when a
detector fires, never on the hot path.

>>> from river.drift import binary
>>> ddm = binary.DDM()
>>> for i in range(400):
...     ddm.update(float(i >= 200 and i % 2 == 0))
...     if ddm.drift_detected:
...         break
>>> statistic, evidence = evidence_of(ddm)
>>> evidence["test"], evidence["value"] > evidence["bound"], statistic["n"] == evidence["examples"]
('p + s > p_min + drift_threshold * s_min', True, True)
"""

from __future__ import annotations

import collections
import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

from river import drift
from river.drift import binary
from scipy import stats as scipy_stats

__all__ = ["evidence_of", "EvidentADWIN", "EvidentKSWIN", "EvidentFHDDM"]

Evidence = tuple[dict[str, float], dict[str, Any]]


def _num(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN or Infinity)."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _clean(statistic: dict[str, Any]) -> dict[str, float]:
    return {k: _num(v) for k, v in statistic.items()}


# -- detectors that lose their evidence when they fire -----------------------------------


class EvidentADWIN(drift.ADWIN):
    """River's ADWIN that remembers the part of its window it dropped when it fired.

    When ADWIN fires it has already cut the older sub-window; with the window's width and
    sum before the update, the dropped part's size and mean follow. Two reads of the Rust
    helper per update (~0.1 us). ADWIN's cut threshold itself is computed inside that
    helper (possibly over several cuts in one update) and is not exposed: ``bound`` is null.
    """

    def update(self, x):
        if self.drift_detected:
            self._reset()
        helper = self._helper
        width, total = helper.get_width(), helper.get_total()
        self._drift_detected = helper.update(x)
        if self._drift_detected:
            self._cut = (width + 1, total + x)  # the window as it was tested (x included)


class EvidentKSWIN(drift.KSWIN):
    """River's KSWIN (same code, same random draws) that keeps its last KS test.

    River's ``update`` keeps only the p-value; this one also keeps the KS statistic and the
    means of the two samples compared (``_ks_statistic``, ``_reference_mean``,
    ``_recent_mean``).
    """

    def update(self, x):
        if self.drift_detected:
            self._reset()
        self.n += 1
        self.window.append(x)
        if len(self.window) >= self.window_size:
            rnd_window = [
                self.window[r] for r in self._rng.sample(range(self.window_size - self.stat_size), self.stat_size)
            ]
            most_recent = list(itertools.islice(self.window, self.window_size - self.stat_size, self.window_size))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)
                st, self.p_value = scipy_stats.ks_2samp(rnd_window, most_recent, method="auto")
            self._ks_statistic = float(st)
            self._reference_mean = sum(rnd_window) / self.stat_size
            self._recent_mean = sum(most_recent) / self.stat_size
            if self.p_value <= self.alpha and st > 0.1:
                self._drift_detected = True
                self.window = collections.deque(most_recent, maxlen=self.window_size)
            else:
                self._drift_detected = False
        else:
            self._drift_detected = False


class EvidentFHDDM(binary.FHDDM):
    """River's FHDDM that keeps the window rate of its last detection (``_u``).

    River pops the oldest value right after its test, so ``n_one`` alone no longer gives
    the rate that was compared with ``u_max``.
    """

    def update(self, x):
        if self.drift_detected:
            self._drift_detected = False
            self._reset()
        window = self._sliding_window
        # The value the test's full window will drop afterwards (x itself for a window of 1).
        oldest = (window[0] if window else x) if len(window) == self.sliding_window_size - 1 else None
        super().update(x)  # the flag is clear: River resets nothing more here
        if self._drift_detected:
            self._u = (self.n_one + oldest) / self.sliding_window_size


# -- reading each detector ---------------------------------------------------------------


def _adwin(d: drift.ADWIN) -> Evidence:
    width, total = d.width, d.total
    statistic = {"estimation": d.estimation, "width": width, "variance": d.variance, "total": total,
                 "n_detections": d.n_detections}
    evidence: dict[str, Any] = {"test": "|mean(dropped) - mean(kept)| > epsilon_cut(delta)", "value": None,
                                "bound": None, "windows": {"kept": int(width)}}
    cut = getattr(d, "_cut", None)
    if cut is not None:
        before, before_total = cut
        dropped = before - width
        statistic |= {"width_before": before, "dropped_width": dropped}
        if dropped > 0:
            dropped_mean = (before_total - total) / dropped
            kept_mean = total / width if width else float("nan")
            statistic |= {"dropped_mean": dropped_mean, "kept_mean": kept_mean}
            evidence["value"] = _num(abs(dropped_mean - kept_mean))
        evidence["windows"] = {"dropped": int(dropped), "kept": int(width)}
    evidence["examples"] = int(cut[0] if cut is not None else width)
    return _clean(statistic), evidence



def _page_hinkley(d: drift.PageHinkley) -> Evidence:
    increase = d._sum_increase - d._min_increase
    decrease = d._max_decrease - d._sum_decrease
    statistic = {"mean": d._x_mean.get(), "n": d._x_mean.n, "sum_increase": d._sum_increase,
                 "min_increase": d._min_increase, "increase": increase, "sum_decrease": d._sum_decrease,
                 "max_decrease": d._max_decrease, "decrease": decrease}
    rising = d.mode != "down" and increase > d.threshold
    test = "sum_increase - min_increase > threshold" if rising else "max_decrease - sum_decrease > threshold"
    return _clean(statistic), {"test": test, "value": _num(increase if rising else decrease),
                               "bound": _num(d.threshold), "examples": int(d._x_mean.n), "windows": {}}


def _kswin(d: drift.KSWIN) -> Evidence:
    statistic = {"ks_statistic": getattr(d, "_ks_statistic", None), "p_value": d.p_value, "n": d.n,
                 "reference_mean": getattr(d, "_reference_mean", None),
                 "recent_mean": getattr(d, "_recent_mean", None)}
    return _clean(statistic), {
        "test": "p_value <= alpha and ks_statistic > 0.1", "value": _num(d.p_value), "bound": _num(d.alpha),
        "examples": int(d.n), "windows": {"window": d.window_size, "reference": d.stat_size, "recent": d.stat_size},
    }


def _ddm(d: binary.DDM) -> Evidence:
    p, n = d._p.get(), d._p.n
    s = math.sqrt(p * (1 - p) / n) if n else float("nan")
    statistic = {"p": p, "s": s, "n": n, "p_min": d._p_min, "s_min": d._s_min, "ps_min": d._ps_min}
    p_min, s_min = d._p_min or 0.0, d._s_min or 0.0
    return _clean(statistic), {
        "test": "p + s > p_min + drift_threshold * s_min", "value": _num(p + s),
        "bound": _num(p_min + d.drift_threshold * s_min), "warning_bound": _num(p_min + d.warning_threshold * s_min),
        "examples": int(n), "windows": {},
    }


def _eddm(d: binary.EDDM) -> Evidence:
    distances = d._error_distances
    mean, std = distances.mean.get(), distances.get() ** 0.5
    p2s, p2s_max = mean + 2 * std, d._p2s_prime_max
    level = p2s / p2s_max if p2s_max > 0 else float("nan")
    statistic = {"mean_distance": mean, "std_distance": std, "p2s": p2s, "p2s_max": p2s_max, "level": level,
                 "n": d._n, "n_errors": d._n_errors}
    return _clean(statistic), {"test": "p2s / p2s_max < beta", "value": _num(level), "bound": _num(d.beta),
                               "warning_bound": _num(d.alpha), "examples": int(d._n), "windows": {}}


def _hddm_a(d: binary.HDDMA) -> Evidence:
    if hasattr(d, "_z_n"):  # Driftline's FastHDDMA: plain floats
        n, mean = d._z_n, d._z_mean
        low_n, low_mean, high_n, high_mean = d._min_n, d._min_mean, d._max_n, d._max_mean
    else:
        n, mean = d._z.n, d._z.get()
        low_n, low_mean, high_n, high_mean = d._x_min.n, d._x_min.get(), d._x_max.n, d._x_max.get()

    def bound(cut_n: float, confidence: float) -> float:
        m = (n - cut_n) / cut_n * (1.0 / n) if cut_n and n != cut_n else float("nan")
        return math.sqrt(m / 2 * math.log(2.0 / confidence))

    rise, fall = mean - low_mean, high_mean - mean
    statistic = {"mean": mean, "n": n, "cut_mean": low_mean, "cut_n": low_n, "rise": rise}
    if d.two_sided_test:
        statistic |= {"max_cut_mean": high_mean, "max_cut_n": high_n, "fall": fall}
    if d.two_sided_test and not rise >= bound(low_n, d.drift_confidence):  # the falling test fired
        value, cut_n, test = fall, high_n, "max_cut_mean - mean >= epsilon(drift_confidence)"
    else:
        value, cut_n, test = rise, low_n, "mean - cut_mean >= epsilon(drift_confidence)"
    return _clean(statistic), {
        "test": test, "value": _num(value), "bound": _num(bound(cut_n, d.drift_confidence)),
        "warning_bound": _num(bound(cut_n, d.warning_confidence)), "examples": int(n),
        "windows": {"before_cut": int(cut_n), "after_cut": int(n - cut_n)},
    }


def _hddm_w(d: binary.HDDMW) -> Evidence:
    s1, s2 = d._s1_incr, d._s2_incr
    rose = s1._is_init and s2._is_init and s2.ewma - s1.ewma > d._mcdiarmid_bound(s1.ibc + s2.ibc, d.drift_confidence)
    falling = d.two_sided_test and not rose
    if falling:
        s1, s2 = d._s2_decr, d._s1_decr  # River's decrease test compares them the other way round
    ibc = s1.ibc + s2.ibc
    statistic = {"mean": d._total.ewma, "cut_mean": s1.ewma, "recent_mean": s2.ewma, "difference": s2.ewma - s1.ewma,
                 "ibc": ibc}
    return _clean(statistic), {
        "test": ("cut_mean - recent_mean" if falling else "recent_mean - cut_mean") + " > mcdiarmid_bound(drift_confidence)",
        "value": _num(s2.ewma - s1.ewma), "bound": _num(d._mcdiarmid_bound(ibc, d.drift_confidence)),
        "warning_bound": _num(d._mcdiarmid_bound(ibc, d.warning_confidence)), "windows": {},
    }


def _fhddm(d: binary.FHDDM) -> Evidence:
    u = getattr(d, "_u", None)
    statistic = {"u": u, "u_max": d._u_max, "drop": None if u is None else d._u_max - u, "n_one": d.n_one}
    evidence: dict[str, Any] = {"test": "u_max - u > epsilon", "value": _num(statistic["drop"]),
                                "bound": _num(d._epsilon), "windows": {"window": d.sliding_window_size}}
    if d.short_window_size is not None:
        size = d.short_window_size
        window = d._sliding_window
        u_s = sum(itertools.islice(window, max(0, len(window) - size), len(window))) / size
        statistic |= {"u_short": u_s, "u_short_max": d._u_short_max, "drop_short": d._u_short_max - u_s}
        evidence["windows"]["short"] = size
        if statistic["drop"] is None or d._u_max - u <= d._epsilon:
            evidence |= {"test": "u_short_max - u_short > epsilon_short", "value": _num(d._u_short_max - u_s),
                         "bound": _num(d._epsilon_s)}
    return _clean(statistic), evidence


def _dummy(d: drift.DummyDriftDetector) -> Evidence:
    statistic = {"t_0": d.t_0, "w": d.w}
    return _clean(statistic), {"test": f"{d.trigger_method} trigger", "value": None,
                               "bound": None, "windows": {}}


_READERS: dict[type, Callable[[Any], Evidence]] = {
    drift.ADWIN: _adwin, drift.PageHinkley: _page_hinkley, drift.KSWIN: _kswin, drift.DummyDriftDetector: _dummy,
    binary.DDM: _ddm, binary.EDDM: _eddm, binary.HDDMA: _hddm_a, binary.HDDMW: _hddm_w, binary.FHDDM: _fhddm,
}


def evidence_of(detector: Any) -> Evidence:
    """``(statistic, evidence)`` of a detector that just fired; ``({}, {})`` for an unknown one.

    Evidence is best effort: a detector whose internals changed gives what can be read,
    never an exception that would stop the stream.
    """
    for cls in type(detector).__mro__:
        reader = _READERS.get(cls)
        if reader is not None:
            try:
                return reader(detector)
            except (AttributeError, TypeError, ValueError, ZeroDivisionError):
                return {}, {}
    return {}, {}
