"""Switching a mitigation policy on or off: applied to a restored engine, made a lifecycle event.

The mitigation is configuration (``[governance.fairness] mitigation``); an engine keeps the one
it was built with, pickled in its versions. When a deployment restarts with another one, the
processor applies it to the restored engine (:func:`switch_mitigation`) and publishes a
lifecycle event (action ``mitigation``, audited like every lifecycle event) whose id names the
version it starts from and both policies, so a restart that repeats it repeats the same id.
A version made while ``group_threshold`` decides carries :func:`mitigation_meta`, which the
registry turns into tags (``fairness_mitigation``, ``disparate_treatment``) shown wherever the
version is.

>>> from driftline.config import DeploymentConfig
>>> from driftline.core.engine import Engine
>>> fairness = {"enabled": True, "attributes": [{"name": "g"}]}
>>> engine = Engine(DeploymentConfig(name="loans", governance={"fairness": fairness}))
>>> config = DeploymentConfig(name="loans", governance={"fairness": {**fairness, "mitigation": "reweigh"}})
>>> switch_mitigation(engine, config)
('none', 'reweigh')
>>> engine.fairness.reweigher is not None, switch_mitigation(engine, config)
(True, None)
>>> mitigation_meta(engine)
{'mitigation': {'policy': 'reweigh', 'attribute': 'g', 'disparate_treatment': False}}
"""

from __future__ import annotations

from typing import Any

from driftline.config import DeploymentConfig
from driftline.core.fairness.mitigation import Reweigher, thresholds_for
from driftline.core.outputs import LifecycleEvent

__all__ = ["switch_mitigation", "mitigation_event", "mitigation_meta"]

_SETTINGS = ("mitigation", "mitigation_window", "acknowledge_disparate_treatment", "threshold_feedback")


def switch_mitigation(engine: Any, config: DeploymentConfig) -> tuple[str, str] | None:
    """Give ``engine``'s fairness watch the mitigation of ``config``; (before, after) when the
    policy changed, None when it did not (or fairness is off in either)."""
    watch, wanted = getattr(engine, "fairness", None), config.governance.fairness
    if watch is None or not wanted.enabled:
        return None
    current = watch.config
    if all(getattr(current, k) == getattr(wanted, k) for k in _SETTINGS):
        return None
    before, after = current.mitigation, wanted.mitigation
    watch.config = current.model_copy(update={k: getattr(wanted, k) for k in _SETTINGS})
    if after != before or wanted.mitigation_window != current.mitigation_window:
        watch.reweigher = Reweigher(wanted.mitigation_window) if after == "reweigh" else None
        watch.thresholds = thresholds_for(wanted) if after == "group_threshold" else None
    return (before, after) if after != before else None


def mitigation_event(engine: Any, config: DeploymentConfig, before: str, after: str, at: int) -> LifecycleEvent:
    """The lifecycle event of a switch from ``before`` to ``after`` (engine: the one switched)."""
    attribute = config.governance.fairness.attributes[0].name
    details: dict[str, Any] = {"mitigation": after, "before": before, "attribute": attribute,
                               "version": engine.version}
    if after == "group_threshold":
        details["disparate_treatment"] = True  # acknowledged in config: it decides by the attribute
    on = after != "none"
    return LifecycleEvent(
        id=f"{config.name}-mitigation-v{engine.version}-{before}-{after}", model=config.name, action="mitigation",
        actor="config", reason=(f"[governance.fairness] mitigation {after} switched on" if on else
                                f"[governance.fairness] mitigation {before} switched off"),
        model_version=engine.version, details=details, at=at)


def mitigation_meta(engine: Any) -> dict[str, Any]:
    """What a version records of its mitigation (empty when none applies)."""
    watch = getattr(engine, "fairness", None)
    if watch is None or watch.config.mitigation == "none":
        return {}
    policy = watch.config.mitigation
    return {"mitigation": {"policy": policy, "attribute": watch.config.attributes[0].name,
                           "disparate_treatment": policy == "group_threshold"}}
