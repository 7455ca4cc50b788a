"""Turn an Alertmanager webhook (payload version 4) into lifecycle commands.

Each *firing* alert whose ``alertname`` label has a rule in ``[[lifecycle.alert_rules]]``
becomes one command (a rollback or a reset), audited like any other: its actor is
``alertmanager`` and its reason names the alert, its summary and its fingerprint, so
``driftline models history`` shows which alert did what. Resolved alerts, alerts without a
rule, alerts labelled for another model (``model`` label) and repeats of an alert already
acted on (same fingerprint and start) do nothing.

>>> from driftline.config import AlertRule
>>> payload = {"version": "4", "status": "firing", "alerts": [
...     {"status": "firing", "labels": {"alertname": "AccuracyDrop", "model": "elec"},
...      "annotations": {"summary": "rolling accuracy below 0.6"}, "fingerprint": "a1b2"},
...     {"status": "resolved", "labels": {"alertname": "AccuracyDrop"}}]}
>>> commands_for(payload, [AlertRule(alertname="AccuracyDrop", action="rollback", to="2")], "elec")
[('rollback', {'to': '2', 'replay': False}, 'alertmanager: AccuracyDrop firing (rolling accuracy below 0.6) [a1b2]')]
>>> commands_for({"version": "3"}, [], "elec")
Traceback (most recent call last):
...
driftline.exceptions.LifecycleError: not an Alertmanager webhook payload of version 4 (version '3')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from driftline.config import AlertRule
from driftline.exceptions import LifecycleError

__all__ = ["commands_for", "ACTOR"]

ACTOR = "alertmanager"


def commands_for(payload: Any, rules: Sequence[AlertRule], model: str,
                 seen: set[tuple[str, str]] | None = None) -> list[tuple[str, dict[str, Any], str]]:
    """(action, params, reason) for every firing alert of ``payload`` that a rule maps.

    ``seen`` holds the (fingerprint, startsAt) of alerts already acted on: Alertmanager sends
    a firing alert again every ``repeat_interval``, and a second rollback would throw away
    what was learned since the first. Alerts without a fingerprint are never skipped.
    """
    if not isinstance(payload, dict) or payload.get("version") != "4" or not isinstance(payload.get("alerts"), list):
        version = payload.get("version") if isinstance(payload, dict) else None
        raise LifecycleError(f"not an Alertmanager webhook payload of version 4 (version {version!r})", status=400)
    by_name = {rule.alertname: rule for rule in rules}
    commands = []
    for alert in payload["alerts"]:
        if not isinstance(alert, dict) or alert.get("status") != "firing":
            continue
        labels = alert.get("labels") or {}
        rule = by_name.get(labels.get("alertname", ""))
        if rule is None or labels.get("model", model) != model:
            continue
        if seen is not None and alert.get("fingerprint"):
            once = (str(alert["fingerprint"]), str(alert.get("startsAt", "")))
            if once in seen:
                continue
            seen.add(once)
        annotations = alert.get("annotations") or {}
        about = annotations.get("summary") or annotations.get("description") or ""
        reason = f"{ACTOR}: {rule.alertname} firing" + (f" ({about})" if about else "")
        if alert.get("fingerprint"):
            reason += f" [{alert['fingerprint']}]"
        params: dict[str, Any] = {"to": rule.to, "replay": rule.replay} if rule.action == "rollback" else {}
        commands.append((rule.action, params, reason))
    return commands
