"""Learning-time augmentation: a SMOTE-style synthetic minority oversampler for a stream.

SMOTE (Chawla et al., 2002) makes a synthetic minority example on the segment between a
minority example and one of its minority neighbours. On a stream there is no fixed data set
to search for neighbours, so each class keeps a bounded ring of its recent examples and the
neighbour is drawn from it at random (a seeded ``random.Random``, pickled with the engine so
replays and restored snapshots draw the same numbers). Numeric features are interpolated,
others copied from the real example. The synthetic examples are learned right after the real
one and only then: predictions, metrics and drift detectors see real examples alone.

>>> from river import linear_model
>>> from driftline.config import AugmentConfig
>>> sampler = Oversampler(AugmentConfig(kind="smote", k=2, ratio=0.5))
>>> model = linear_model.LogisticRegression()
>>> made = [sampler.learned(model, {"x": float(i)}, i % 10 == 0) for i in range(30)]
>>> made[:11], sampler.synthetic
([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 4)

River's own resamplers wrap the model instead (``kind = "random_over"``, ``"random_under"``,
``"hard_sampling"``); for a binary-only model the shares are of False/True, in the order of
the configured classes:

>>> wrapped = resampled(linear_model.LogisticRegression(), AugmentConfig(kind="random_under"), ("no", "yes"))
>>> type(wrapped).__name__, wrapped.desired_dist
('RandomUnderSampler', {False: 0.5, True: 0.5})
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from river import base

from driftline.config import AugmentConfig

__all__ = ["Oversampler", "resampled"]

RESAMPLERS = ("random_over", "random_under", "hard_sampling")


def resampled(model: base.Estimator, config: AugmentConfig, classes: tuple[Any, ...] = ()) -> base.Estimator:
    """``model`` wrapped in River's ``imblearn`` resampler ``config.kind`` (unchanged for other kinds).

    ``desired`` maps each class (as written in the config, a string) to its share; unset, the
    classes get equal shares. A binary-only model (logistic regression) learns False/True
    ("is it the last configured class?", as the engine maps them), so its shares are keyed so;
    with no classes configured a binary-only model's are False/True, which equal 0/1 labels.
    """
    from river import imblearn

    from driftline.exceptions import ConfigError

    if config.kind not in RESAMPLERS:
        return model
    if config.kind == "hard_sampling":
        return imblearn.HardSamplingClassifier(model, size=config.ring, p=config.p, seed=config.seed)
    binary = not getattr(model, "_multiclass", True)
    names = tuple(classes) or ((False, True) if binary else ())
    if not names:
        raise ConfigError(f"[model.augment] kind = {config.kind!r} needs [model] classes for a multiclass model")
    keys = (False, True) if binary and len(names) == 2 else names
    if config.desired is None:
        desired = {key: 1 / len(keys) for key in keys}
    else:
        missing = [str(n) for n in names if str(n) not in config.desired]
        if missing:
            raise ConfigError(f"[model.augment] desired has no share for class(es) {', '.join(missing)}")
        desired = {key: float(config.desired[str(name)]) for key, name in zip(keys, names)}
    sampler = imblearn.RandomOverSampler if config.kind == "random_over" else imblearn.RandomUnderSampler
    return sampler(model, desired_dist=desired, seed=config.seed)


class Oversampler:
    """Per-class rings of recent examples and counts; makes synthetic minority examples."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config
        self.rings: dict[Any, deque[dict[str, Any]]] = {}
        self.counts: dict[Any, int] = {}
        self.synthetic = 0
        self._rng = random.Random(config.seed)

    def learned(self, model: base.Estimator, features: dict[str, Any], target: Any) -> int:
        """``model`` just learned ``(features, target)``: learn synthetic neighbours if it is rare."""
        config = self.config
        ring = self.rings.get(target)
        if ring is None:
            ring = self.rings[target] = deque(maxlen=config.ring)
        count = self.counts[target] = self.counts.get(target, 0) + 1
        made = 0
        if len(self.counts) > 1 and ring and count < config.ratio * max(self.counts.values()):
            rng = self._rng
            for _ in range(config.k):
                other = ring[rng.randrange(len(ring))]
                u = rng.random()
                synthetic = {name: (value + u * (other[name] - value)
                                    if type(value) in (int, float) and type(other.get(name)) in (int, float) else value)
                             for name, value in features.items()}
                model.learn_one(synthetic, target)
                made += 1
            self.synthetic += made
        ring.append(features)
        return made
