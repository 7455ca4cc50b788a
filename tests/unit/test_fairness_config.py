"""[governance.fairness]: typed, frozen, and misconfiguration fails fast."""

from __future__ import annotations

import pytest

from driftline.config import DeploymentConfig, FairnessConfig, load_config
from driftline.exceptions import ConfigError


def test_defaults_are_off_and_documented():
    cfg = DeploymentConfig(name="m").governance.fairness
    assert not cfg.enabled and (cfg.tau, cfg.alpha, cfg.min_group, cfg.min_denominator) == (0.8, 0.01, 100, 30)
    assert cfg.metrics == ["selection_rate", "tpr", "fpr"]


def test_toml_style_settings_load():
    cfg = load_config(name="m", governance={"fairness": {
        "enabled": True, "attributes": [{"name": "age", "bins": [25, 40, 60]}, {"name": "sex", "reference": "f"}],
        "intersections": [["age", "sex"]]}}).governance.fairness
    assert cfg.attributes[0].bins == [25, 40, 60] and cfg.attributes[1].reference == "f"
    with pytest.raises(ValueError):
        cfg.tau = 0.5  # frozen


@pytest.mark.parametrize("settings, message", [
    ({"enabled": True}, "at least one attribute"),
    ({"attributes": [{"name": "a"}], "intersections": [["a", "b"]]}, "intersection"),
    ({"attributes": [{"name": "a", "bins": [3, 1]}]}, "increasing"),
    ({"tau": 1.2}, "tau"),
    ({"attributes": [{"name": "a", "source": "sidecar"}]}, "source"),
    ({"attributes": [{"name": "a"}], "mitigation": "group_threshold"}, "acknowledge_disparate_treatment"),
])
def test_misconfiguration_is_a_config_error(settings, message):
    with pytest.raises(ConfigError, match=message):
        load_config(name="m", governance={"fairness": settings})
    assert FairnessConfig  # the type is exported
