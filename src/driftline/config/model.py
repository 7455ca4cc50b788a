"""The model: which River estimator, how it learns (augmentation, mini-batches, a share of the
labels), and how long features wait for their label."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from driftline.config.base import _Frozen


class AugmentConfig(_Frozen):
    """Learning-time data augmentation for imbalanced classes (``core/augment.py``).

    ``smote``: each time the model learns an example of a class rarer than ``ratio`` times the
    most frequent one, it also learns ``k`` synthetic examples interpolated (numeric features)
    between it and random recent examples of that class, kept in a ring of ``ring`` per class;
    seeded. Predictions and metrics never see them. The other kinds wrap the model in one of
    River's ``imblearn`` resamplers (seeded with ``seed``).
    """

    kind: Literal["none", "smote", "random_over", "random_under", "hard_sampling"] = "none"
    k: int = Field(default=3, ge=1)
    ratio: float = Field(default=0.5, gt=0, le=1)
    ring: int = Field(default=200, ge=2)
    seed: int = 42
    # River's imblearn wrappers (core/augment.py:resampled): "random_over" / "random_under"
    # (RandomOverSampler / RandomUnderSampler) learn towards ``desired`` class shares (None:
    # equal shares of the configured classes); "hard_sampling" (HardSamplingClassifier)
    # keeps the ``ring`` examples with the largest loss and relearns one with probability ``p``.
    desired: dict[str, float] | None = None
    p: float = Field(default=0.1, gt=0, le=1)


class ModelConfig(_Frozen):
    """Which River estimator to run: a preset name or a ``module:factory`` path.

    ``preset`` also takes a ``module:factory`` path (as ``--preset`` does), which sets ``factory``:

    >>> ModelConfig(preset="river.tree:HoeffdingTreeClassifier").factory
    'river.tree:HoeffdingTreeClassifier'
    """

    preset: str = "logistic_regression"
    factory: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] | None = None
    features: dict[str, Literal["num", "cat"]] = Field(default_factory=dict)
    classes: list[Any] = Field(default_factory=list)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    mini_batch: int | None = Field(
        default=None, ge=2,
        description=(
            "Opt-in mini-batch learning (docs/minibatch.md): joined examples are buffered and every "
            "mini_batch-th one makes the model learn the buffer with one learn_many; predictions stay "
            "one at a time, from the model as of the last batch. Needs a model with learn_many at every "
            "step (linear models, naive Bayes, preprocessing), declared numeric features and polars "
            "(the 'minibatch' extra). One learn_many step is one gradient step on the batch's mean "
            "gradient, not mini_batch learn_one steps. None: learn each example as its label arrives."
        ),
    )
    learn_share: float = Field(
        default=1.0, gt=0, le=1,
        description=(
            "The share of labels the model learns (docs/scaling.md, 'Faster learning than one core'): "
            "a seeded sample by event id, the same in every run, replay and recovery. Every label is "
            "still scored and watched for drift; only learning is skipped. 1: learn every label."
        ),
    )
    learn_seed: int = Field(default=0, ge=0, description="Seed of the learn_share sample.")

    @model_validator(mode="before")
    @classmethod
    def _preset_may_be_a_factory(cls, data: Any) -> Any:
        if isinstance(data, dict) and ":" in str(data.get("preset", "")):
            data = dict(data)  # the caller's dict is never changed
            path = data.pop("preset")
            if data.get("factory") not in (None, path):
                raise ValueError(f"model preset {path!r} is a module:factory path, and factory is "
                                 f"{data['factory']!r} too: give one of them")
            data["factory"] = path
        return data

    @model_validator(mode="after")
    def _mini_batch_ok(self) -> ModelConfig:
        if self.mini_batch is not None and (not self.features or "cat" in self.features.values()):
            raise ValueError(
                "model.mini_batch needs model.features declared, all 'num' (every row of a batch "
                "must have the same numeric columns)"
            )
        return self


class JoinConfig(_Frozen):
    """Bounds of the buffer that holds features until their label arrives."""

    max_age_ms: int = Field(default=24 * 3600 * 1000, gt=0)
    max_pending: int = Field(default=1_000_000, gt=0)
