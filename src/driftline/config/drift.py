"""Drift: detectors on the per-example error, performance rules, data drift, and the policy
that acts on them (with the guarded policy's settings)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from driftline.config.base import _Frozen


class DetectorSpec(_Frozen):
    """One ``river.drift`` detector fed with the per-example error."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class PerformanceRule(_Frozen):
    """A rolling metric (a name from the online scores, e.g. ``rolling_accuracy``) checked at
    the end of every ``metrics_window``: an alert when it crosses ``min``/``max``, or when it
    leaves the band ``mean ± band_k·σ`` of its first ``reference_windows`` windows."""

    metric: str = "rolling_accuracy"
    min: float | None = None
    max: float | None = None
    band_k: float | None = None
    reference_windows: int = Field(default=5, ge=2)


class DataDriftConfig(_Frozen):
    """Per-feature data drift: a reference window against a sliding current window.

    Numeric features: two-sample KS (and PSI on ``psi_bins`` reference-quantile bins, reported
    and required to reach ``psi_min``); categorical ones: chi-square. p-values are corrected
    across features (``correction``); the data set drifts when ``dataset_share`` of them do.
    Tests run every ``step`` feature events once the current window is full.
    """

    enabled: bool = False
    reference_size: int = Field(default=1000, ge=50)
    window_size: int = Field(default=500, ge=50)
    step: int = Field(default=100, gt=0)
    alpha: float = Field(default=0.001, gt=0, lt=1)
    correction: Literal["holm", "bonferroni", "bh"] = "holm"
    psi_bins: int = Field(default=10, ge=2)
    psi_min: float = Field(default=0.0, ge=0)
    dataset_share: float = Field(default=0.5, gt=0, le=1)
    rebase_on_version: bool = True
    features: list[str] = Field(default_factory=list)


class GuardConfig(_Frozen):
    """The ``guarded`` policy (``core/guarded.py``): a candidate started on drift replaces the
    serving model only once it is better on the same labels.

    ``start``: ``fresh`` (an unfitted copy) or ``warm`` (linear models: a copy of the serving
    model's weights and scaler; other models start fresh). ``replay``: the bounded ring of
    recent examples from which a new candidate first learns those since the detector's
    estimated change point (0: off). The candidate is compared on the last ``window`` paired
    labels (once it has ``min_pairs`` of them), every ``check_every`` labels, by McNemar's exact test at ``alpha``; it is given up
    after ``max_examples`` labels without a win.
    """

    start: Literal["fresh", "warm"] = "warm"
    replay: int = Field(default=2000, ge=0)
    window: int = Field(default=500, ge=10)
    min_pairs: int = Field(default=200, ge=1)
    check_every: int = Field(default=50, ge=1)
    alpha: float = Field(default=0.00001, gt=0, lt=1)
    # ... and when it is right on at least this share more of the window's labels.
    margin: float = Field(default=0.0, ge=0, le=1)
    max_examples: int = Field(default=5000, ge=1)
    # The anchor: the model the first swap replaced keeps learning beside the serving one and
    # serves again when it is right significantly more often on the last ``anchor_window``
    # paired labels (McNemar at ``alpha``, from ``anchor_min_pairs`` on, every ``check_every``):
    # a swap that turns out worse than doing nothing is undone (False: no anchor).
    anchor: bool = True
    anchor_window: int = Field(default=2000, ge=10)
    anchor_min_pairs: int = Field(default=500, ge=1)
    # Warm linear candidates learn at a multiple of the serving model's (constant) learning
    # rate, taken in turn from this list: a search for the rate the stream needs, each step
    # kept only if its candidate wins the paired test ([1.0]: the serving model's own rate).
    rates: list[float] = Field(default_factory=lambda: [0.3, 3.0])
    # Judge a candidate on at least as many paired labels as the labels are late (the measured
    # mean delay, in labels): ``window`` and ``min_pairs`` grow to it (docs/drift-benchmark.md).
    delay_scaled: bool = True
    # A warm candidate races with a fresh twin (an unfitted model learning from the detection
    # on): the twin swaps in when it is right on at least ``twin_margin`` more of the paired
    # labels (and passes the same test), from ``twin_min_pairs`` pairs on. A fresh model wins
    # fast after an abrupt change and rarely on a slow one (docs/drift-benchmark.md).
    twin: bool = True
    twin_margin: float = Field(default=0.1, ge=0, le=1)
    twin_min_pairs: int = Field(default=50, ge=1)


class DriftConfig(_Frozen):
    """Concept drift (detectors on the per-example error), performance rules, data drift,
    and what to do about it (``policy``)."""

    # None: the benchmarked default for the task (docs/drift-benchmark.md): binary.HDDMA on the
    # 0/1 error of a classifier, ADWIN on the absolute error of a regressor.
    detectors: list[DetectorSpec] | None = None
    # "guarded" (a candidate serves only once it beats the serving model on the same labels;
    # the model it replaced stays as an anchor) ties or beats "none" in all 90 cells of
    # docs/drift-benchmark.md's grid (labels 0 to 1000 late; worst -0.16) and keeps 70-294% of
    # "reset"'s gain at delay 0. "reset" (a fresh model on every detection) gains a little more
    # at delay 0 but loses about 4 points on Elec2 once labels are 100 or more late.
    # "none" keeps River's own semantics (exactly progressive_val_score) and is what a
    # deployment with challengers usually wants.
    policy: Literal["none", "reset", "background", "periodic", "guarded"] = "guarded"
    guard: GuardConfig = Field(default_factory=GuardConfig)
    # Detectors see no error for this many examples after a model (re)starts: a young model's
    # falling error is learning, not drift. 300 was chosen for "guarded" (docs/drift-benchmark.md:
    # +0.21 points for the Hoeffding tree on Elec2 at delay 100, 1000 is worse); it costs "reset"
    # 1.5-1.8 points at delay 0 on Elec2, so set 0 with "reset".
    grace_examples: int = Field(default=300, ge=0)
    metrics_window: int = Field(default=1000, gt=0)
    # reset/background/periodic: train the new model on the last ``warm_start`` examples.
    warm_start: int = Field(default=0, ge=0)
    # periodic: cut a version every ``period_examples`` learned examples, retraining a fresh
    # model on the last ``retrain_last`` ones when > 0.
    period_examples: int = Field(default=10_000, gt=0)
    retrain_last: int = Field(default=0, ge=0)
    performance: list[PerformanceRule] = Field(default_factory=list)
    data: DataDriftConfig = Field(default_factory=DataDriftConfig)
    # Linear models: an "importance" drift event when the Kendall tau between the reference
    # and current |w|·scale importances falls below this (None: off); checked per metrics window.
    importance_min_tau: float | None = Field(default=None, ge=-1, le=1)
    importance_warmup: int = Field(default=5, ge=1)
