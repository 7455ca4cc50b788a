"""Kafka: the connection settings, and the names of the topics one deployment owns."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from driftline.config.base import _Frozen


# Client settings the exactly-once / at-least-once machinery relies on: not overridable.
_GUARANTEE_KEYS = frozenset({
    "enable.idempotence", "transactional.id", "isolation.level", "enable.auto.commit",
    "enable.auto.offset.store", "group.id", "enable.partition.eof",
})


class KafkaConfig(_Frozen):
    """Connection settings; ``extra`` passes any librdkafka key through (SASL/SSL, ...)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)
    # librdkafka keys for Driftline's producers or consumers only, applied over Driftline's
    # own defaults (e.g. ``linger.ms``, which trades output latency for broker requests).
    producer: dict[str, str] = Field(default_factory=dict)
    consumer: dict[str, str] = Field(default_factory=dict)

    @field_validator("producer", "consumer")
    @classmethod
    def _keeps_guarantees(cls, value: dict[str, str]) -> dict[str, str]:
        fixed = sorted(set(value) & _GUARANTEE_KEYS)
        if fixed:
            raise ValueError(f"{fixed} are set by Driftline (its delivery guarantees depend on them)")
        return value

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """The common client settings as a fresh librdkafka dict (secrets revealed)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "ssl.ca.location": self.ssl_ca_location,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        conf.update(self.extra)
        return conf


class TopicNames(_Frozen):
    """The topics one deployment owns: ``<prefix>.<model>.<kind>``."""

    prefix: str
    model: str

    def _name(self, kind: str) -> str:
        return f"{self.prefix}.{self.model}.{kind}"

    @property
    def features(self) -> str:
        return self._name("features")

    @property
    def labels(self) -> str:
        return self._name("labels")

    @property
    def protected(self) -> str:
        """Protected attributes keyed by event id, for fairness only ([governance.fairness]
        attributes with ``source = "protected"``): joined like labels, never seen by the model."""
        return self._name("protected")

    @property
    def predictions(self) -> str:
        return self._name("predictions")

    @property
    def drift(self) -> str:
        return self._name("drift")

    @property
    def versions(self) -> str:
        return self._name("versions")

    @property
    def dlq(self) -> str:
        return self._name("dlq")

    @property
    def shadow(self) -> str:
        """Predictions of the variants that did not serve an event (challengers)."""
        return self._name("shadow")

    @property
    def lifecycle(self) -> str:
        """The audit trail: promotions, rollbacks, alias moves, resets, deletions."""
        return self._name("lifecycle")

    @property
    def order(self) -> str:
        """The processor's merge decisions (which source, which offsets, in which order),
        written in the transactions of the outputs they produced: recovery repeats them."""
        return self._name("order")

    @property
    def checkpoints(self) -> str:
        """Keyed mode: per task, a pointer to its latest snapshot (compacted, key = task)."""
        return self._name("checkpoints")

    @property
    def audit(self) -> str:
        """The hash-chained, signed audit log (core/audit.py): one entry per lifecycle event."""
        return self._name("audit")

    def all(self) -> dict[str, str]:
        """Kind -> topic name, for every topic of the deployment."""
        kinds = ("features", "labels", "protected", "predictions", "drift", "versions", "dlq", "shadow", "lifecycle", "order",
                 "checkpoints", "audit")
        return {k: self._name(k) for k in kinds}
