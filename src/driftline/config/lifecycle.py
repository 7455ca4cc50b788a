"""The model lifecycle: when versions are cut and where they are kept, challengers, promotion,
alert rules, the registry and the admin API."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from driftline.config.base import _Frozen, secret_from_env
from driftline.config.model import ModelConfig


class CheckpointConfig(_Frozen):
    """When to cut a version and where to keep it."""

    every_examples: int = Field(default=10_000, gt=0)
    every_seconds: float = Field(default=60.0, gt=0)
    on_drift: bool = True
    # A drift is checkpointed, but no sooner than this many examples after the last version:
    # a noisy stream must not turn into a snapshot storm on the hot path.
    drift_min_examples: int = Field(default=2_000, ge=0)
    # ... and no sooner than this many seconds: at 4k labels/s a drift-prone stream (Elec2 with
    # reset) would otherwise cut two versions a second, each a fork and a registry update.
    drift_min_seconds: float = Field(default=10.0, ge=0)
    store_url: str = ".driftline/versions"
    key_env: str = "DRIFTLINE_SNAPSHOT_KEY"
    # Write snapshots from a forked child (copy-on-write, runtime/snapshots.py) so pickling a
    # large model never stalls predictions; False writes them inline. Linux only (else inline).
    background: bool = True

    def signing_key(self) -> bytes:
        """The HMAC key from the environment; refuses to run without one, or with a short one."""
        return secret_from_env(self.key_env, "snapshot signing key")


class ChallengerSpec(_Frozen):
    """A candidate model learning side by side with the champion (see ``core/arena.py``).

    ``start``: ``cold`` (fresh estimator), ``warm`` (a copy of the champion with its learned
    state). ``share``: the fraction of event keys it serves (canary / A-B); 0 = shadow only.
    """

    name: str
    model: ModelConfig | None = None
    start: Literal["cold", "warm"] = "cold"
    share: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("model")
    @classmethod
    def _one_at_a_time(cls, value: ModelConfig | None) -> ModelConfig | None:
        if value is not None and value.mini_batch is not None:
            raise ValueError("challengers learn one example at a time: mini_batch applies to the champion only")
        return value

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not value or value == "champion" or not all(c.isalnum() or c in "._-" for c in value):
            raise ValueError(f"{value!r}: a challenger name uses letters, digits, '.', '_' or '-' and is not 'champion'")
        return value


class PromotionConfig(_Frozen):
    """Promote a challenger when it beats the champion on paired errors (McNemar exact test).

    Checked every ``window`` paired examples over the last ``window``; a challenger must win
    ``patience`` consecutive checks, each with accuracy ahead by ``margin`` and p < ``alpha``.
    """

    enabled: bool = False
    window: int = Field(default=1000, gt=0)
    margin: float = Field(default=0.01, ge=0.0, lt=1.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    patience: int = Field(default=2, gt=0)


class AlertRule(_Frozen):
    """What a firing Alertmanager alert named ``alertname`` makes the deployment do
    (``POST /alerts/alertmanager`` on the admin API, docs/integrations.md): ``rollback`` to
    the version or alias ``to`` (re-learning forward when ``replay``), or ``reset`` the model."""

    alertname: str
    action: Literal["rollback", "reset"]
    to: str | None = None
    replay: bool = False

    @model_validator(mode="after")
    def _rollback_has_a_target(self) -> AlertRule:
        if self.action == "rollback" and not self.to:
            raise ValueError(f"alert rule {self.alertname}: a rollback needs `to` (a version or an alias)")
        return self


class LifecycleConfig(_Frozen):
    """Registry, retention, challengers, promotion policy and the admin API."""

    registry_url: str | None = None  # SQLite file; default: <store dir>/<model>/registry.sqlite
    keep_last: int | None = Field(default=None, gt=0)  # retention: None keeps every snapshot
    challengers: list[ChallengerSpec] = Field(default_factory=list)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    admin_port: int = 0
    admin_host: str = "127.0.0.1"
    token_env: str = "DRIFTLINE_ADMIN_TOKEN"
    alert_rules: list[AlertRule] = Field(default_factory=list)
