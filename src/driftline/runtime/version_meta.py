"""What a version records beyond the engine and its positions: the serving history's
fields (stream time, traffic split, challengers, the serving model's origin and examples)
and the governance fields the model card reads (label delay, fairness results, the
mitigation in force).

The processor's checkpointers add it to every version they cut (``meta_extra``).
"""

from __future__ import annotations

from typing import Any

from driftline.core.engine import Engine
from driftline.core.fairness.summary import group_results
from driftline.core.fairness.switch import mitigation_meta

__all__ = ["lifecycle_meta"]


def lifecycle_meta(engine: Engine) -> dict[str, Any]:
    """What a version records for the serving history (stream time, traffic split) and of
    the serving model: after a promotion its own examples, not the stream's."""
    arena = engine.arena
    variants = [[m.name, m.share] for m in arena.members.values() if m.share] if arena is not None else []
    challengers = [m.summary() for m in arena.members.values()] if arena is not None else []
    return {"stream_time": engine.stream_time, "variants": variants, "challengers": challengers,
            "champion": getattr(engine, "champion_origin", None), "examples_seen": engine.model_examples,
            **mitigation_meta(engine), **_governance_meta(engine)}


def _governance_meta(engine: Any) -> dict[str, Any]:
    """The observed label delay and, with fairness on, the per-group results (for the card)."""
    meta: dict[str, Any] = {}
    if (delay := getattr(engine, "label_delay", None)) is not None:
        meta["label_delay"] = delay.summary()
    if (watch := getattr(engine, "fairness", None)) is not None:
        meta["fairness"] = group_results(watch)
    return meta
