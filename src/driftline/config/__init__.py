"""Typed, frozen configuration for one model deployment.

A deployment is configured by a TOML file (see ``deploy/*.toml``), CLI flags and the
environment; secrets (SASL password, snapshot signing key) come only from the environment
and are kept in ``SecretStr`` so they never print.

>>> cfg = DeploymentConfig(name="elec")
>>> cfg.topics.features
'driftline.elec.features'
>>> cfg.kafka.as_librdkafka_dict()["bootstrap.servers"]
'127.0.0.1:9092'

The classes live in modules named after what they configure (:mod:`.base`, :mod:`.kafka`,
:mod:`.model`, :mod:`.drift`, :mod:`.lifecycle`, :mod:`.runtime`, :mod:`.governance`,
:mod:`.deployment`); import them from here.
"""

from __future__ import annotations

from driftline.config.base import MIN_SECRET_BYTES, secret_from_env
from driftline.config.deployment import DeploymentConfig, load_config
from driftline.config.drift import DataDriftConfig, DetectorSpec, DriftConfig, GuardConfig, PerformanceRule
from driftline.config.governance import (AuditConfig, ErasureConfig, ExplainConfig, FairnessAttribute, FairnessConfig,
                                         GovernanceConfig, PrivacyConfig)
from driftline.config.kafka import KafkaConfig, TopicNames
from driftline.config.lifecycle import AlertRule, ChallengerSpec, CheckpointConfig, LifecycleConfig, PromotionConfig
from driftline.config.model import AugmentConfig, JoinConfig, ModelConfig
from driftline.config.runtime import ProcessorConfig, ScaleConfig, TracingConfig

# Public too, though not in __all__ (as when this package was one module), like ErasureConfig and TracingConfig.
from driftline.config.governance import RETENTION_KINDS as RETENTION_KINDS, FieldAction as FieldAction

__all__ = [
    "KafkaConfig",
    "TopicNames",
    "ModelConfig",
    "JoinConfig",
    "DriftConfig",
    "GuardConfig",
    "AugmentConfig",
    "DetectorSpec",
    "PerformanceRule",
    "DataDriftConfig",
    "CheckpointConfig",
    "ProcessorConfig",
    "ChallengerSpec",
    "PromotionConfig",
    "AlertRule",
    "LifecycleConfig",
    "ScaleConfig",
    "ExplainConfig",
    "AuditConfig",
    "FairnessAttribute",
    "FairnessConfig",
    "PrivacyConfig",
    "GovernanceConfig",
    "MIN_SECRET_BYTES",
    "secret_from_env",
    "DeploymentConfig",
    "load_config",
]

# Every version pickles its engine, and with it the DeploymentConfig and each class in it. They
# are named driftline.config.<Class> in the pickle, as they were when this package was one
# module: snapshots pickled since load in builds from before the split (a rollback, a predictor
# not yet upgraded reading a new trainer's release), and the older snapshots name classes that
# are all here. tests/unit/test_config_pickle.py checks that no config class is left out.
for _cls in (KafkaConfig, TopicNames, AugmentConfig, ModelConfig, JoinConfig, DetectorSpec, PerformanceRule,
             DataDriftConfig, GuardConfig, DriftConfig, CheckpointConfig, ChallengerSpec, PromotionConfig, AlertRule,
             LifecycleConfig, ProcessorConfig, ScaleConfig, ExplainConfig, AuditConfig, FairnessAttribute,
             FairnessConfig, ErasureConfig, PrivacyConfig, GovernanceConfig, TracingConfig, DeploymentConfig):
    _cls.__module__ = __name__
del _cls
