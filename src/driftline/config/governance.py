"""Governance: explanations, the audit log, fairness by group, erasure and the field privacy
policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from driftline.config.base import _Frozen, secret_from_env


class ExplainConfig(_Frozen):
    """Per-prediction explanations (core/explain, docs/governance-explain.md): the ``top_k``
    largest contributions and reason codes in every prediction record and ``POST /predict``."""

    enabled: bool = False
    top_k: int = Field(default=5, ge=1)


class AuditConfig(_Frozen):
    """The hash-chained, signed audit log on ``<prefix>.<model>.audit`` (docs/governance-explain.md)."""

    enabled: bool = True
    # Art. 19 of the EU AI Act asks for at least six months; None keeps entries forever.
    retention_ms: int | None = Field(default=183 * 24 * 3600 * 1000, gt=0)


class FairnessAttribute(_Frozen):
    """A sensitive attribute, grouped by its value or by ``bins``: a feature of the model
    (``source = "feature"``), or a field of the records on the protected side topic
    ``<prefix>.<model>.protected`` (``source = "protected"``), joined by event id like a label
    and never seen by the model.

    ``bins`` are edges: ``[0, 25, 40, 60]`` makes the groups ``[0,25)``, ``[25,40)``,
    ``[40,60)`` and ``>=60`` (and ``<0`` below the first edge). ``reference``: the group every
    other group is compared with; None takes the largest group of the window.
    """

    name: str
    source: Literal["feature", "protected"] = "feature"
    bins: list[float] | None = None
    reference: str | None = None

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(b <= a for a, b in zip(value, value[1:]))):
            raise ValueError(f"bins {value}: give increasing edges")
        return value


class FairnessConfig(_Frozen):
    """Fairness by group on the stream (docs/governance.md).

    A group's rate is compared with the reference group's: a violation needs the ratio outside
    ``[tau, 1/tau]`` and a one-sided two-proportion z-test significant at the look's level
    (``alpha * check_every / alpha_horizon``: ``alpha`` is spent over ``alpha_horizon`` monitor
    events, predictions plus joined labels; Holm-corrected across groups and metrics). Groups below
    ``min_group`` (or ``min_denominator`` in a rate's denominator) are ``insufficient_data``.
    """

    enabled: bool = False
    attributes: list[FairnessAttribute] = Field(default_factory=list)
    intersections: list[list[str]] = Field(default_factory=list)
    # The favourable outcome (a loan granted); None: the last of model.classes, else True.
    favourable: str | int | bool | None = None
    metrics: list[Literal["selection_rate", "base_rate", "tpr", "fpr", "ppv", "fnr"]] = Field(
        default_factory=lambda: ["selection_rate", "tpr", "fpr"])
    tau: float = Field(default=0.8, gt=0, lt=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    min_group: int = Field(default=100, ge=1)
    min_denominator: int = Field(default=30, ge=1)
    window: int = Field(default=2000, ge=10)
    check_every: int = Field(default=200, ge=1)
    alpha_horizon: int = Field(default=100_000, ge=1)
    tumbling_ms: int | None = Field(default=None, gt=0)
    # Label-coverage guard: a warning when a group's share of labelled events falls below this.
    coverage_min: float | None = Field(default=None, gt=0, le=1)
    # Mitigation (docs/governance.md#mitigation) on the first attribute: "reweigh" (Kamiran-Calders
    # weights over mitigation_window examples) or "group_threshold" (per-group decision thresholds:
    # disparate treatment under US credit law, so it needs acknowledge_disparate_treatment = true).
    mitigation: Literal["none", "reweigh", "group_threshold"] = "none"
    mitigation_window: int = Field(default=30_000, ge=100)
    acknowledge_disparate_treatment: bool = False
    # group_threshold: how strongly each group's decisions are steered to the common selection
    # rate (rate + threshold_feedback * decisions owed); 0 uses the window's thresholds alone.
    threshold_feedback: float = Field(default=0.02, ge=0)

    @property
    def side_attributes(self) -> tuple[str, ...]:
        """The attributes read from the protected side topic (empty: the topic is not read)."""
        return tuple(a.name for a in self.attributes if a.source == "protected") if self.enabled else ()

    @model_validator(mode="after")
    def _known_attributes(self) -> FairnessConfig:
        names = [a.name for a in self.attributes]
        if self.enabled and not names:
            raise ValueError("governance.fairness is enabled: name at least one attribute")
        for combo in self.intersections:
            if len(combo) < 2 or not set(combo) <= set(names):
                raise ValueError(f"intersection {combo}: name two or more of the attributes {names}")
        if self.mitigation == "group_threshold" and not self.acknowledge_disparate_treatment:
            raise ValueError("mitigation group_threshold decides by group (disparate treatment, unlawful "
                             "in US credit decisions): set acknowledge_disparate_treatment = true to use it")
        if self.mitigation != "none" and not names:
            raise ValueError(f"mitigation {self.mitigation} needs an attribute")
        return self


class ErasureConfig(_Frozen):
    """``driftline erase`` (runtime/erasure.py, docs/governance-explain.md#erasure): whether
    the versions an erasure supersedes (they may contain the subject) are deleted from the
    version store, or only marked ``erased`` in the registry (they can never serve again)."""

    delete_superseded: bool = False


FieldAction = Literal["allow", "drop", "hmac", "protected"]
# Topic kinds whose retention [governance.privacy] retention_ms may set (docs/governance-explain.md#privacy);
# .versions and .checkpoints are compacted (the latest record per key stays), .audit has its own setting.
RETENTION_KINDS = ("features", "labels", "protected", "predictions", "drift", "dlq", "shadow", "lifecycle", "order")
# Members of an event body the processor itself reads: a body policy cannot name them.
_ENVELOPE = ("id", "model", "features", "label")


class PrivacyConfig(_Frozen):
    """The field policy applied at ingress, before anything is buffered (core/privacy.py).

    ``features`` and ``body`` map a feature name (inside ``features``) or a body member
    (beside ``id``/``features``/``label``) to ``allow`` (the default), ``drop``, ``hmac``
    (``"hmac:<key id>:<hex HMAC-SHA256>"`` under the key in ``key_env``) or ``protected``
    (kept from the model, the join buffer, snapshots and dead letters; a feature that
    ``[governance.fairness]`` names as an attribute still reaches fairness, as its group).
    Dead letters of events with such fields carry a redacted body unless ``dlq_raw``.

    >>> PrivacyConfig(features={"ssn": "hmac"}).needs_key
    True
    >>> PrivacyConfig(features={"ssn": "encrypt"})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for PrivacyConfig
    ...
    """

    features: dict[str, FieldAction] = Field(default_factory=dict)
    body: dict[str, FieldAction] = Field(default_factory=dict)
    key_env: str = "DRIFTLINE_PRIVACY_KEY"
    dlq_raw: bool = False
    # Topic kind -> retention.ms for `driftline topics create` (None: forever); unset kinds keep
    # the defaults of runtime/topics.py. The join buffer's is [join] max_age_ms.
    retention_ms: dict[str, int | None] = Field(default_factory=dict)

    @field_validator("body")
    @classmethod
    def _not_the_envelope(cls, value: dict[str, str]) -> dict[str, str]:
        named = sorted(set(value) & set(_ENVELOPE))
        if named:
            raise ValueError(f"governance.privacy.body names {named}: the processor reads these members "
                             "itself (a feature's policy goes in governance.privacy.features)")
        return value

    @field_validator("retention_ms")
    @classmethod
    def _known_topics(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        unknown = sorted(set(value) - set(RETENTION_KINDS))
        if unknown:
            raise ValueError(f"governance.privacy.retention_ms: unknown topic kinds {unknown}; known: "
                             f"{list(RETENTION_KINDS)} (.audit: [governance.audit] retention_ms)")
        bad = sorted(k for k, v in value.items() if v is not None and v <= 0)
        if bad:
            raise ValueError(f"governance.privacy.retention_ms {bad}: give a positive number of ms (omit: the default)")
        return value

    @property
    def active(self) -> bool:
        """Does any field have a policy other than ``allow``?"""
        return any(a != "allow" for a in (*self.features.values(), *self.body.values()))

    @property
    def needs_key(self) -> bool:
        return "hmac" in (*self.features.values(), *self.body.values())

    def hmac_key(self) -> bytes | None:
        """The HMAC key (None when no field is ``hmac``); missing or short: a :class:`ConfigError`."""
        return secret_from_env(self.key_env, "privacy HMAC key") if self.needs_key else None


class GovernanceConfig(_Frozen):
    """What the model decides, made accountable: explanations, the audit log, fairness by group."""

    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    erasure: ErasureConfig = Field(default_factory=ErasureConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @model_validator(mode="after")
    def _privacy_fits_fairness(self) -> GovernanceConfig:
        fair = self.fairness
        protected = {n for n, a in self.privacy.features.items() if a == "protected"}
        hidden = sorted({a.name for a in fair.attributes} & {n for n, a in self.privacy.features.items()
                                                               if a in ("drop", "hmac")})
        if fair.enabled and hidden:
            raise ValueError(f"fairness attributes {hidden} are drop or hmac in governance.privacy: "
                             "make them protected (fairness sees them, the model does not) or allow")
        if fair.enabled and fair.mitigation == "reweigh" and fair.attributes and fair.attributes[0].name in protected:
            raise ValueError(f"mitigation reweigh on the protected attribute {fair.attributes[0].name!r} is "
                             "not built yet (the weights are learned with the model's features)")
        return self
