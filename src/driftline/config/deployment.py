"""One deployment's whole configuration, and :func:`load_config`, which reads it from TOML,
overrides and the environment."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from driftline.config.base import _Frozen
from driftline.config.drift import DriftConfig
from driftline.config.governance import GovernanceConfig
from driftline.config.kafka import KafkaConfig, TopicNames
from driftline.config.lifecycle import CheckpointConfig, LifecycleConfig
from driftline.config.model import JoinConfig, ModelConfig
from driftline.config.runtime import ProcessorConfig, ScaleConfig, TracingConfig
from driftline.exceptions import ConfigError


class DeploymentConfig(_Frozen):
    """Everything one model deployment needs."""

    name: str
    topic_prefix: str = "driftline"
    partitions: int = Field(default=1, gt=0)
    replication: int = Field(default=1, gt=0)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    join: JoinConfig = Field(default_factory=JoinConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    processor: ProcessorConfig = Field(default_factory=ProcessorConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    scale: ScaleConfig = Field(default_factory=ScaleConfig)
    governance: GovernanceConfig = Field(default_factory=GovernanceConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @model_validator(mode="after")
    def _privacy_fits_model(self) -> DeploymentConfig:
        declared = self.model.features
        if not declared:
            return self
        side = sorted(set(self.governance.fairness.side_attributes) & set(declared))
        if side:
            raise ValueError(f"model.features declares {side}, which governance.fairness reads from the protected "
                             "side topic (source = \"protected\"), never the model: remove them from model.features")
        policy = self.governance.privacy.features
        hidden = sorted(n for n, a in policy.items() if a in ("drop", "protected") and n in declared)
        if hidden:
            raise ValueError(f"model.features declares {hidden}, which governance.privacy keeps from the "
                             "model (drop or protected): remove them from model.features")
        numeric = sorted(n for n, a in policy.items() if a == "hmac" and declared.get(n, "cat") != "cat")
        if numeric:
            raise ValueError(f"governance.privacy hashes {numeric} (hmac gives a string): declare them 'cat' "
                             "in model.features")
        return self

    @field_validator("name", "topic_prefix")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "._-" for c in value):
            raise ValueError(f"{value!r}: use letters, digits, '.', '_' or '-'")
        return value

    @property
    def topics(self) -> TopicNames:
        return TopicNames(prefix=self.topic_prefix, model=self.name)

    @property
    def group_id(self) -> str:
        return f"{self.topic_prefix}.{self.name}.processor"

    @property
    def transactional_id(self) -> str:
        """One per process: keyed members add their instance id, so a restarted member
        fences its predecessor at once (KIP-447 fences the other members' zombies)."""
        base = f"{self.topic_prefix}.{self.name}.processor"
        if self.scale.mode == "global":  # one trainer; predictors each by instance
            return f"{base}.trainer" if self.scale.role != "predictor" else f"{base}.predictor.{self.scale.instance}"
        return base if self.scale.mode == "single" else f"{base}.{self.scale.instance}"

    @property
    def predictor_group_id(self) -> str:
        """Global mode: the consumer group of the predictors (the trainer commits in ``group_id``)."""
        return f"{self.topic_prefix}.{self.name}.predictors"


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, **overrides: Any) -> DeploymentConfig:
    """Read a TOML file (optional), apply overrides and the environment.

    Environment: ``DRIFTLINE_BOOTSTRAP_SERVERS`` and ``DRIFTLINE_SASL_PASSWORD``.

    >>> load_config(name="demo", kafka={"bootstrap_servers": "127.0.0.1:19092"}).kafka.bootstrap_servers
    '127.0.0.1:19092'
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    env: dict[str, Any] = {"kafka": {}}
    if bootstrap := os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS"):
        env["kafka"]["bootstrap_servers"] = bootstrap
    if password := os.environ.get("DRIFTLINE_SASL_PASSWORD"):
        env["kafka"]["sasl_password"] = password
    data = _deep_merge(_deep_merge(data, env), overrides)
    try:
        return DeploymentConfig(**data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
