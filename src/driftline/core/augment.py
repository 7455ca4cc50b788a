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
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from river import base

from driftline.config import AugmentConfig

__all__ = ["Oversampler"]


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
