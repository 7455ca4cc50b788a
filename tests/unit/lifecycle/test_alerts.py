"""Alertmanager payloads to lifecycle commands: only firing alerts with a rule, for this model."""

from __future__ import annotations

import pytest

from driftline.config import AlertRule, load_config
from driftline.exceptions import ConfigError, LifecycleError
from driftline.lifecycle.alerts import commands_for

RULES = [AlertRule(alertname="Drop", action="rollback", to="champion", replay=True),
         AlertRule(alertname="Stuck", action="reset")]


def _alert(name: str, status: str = "firing", **labels) -> dict:
    return {"status": status, "labels": {"alertname": name, **labels}, "annotations": {}}


def test_firing_alerts_with_a_rule_for_this_model_only():
    payload = {"version": "4", "alerts": [
        _alert("Drop"), _alert("Drop", status="resolved"), _alert("Stuck", model="other"), _alert("Stuck"),
        _alert("Unmapped"), "not an alert"]}
    assert commands_for(payload, RULES, "m") == [
        ("rollback", {"to": "champion", "replay": True}, "alertmanager: Drop firing"),
        ("reset", {}, "alertmanager: Stuck firing"),
    ]


@pytest.mark.parametrize("payload", [None, [], {"version": "4"}, {"version": 4, "alerts": []}])
def test_anything_else_is_refused_with_400(payload):
    with pytest.raises(LifecycleError) as refused:
        commands_for(payload, RULES, "m")
    assert refused.value.status == 400


def test_a_rollback_rule_needs_a_target():
    with pytest.raises(ConfigError, match="a rollback needs `to`"):
        load_config(name="m", lifecycle={"alert_rules": [{"alertname": "Drop", "action": "rollback"}]})


def test_a_repeated_alert_is_acted_on_once():
    seen: set[tuple[str, str]] = set()
    alert = {**_alert("Drop"), "fingerprint": "f1", "startsAt": "2026-12-02T00:00:00Z"}
    payload = {"version": "4", "alerts": [alert]}
    assert len(commands_for(payload, RULES, "m", seen)) == 1
    assert commands_for(payload, RULES, "m", seen) == []
    again = {"version": "4", "alerts": [{**alert, "startsAt": "2026-12-02T05:00:00Z"}]}  # fired anew
    assert len(commands_for(again, RULES, "m", seen)) == 1
