"""The trainer's engine in global mode: learns like the single engine, serves nobody.

In global mode (``[scale] mode = "global"``) one trainer learns every label and N predictors
serve the predictions (docs/scaling.md, "Global mode"). The trainer still predicts each
event internally, so that its metrics stay River's ``progressive_val_score``, but it builds
no :class:`~driftline.core.outputs.Prediction`. Instead, every ``publish_every_examples``
labels learned (and, with ``publish_every_ms``, when that much event time passed since the
last release with something learned), it returns a :class:`ModelRelease`: version n of the
serving model with its watermark W_n, the event time up to which it has learned.

Releases fall on records, not on batches or wall-clock time, so the same input gives the
same versions at the same points in every run, replay and recovery: what makes the served
predictions a pure function of the input (core/version_choice.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import Output, Prediction

__all__ = ["ModelRelease", "TrainerEngine"]


@dataclass(slots=True)
class ModelRelease:
    """Version ``version`` of the serving model, learned up to event time ``watermark``.

    ``model`` is the live estimator: the runtime serialises it before the engine processes
    the next record. ``source`` and ``offset`` name the record after which it was cut.
    """

    version: int
    watermark: int
    model: Any
    examples: int
    metrics: dict[str, float]
    source: tuple[str, int]
    offset: int
    kind: str = field(default="release", init=False)


class TrainerEngine(Engine):
    """An :class:`Engine` that publishes model versions instead of predictions."""

    # Class attributes: engines pickled before a release was made restore with these.
    release = 0
    _learned_at_release = 0
    _released_at = 0
    builds_predictions = False  # it predicts for its metrics, but publishes nothing per event

    def process(self, record: InputRecord, now_ms: int) -> list[Output]:
        out = super().process(record, now_ms)
        if self.arena is not None:  # challengers build the champion's Prediction regardless
            out = [o for o in out if type(o) is not Prediction]
        scale = self.config.scale
        learned = self.n_learned
        if learned == self._learned_at_release:
            return out
        due = learned // scale.publish_every_examples > self._learned_at_release // scale.publish_every_examples
        if not due and scale.publish_every_ms is not None:
            due = self.stream_time - self._released_at >= scale.publish_every_ms
        if due:
            self.release += 1
            self._learned_at_release, self._released_at = learned, self.stream_time
            out.append(ModelRelease(self.release, self.stream_time, self.model, learned, self.scores.values(),
                                    (record.kind, record.partition), record.offset))
        return out


def trainer_factory(config: DeploymentConfig) -> TrainerEngine:
    return TrainerEngine(config)
