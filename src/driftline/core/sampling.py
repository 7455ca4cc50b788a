"""A seeded sample of labels to learn from: the same in every run, replay and recovery.

A global model learns on one core (River's trees cannot be merged), so past that core's
rate the trainer learns a share of the labels (``[model] learn_share``) and scores all of
them. Which labels are learned is decided by the event id alone, with a keyed hash, so a
replay, a recovery or an offline simulation picks exactly the same ones, whatever the
order or batching of the input.
"""

from __future__ import annotations

import hashlib

__all__ = ["LabelSample"]

_SCALE = 2**64


class LabelSample:
    """Keeps about ``share`` of event ids, chosen by a BLAKE2b hash keyed with ``seed``.

    >>> sample = LabelSample(0.25, seed=7)
    >>> sum(sample.keeps(f"e{i}") for i in range(10_000))
    2477
    >>> sample.keeps("e1") == LabelSample(0.25, seed=7).keeps("e1")
    True
    """

    __slots__ = ("share", "seed", "_key", "_below")

    def __init__(self, share: float, seed: int = 0) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share, self.seed = share, seed
        self._key = seed.to_bytes(8, "big")
        self._below = int(share * _SCALE)

    def keeps(self, event_id: str) -> bool:
        """Whether the label of ``event_id`` is learned."""
        digest = hashlib.blake2b(event_id.encode(), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "big") < self._below
